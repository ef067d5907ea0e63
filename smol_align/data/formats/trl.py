"""TRL's own four preference formats: standard (text) or conversational, explicit or implicit prompt.

They are already TRL-ready, but are still validated row by row (role order, one assistant
message per completion). Standard (plain-text) rows become conversational: the prompt is one
user turn and each completion one assistant turn. Stable metadata columns that are present
(``score_chosen``, ``source``, ...) are kept, so normalizing a normalized dataset is a no-op.
"""

from __future__ import annotations

import re

from ..messages import ASSISTANT, USER, InvalidRow, make_pair, text
from ..registry import METADATA, Format, column_is, passthrough_metadata, register, take_metadata

_LAST_SPACE = re.compile(r"\s\S*\Z")


def _kept_metadata(row: dict) -> dict:
    return take_metadata(row, {name: name for name in METADATA if name in row})


def conversational(row: dict) -> dict:
    """``prompt``/``chosen``/``rejected`` message lists."""
    return {
        **make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt")),
        **_kept_metadata(row),
    }


def conversational_implicit(row: dict) -> dict:
    """``chosen``/``rejected`` dialogues; their shared leading messages are the prompt."""
    return {**make_pair(row.get("chosen"), row.get("rejected")), **_kept_metadata(row)}


def standard(row: dict) -> dict:
    """``prompt``/``chosen``/``rejected`` texts."""
    pair = make_pair(
        text(row.get("chosen"), "chosen"),
        text(row.get("rejected"), "rejected"),
        prompt=text(row.get("prompt"), "prompt"),
    )
    return {**pair, **_kept_metadata(row)}


def split_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """``(prompt, chosen, rejected)`` from two texts sharing a prompt, cut at a word boundary.

    TRL's ``extract_prompt`` cuts at the first differing character, which can split a word
    ("The sky is bl" + "ue"); here the cut moves back to the last whitespace, and the
    whitespace around the cut is dropped (the prompt becomes a chat turn of its own).
    """
    if chosen == rejected:
        raise InvalidRow("implicit prompt: identical texts, no prompt to tell apart", "chosen")
    shared = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        shared += 1
    at_boundary = (
        shared == 0
        or chosen[shared - 1].isspace()
        or shared == len(chosen)
        or shared == len(rejected)
        or chosen[shared].isspace()
        or rejected[shared].isspace()
    )
    if not at_boundary:
        match = _LAST_SPACE.search(chosen, 0, shared)
        shared = match.start() if match else 0
    prompt = chosen[:shared].rstrip()
    if not prompt:
        raise InvalidRow("implicit prompt: chosen and rejected share no prompt", "chosen")
    return prompt, chosen[shared:].lstrip(), rejected[shared:].lstrip()


def standard_implicit(row: dict) -> dict:
    """``chosen``/``rejected`` texts that start with the same prompt."""
    prompt, chosen, rejected = split_text(
        text(row.get("chosen"), "chosen"), text(row.get("rejected"), "rejected")
    )
    pair = make_pair(
        [{"role": ASSISTANT, "content": chosen}],
        [{"role": ASSISTANT, "content": rejected}],
        prompt=[{"role": USER, "content": prompt}],
    )
    return {**pair, **_kept_metadata(row)}


_COMMON = {"reads": tuple(METADATA), "metadata_fn": passthrough_metadata}

register(
    Format(
        name="trl-conversational",
        normalize_row=conversational,
        required=("prompt", "chosen", "rejected"),
        check=column_is("prompt", "messages"),
        description="TRL conversational, explicit prompt",
        expected="`prompt`: messages ending with a user turn; `chosen`/`rejected`: one assistant message each",
        **_COMMON,
    )
)
register(
    Format(
        name="trl-conversational-implicit",
        normalize_row=conversational_implicit,
        required=("chosen", "rejected"),
        check=column_is("chosen", "messages"),
        description="TRL conversational, implicit prompt",
        expected="`chosen`/`rejected`: the same dialogue, differing only in the last assistant message",
        **_COMMON,
    )
)
register(
    Format(
        name="trl-standard",
        normalize_row=standard,
        required=("prompt", "chosen", "rejected"),
        check=lambda rows: column_is("prompt", "text")(rows) and column_is("chosen", "text")(rows),
        description="TRL standard (plain text), explicit prompt",
        expected="`prompt`, `chosen`, `rejected`: text",
        **_COMMON,
    )
)
register(
    Format(
        name="trl-standard-implicit",
        normalize_row=standard_implicit,
        required=("chosen", "rejected"),
        check=column_is("chosen", "text"),
        description="TRL standard (plain text), implicit prompt",
        expected="`chosen`/`rejected`: texts that start with the same prompt",
        **_COMMON,
    )
)

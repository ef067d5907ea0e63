"""TRL's own preference formats, and :func:`pair`, which the families whose rows are a prompt, a chosen
and a rejected cell under other names (Intel's ``question``, Argilla's ``instruction``, ...) share.
"""

from __future__ import annotations

import re

from ..messages import (
    ASSISTANT,
    SYSTEM,
    USER,
    BadLabel,
    InvalidRow,
    check_completion,
    check_prompt,
    flag,
    is_missing,
    make_pair,
    messages,
    shared_prefix,
    text,
    text_or_messages,
)

_LAST_SPACE = re.compile(r"\s\S*\Z")


def pair(row: dict, prompt="prompt", chosen="chosen", rejected="rejected", system="system") -> dict:
    """The pair held in the columns ``prompt``, ``chosen``, ``rejected`` (and ``system``) of ``row``."""
    return make_pair(row.get(chosen), row.get(rejected), prompt=row.get(prompt), system=row.get(system))


def prompt_or_question(row: dict) -> dict:
    """mlabonne/orpo-dpo-mix-40k (*unverified* columns): dialogues, or a completion with ``prompt``/``question``."""
    return make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt", row.get("question")))


def split_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """``(prompt, chosen, rejected)`` from two texts sharing a prompt, cut at a word boundary.

    TRL's ``extract_prompt`` cuts at the first differing character, which can split a word
    ("The sky is bl" + "ue"); here the cut moves back to the last whitespace, and the
    whitespace around the cut is dropped (the prompt becomes a chat turn of its own).
    """
    if chosen == rejected:
        raise InvalidRow("implicit prompt: identical texts, no prompt to tell apart", "chosen")
    shared = shared_prefix(chosen, rejected)
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
    return make_pair(
        [{"role": ASSISTANT, "content": chosen}],
        [{"role": ASSISTANT, "content": rejected}],
        prompt=[{"role": USER, "content": prompt}],
    )


def unpaired(row: dict) -> dict:
    """TRL's unpaired preference row (KTO): ``prompt``, one ``completion`` and a ``label`` (True: desirable)."""
    prompt = text_or_messages(row.get("prompt"), "prompt", USER)
    completion = text_or_messages(row.get("completion"), "completion", ASSISTANT)
    check_prompt(prompt)
    check_completion(completion, "completion")
    label = flag(row.get("label"))
    if label is None:
        raise BadLabel(f"got {row.get('label')!r}", "label")
    return {"prompt": prompt, "completion": completion, "label": label}


# --- SFT rows: a prompt and its one target answer (or a text), no rejected answer ---
def prompt_completion(row: dict, prompt="prompt", completion="completion", system="system") -> dict:
    """TRL's prompt-completion row (SFT): a ``prompt`` and the ``completion`` to learn, text or messages."""
    prompt_messages = text_or_messages(row.get(prompt), prompt, USER)
    if is_missing(row.get(completion)):
        raise InvalidRow(f"{completion}: missing value", completion)
    answer = text_or_messages(row.get(completion), completion, ASSISTANT)
    if not is_missing(row.get(system)):
        system_text = text(row.get(system), system)
        if system_text.strip() and prompt_messages[0]["role"] != SYSTEM:
            prompt_messages = [{"role": SYSTEM, "content": system_text}, *prompt_messages]
    check_prompt(prompt_messages, prompt)
    check_completion(answer, completion)
    return {"prompt": prompt_messages, "completion": answer}


def conversation(row: dict) -> dict:
    """TRL's conversational language-modelling row (SFT): ``messages`` ending with the assistant's answer,
    which is the target; the turns before it are the prompt."""
    turns = messages(row.get("messages"), "messages")
    if turns[-1]["role"] != ASSISTANT:
        raise InvalidRow(
            "messages: the last message is not the assistant's", "messages", f"it is {turns[-1]['role']!r}"
        )
    prompt = turns[:-1]
    check_prompt(prompt, "messages")
    return {"prompt": prompt, "completion": turns[-1:]}


def language_modeling(row: dict) -> dict:
    """TRL's language-modelling row (SFT): one ``text``, every token of it learned."""
    value = text(row.get("text"), "text")
    if not value.strip():
        raise InvalidRow("text: empty", "text")
    return {"text": value}

"""Anthropic/hh-rlhf: whole dialogues as text, ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``.

The prompt is the shared prefix up to the last ``"\\n\\nAssistant: "``; the completions follow it.
Lossless (:func:`to_text` rebuilds every row :func:`normalize_row` accepts): a turn starts only at
``"\\n\\nHuman: "`` or ``"\\n\\nAssistant: "`` (``Human:`` elsewhere is content; a marker that repeats
the previous speaker is quoted text in that turn), contents are kept character for character (the
real data's extra spaces and newlines too), and rows that cannot be split so are set aside with a
reason: texts that differ before the last assistant turn, text that does not start with
``"\\n\\nHuman: "``, an empty last turn written ``"\\n\\nAssistant:"`` with no space (not rebuildable).
"""

from __future__ import annotations

import re

from ..messages import ASSISTANT, USER, InvalidRow, check_prompt, text

ASSISTANT_MARK = "\n\nAssistant: "
_TURN = re.compile(r"\n\n(Human|Assistant): ")
_SPEAKER = {USER: "Human", ASSISTANT: "Assistant"}


def _last_assistant(dialogue: str, column: str) -> int:
    if dialogue.endswith(ASSISTANT_MARK[:-1]):
        raise InvalidRow("hh-rlhf: empty last turn written without the space after 'Assistant:'", column)
    cut = dialogue.rfind(ASSISTANT_MARK)
    if cut < 0:
        raise InvalidRow("hh-rlhf: no '\\n\\nAssistant: ' turn", column)
    return cut


def _turns(prefix: str) -> list[dict[str, str]]:
    parts = _TURN.split(prefix)
    if parts[0]:
        raise InvalidRow("hh-rlhf: text does not start with '\\n\\nHuman: '", "chosen")
    turns: list[dict[str, str]] = []
    for i in range(1, len(parts), 2):
        role = USER if parts[i] == "Human" else ASSISTANT
        if turns and turns[-1]["role"] == role:  # "\n\nHuman: " quoted inside a human turn
            turns[-1]["content"] += f"\n\n{parts[i]}: {parts[i + 1]}"
        else:
            turns.append({"role": role, "content": parts[i + 1]})
    return turns


def normalize_row(row: dict) -> dict:
    """``{"chosen": str, "rejected": str}`` dialogues -> explicit-prompt conversational pair."""
    chosen = text(row.get("chosen"), "chosen")
    rejected = text(row.get("rejected"), "rejected")
    cut_chosen = _last_assistant(chosen, "chosen")
    cut_rejected = _last_assistant(rejected, "rejected")
    if chosen[:cut_chosen] != rejected[:cut_rejected]:
        raise InvalidRow("hh-rlhf: chosen and rejected differ before the last assistant turn", "rejected")
    prompt = _turns(chosen[:cut_chosen])
    check_prompt(prompt)
    return {
        "prompt": prompt,
        "chosen": [{"role": ASSISTANT, "content": chosen[cut_chosen + len(ASSISTANT_MARK) :]}],
        "rejected": [{"role": ASSISTANT, "content": rejected[cut_rejected + len(ASSISTANT_MARK) :]}],
    }


def to_text(prompt: list[dict], completion: list[dict]) -> str:
    """The inverse of :func:`normalize_row`: messages back to ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``."""
    return "".join(f"\n\n{_SPEAKER[m['role']]}: {m['content']}" for m in (*prompt, *completion))


def looks_like_hh(rows: list[dict]) -> bool:
    """The ``check`` of the format: a ``chosen`` text with an ``\\n\\nAssistant:`` turn."""
    return any(isinstance(r.get("chosen"), str) and ASSISTANT_MARK[:-1] in r["chosen"] for r in rows)

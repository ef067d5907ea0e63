"""LLaMA-Factory's preference shapes (``alpaca``, ``sharegpt``) and axolotl's ``chat_template``.

alpaca's ``input`` is joined to ``instruction`` with a newline, as LLaMA-Factory does; its
``history`` is earlier ``[user, assistant]`` text pairs. sharegpt's prompt is ``conversations``
(axolotl: ``messages``) in ``{from, value}`` or ``{role, content}`` turns.
"""

from __future__ import annotations

from ..messages import (
    ASSISTANT,
    InvalidRow,
    check_completion,
    is_missing,
    make_pair,
    maybe_json,
    messages,
    text,
    text_or_messages,
)


def sharegpt(row: dict, prompt: str = "conversations") -> dict:
    return make_pair(
        row.get("chosen"),
        row.get("rejected"),
        prompt=messages(row.get(prompt), prompt),
        system=row.get("system"),
    )


def alpaca_prompt(row: dict) -> list[dict]:
    """An alpaca row's prompt: its ``history`` turns, then ``instruction`` (and ``input``) as the user's."""
    instruction = text(row.get("instruction"), "instruction")
    extra = row.get("input")
    query = instruction if is_missing(extra) or extra == "" else f"{instruction}\n{text(extra, 'input')}"
    turns = []
    history = maybe_json(row.get("history"))
    if not is_missing(history) and not isinstance(history, list):
        raise InvalidRow("history: expected a list of [user, assistant] turns", "history")
    for turn in [] if is_missing(history) else history:
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise InvalidRow("history: expected [user, assistant] text pairs", "history")
        turns += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    return [*turns, {"role": "user", "content": query}]


def alpaca(row: dict) -> dict:
    return make_pair(
        row.get("chosen"), row.get("rejected"), prompt=alpaca_prompt(row), system=row.get("system")
    )


def alpaca_sft(row: dict) -> dict:
    """An alpaca instruction row (SFT): ``instruction``, ``input``, ``output`` (the target), ``system``."""
    from .trl import prompt_completion

    completion = text_or_messages(row.get("output"), "output", ASSISTANT)
    check_completion(completion, "output")
    return prompt_completion(
        {"prompt": alpaca_prompt(row), "completion": completion, "system": row.get("system")}
    )

"""What the row functions are built from: read cells and messages, build a validated TRL pair, or
raise :class:`InvalidRow` (does not fit) / :class:`DroppedRow` (skipped on purpose) with a counted reason,
or :class:`Refused` (data smol_align cannot train as it is: an error even with ``strict=False``).

TRL's ``extract_prompt`` does the shared-prefix split too, but it fails on empty lists
(``UnboundLocalError``) and cannot say why a pair does not split, hence :func:`split_shared_prefix`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

Message = dict[str, str]

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"

# Speaker names seen in the wild (ShareGPT, OpenAssistant, Gemini-style exports) -> TRL roles.
ROLE_ALIASES = {
    "user": USER,
    "human": USER,
    "prompter": USER,
    "system": SYSTEM,
    "assistant": ASSISTANT,
    **dict.fromkeys(("gpt", "bot", "model", "chatgpt", "ai"), ASSISTANT),
}

ROLE_ORDER = "role order"  # prefix of every reason about the order of turns (the doctor counts them)
TOOL_ROLES = ("tool", "function", "ipython")  # turns that carry a tool's output
MISSING_SCORES = ("", "n/a", "na", "nan", "none", "null", "-")  # score cells that mean "no score"


class RowSetAside(Exception):
    """A row that does not reach the output. ``reason`` is a category; ``detail`` is about this row."""

    invalid = True
    hint = ""  # the fix, said after what was expected

    def __init__(self, reason: str, column: str | None = None, detail: str | None = None):
        super().__init__(reason if detail is None else f"{reason} ({detail})")
        self.reason, self.column, self.detail = reason, column, detail


class InvalidRow(RowSetAside):
    """The row does not fit the format (``strict=True`` turns it into ``DatasetFormatError``)."""


class Refused(InvalidRow):
    """Raised even with ``strict=False``: setting such rows aside would change what the data teaches."""


class BadLabel(Refused):
    """A KTO ``label`` in another encoding ("good", a 1-5 score) would otherwise train on the wrong side,
    or on nothing."""


class ToolUse(Refused):
    """Tool calls and tool turns: smol_align's pairs hold text turns only, so they would be lost."""

    hint = (
        " smol_align trains on text turns only, so tool calls and tool turns would be lost: remove those"
        " rows (e.g. dataset.filter(...)) or train them with TRL's DPOTrainer directly."
    )


class DroppedRow(RowSetAside):
    """The row fits but a recipe skips it on purpose (e.g. a tie when binarizing ratings)."""

    invalid = False


def maybe_json(value: Any) -> Any:
    """A list stored as a JSON string (after a CSV round trip) comes back as the list; else unchanged."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and ("role" in value or "from" in value)


def is_missing(value: Any) -> bool:
    """``None``, or the NaN that pandas leaves in an empty CSV cell."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def text(value: Any, column: str) -> str:
    """A required text cell."""
    if isinstance(value, str):
        return value
    if is_missing(value):
        raise InvalidRow(f"{column}: missing value", column)
    raise InvalidRow(f"{column}: expected text", column, f"got {type(value).__name__}")


def optional_text(value: Any, column: str) -> str | None:
    """Metadata text: ``None`` (NaN) stays ``None``, numbers become text; a list or a record does not fit."""
    if is_missing(value) or isinstance(value, str):
        return value if isinstance(value, str) else None
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise InvalidRow(f"{column}: expected text", column, f"got {type(value).__name__}")


def score(value: Any) -> float | None:
    """A rating as a float, or ``None`` for a missing one (``None``, NaN, ``"N/A"``, text); for raw
    ratings inside a record (UltraFeedback's), which :func:`rating` then checks as a column."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def rating(value: Any, column: str) -> float | None:
    """A score column's cell as a float: ``None`` when missing (``None``, NaN, empty, ``"N/A"``); text that is
    not a number (``"high"``, ``"7/10"``) or an infinite one does not fit, rather than vanish."""
    if is_missing(value) or (isinstance(value, str) and value.strip().lower() in MISSING_SCORES):
        return None
    number = score(value)
    if number is None:
        raise InvalidRow(f"{column}: not a number", column, f"got {value!r}")
    return number


def flag(value: Any) -> bool | None:
    """A boolean cell that may have gone through CSV (``"True"``/``"false"``/``1``) or be missing."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def optional_flag(value: Any, column: str) -> bool | None:
    """A metadata flag (:func:`flag`): missing is ``None``; a cell that is not true or false does not fit."""
    if is_missing(value):
        return None
    if flag(value) is None:
        raise InvalidRow(f"{column}: expected true or false", column, f"got {value!r}")
    return flag(value)


def message(item: Any, column: str) -> Message:
    """One message as ``{"role", "content"}``; accepts ``role``/``content`` or ShareGPT ``from``/``value``."""
    if not isinstance(item, dict):
        raise InvalidRow(
            f"{column}: malformed message", column, f"expected a dict, got {type(item).__name__}"
        )
    # a key set to None counts as absent: arrow gives every message of a column every key any of them has
    role = item.get("from") if item.get("role") is None else item["role"]
    content = item.get("value") if item.get("content") is None else item["content"]
    if not isinstance(role, str):
        raise InvalidRow(f"{column}: malformed message", column, "no 'role' (or 'from') text")
    calls = next((key for key in ("tool_calls", "function_call") if item.get(key)), None)
    if calls or role.strip().lower() in TOOL_ROLES:
        raise ToolUse(f"{column}: tool use", column, f"role {role!r}" + (f" with {calls!r}" if calls else ""))
    canonical = ROLE_ALIASES.get(role.strip().lower())
    if canonical is None:
        raise InvalidRow(f"{column}: unknown role", column, f"role {role!r}")
    # TRL's vision messages: their text parts (TRL's collator puts the row's images in the user turn)
    if _is_parts(content):
        content = " ".join(part["text"] for part in content if part["type"] == "text")
    if not isinstance(content, str):
        got = "content null" if content is None else type(content).__name__
        raise InvalidRow(f"{column}: message content is not text", column, f"got {got}")
    return {"role": canonical, "content": content}


def _is_parts(content: Any) -> bool:
    """Typed content parts (``[{"type": "image"}, {"type": "text", "text": ...}]``) of text and images only."""
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(p, dict) and p.get("type") in ("text", "image") for p in content)
        and all(isinstance(p.get("text"), str) for p in content if p["type"] == "text")
        and not any(p.get(k) is not None for p in content if p["type"] == "image" for k in p if k != "type")
    )  # an image inside a message (its "image", "url", "path") is not read: such content is refused


def is_message_list(value: Any, lone: bool = False) -> bool:
    """A non-empty list of message dicts, or the JSON of one (``lone``: one message dict counts too)."""
    value = maybe_json(value)
    value = [value] if lone and isinstance(value, dict) else value
    return isinstance(value, list) and bool(value) and all(is_message(m) for m in value)


def messages(value: Any, column: str) -> list[Message]:
    """A list of messages (or its JSON string); a lone message dict counts as a list of one."""
    value = maybe_json(value)
    if isinstance(value, dict):
        value = [value]
    if is_missing(value):
        raise InvalidRow(f"{column}: missing value", column)
    if not isinstance(value, list):
        raise InvalidRow(f"{column}: expected a list of messages", column, f"got {type(value).__name__}")
    if not value:
        raise InvalidRow(f"{column}: empty list of messages", column)
    return [message(item, column) for item in value]


def text_or_messages(value: Any, column: str, role: str) -> list[Message]:
    """Plain text (JSON too, unless it holds messages: ``'{"answer": 42}'`` stays text) becomes one
    ``role`` message; message lists (or their JSON) are read as such."""
    if isinstance(value, str) and not is_message_list(value, lone=True):
        return [{"role": role, "content": value}]
    if not isinstance(value, (str, list, dict)) and not is_missing(value):
        raise InvalidRow(f"{column}: expected text or messages", column, f"got {type(value).__name__}")
    return messages(value, column)


def check_prompt(prompt: list[Message], column: str = "prompt") -> None:
    """Optional system first, then user/assistant alternating, starting and ending with user."""
    turns = prompt[1:] if prompt and prompt[0]["role"] == SYSTEM else prompt
    if not turns:
        raise InvalidRow(f"{ROLE_ORDER}: prompt has no user turn", column)
    for i, m in enumerate(turns):
        if m["role"] == SYSTEM:
            raise InvalidRow(f"{ROLE_ORDER}: system message after the first turn", column)
        if m["role"] != (USER, ASSISTANT)[i % 2]:
            what = "prompt does not start with a user turn" if i == 0 else f"two {m['role']} turns in a row"
            raise InvalidRow(f"{ROLE_ORDER}: {what}", column)
    if turns[-1]["role"] != USER:
        raise InvalidRow(f"{ROLE_ORDER}: prompt ends with an assistant turn", column)


def check_completion(completion: list[Message], column: str) -> None:
    """A completion is exactly one assistant message."""
    if len(completion) != 1 or completion[0]["role"] != ASSISTANT:
        roles = "/".join(m["role"] for m in completion) or "nothing"
        raise InvalidRow(f"{column}: expected one assistant message", column, f"got {roles}")


def shared_prefix(a: Sequence, b: Sequence) -> int:
    """How many leading items (messages, characters) ``a`` and ``b`` share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def split_shared_prefix(chosen: list[Message], rejected: list[Message]):
    """``(prompt, chosen, rejected)`` from two dialogues that share everything but the last turn."""
    shared = shared_prefix(chosen, rejected)
    if shared == len(chosen) == len(rejected):  # identical dialogues: the last turn is the completion
        shared -= 1
    if shared == 0:
        raise InvalidRow("implicit prompt: chosen and rejected share no prompt", "chosen")
    prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if len(chosen) != 1 or len(rejected) != 1:
        longer = "chosen" if len(chosen) != 1 else "rejected"
        raise InvalidRow(
            "implicit prompt: chosen and rejected differ before the last turn",
            longer,
            f"{len(chosen)} and {len(rejected)} messages after the shared prefix",
        )
    return prompt, chosen, rejected


def answer_after(prompt: list[Message], completion: list[Message], column: str) -> list[Message]:
    """The last message of a ``completion`` that repeats the end of ``prompt`` before its answer (axolotl's
    ``chat_template`` rows: ``messages`` is the prompt, ``chosen`` may be ``[user, assistant]``). Messages
    that are in neither the prompt nor the answer do not fit: they would be lost."""
    before = completion[:-1]
    if before and prompt[len(prompt) - len(before) :] != before:
        what = f"{len(before)} message(s) before the last one"
        raise InvalidRow(f"{column}: turns before the answer that the prompt does not end with", column, what)
    return completion[-1:]


def make_pair(chosen: Any, rejected: Any, prompt: Any = None, system: Any = None) -> dict[str, list[Message]]:
    """A validated TRL conversational pair with an explicit prompt. ``chosen``/``rejected``: completions
    (text or assistant messages), or whole dialogues: with a ``prompt`` of messages, their turns before the
    answer must be the end of it; else their shared leading messages are the prompt (then a text ``prompt``,
    often a copy of the first user turn, is not used); ``prompt``: text or messages; ``system``: text, put
    first unless the prompt has a system message."""
    chosen = text_or_messages(chosen, "chosen", ASSISTANT)
    rejected = text_or_messages(rejected, "rejected", ASSISTANT)
    dialogues = chosen[0]["role"] != ASSISTANT or rejected[0]["role"] != ASSISTANT
    if dialogues and (isinstance(prompt, (list, dict)) or is_message_list(prompt, lone=True)):
        prompt_messages = messages(prompt, "prompt")
        chosen = answer_after(prompt_messages, chosen, "chosen")
        rejected = answer_after(prompt_messages, rejected, "rejected")
    elif dialogues:
        prompt_messages, chosen, rejected = split_shared_prefix(chosen, rejected)
    else:
        if is_missing(prompt) and max(len(chosen), len(rejected)) > 1:  # dialogues that open with the answer
            raise InvalidRow(f"{ROLE_ORDER}: dialogue does not start with a user turn", "chosen")
        if is_missing(prompt):
            raise InvalidRow("prompt: missing value", "prompt")
        prompt_messages = text_or_messages(prompt, "prompt", USER)
    if not is_missing(system):
        system = text(system, "system")
        if system.strip() and prompt_messages[0]["role"] != SYSTEM:
            prompt_messages = [{"role": SYSTEM, "content": system}, *prompt_messages]
    check_prompt(prompt_messages)
    check_completion(chosen, "chosen")
    check_completion(rejected, "rejected")
    return {"prompt": prompt_messages, "chosen": chosen, "rejected": rejected}

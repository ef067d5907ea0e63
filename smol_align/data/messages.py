"""What the row functions are built from: read cells and messages, build a validated TRL pair, or
raise :class:`InvalidRow` (does not fit) / :class:`DroppedRow` (skipped on purpose) with a counted reason.

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
ROLE_ALIASES = {"user": USER, "human": USER, "prompter": USER, "system": SYSTEM, "assistant": ASSISTANT,
                **dict.fromkeys(("gpt", "bot", "model", "chatgpt", "ai"), ASSISTANT)}  # fmt: skip

ROLE_ORDER = "role order"  # prefix of every reason about the order of turns (the doctor counts them)


class RowSetAside(Exception):
    """A row that does not reach the output. ``reason`` is a category; ``detail`` is about this row."""

    invalid = True

    def __init__(self, reason: str, column: str | None = None, detail: str | None = None):
        super().__init__(reason if detail is None else f"{reason} ({detail})")
        self.reason, self.column, self.detail = reason, column, detail


class InvalidRow(RowSetAside):
    """The row does not fit the format (``strict=True`` turns it into ``DatasetFormatError``)."""


class BadLabel(InvalidRow):
    """Raised even with ``strict=False``: a KTO ``label`` in another encoding ("good", a 1-5 score)
    would otherwise train on the wrong side, or on nothing."""


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


def optional_text(value: Any) -> str | None:
    """Metadata text: ``None`` stays ``None``, numbers become text."""
    if isinstance(value, (int, float, bool)) and not is_missing(value):
        return str(value)
    return value if isinstance(value, str) else None


def score(value: Any) -> float | None:
    """A rating as a float, or ``None`` for a missing one (``None``, NaN, ``"N/A"``, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def flag(value: Any) -> bool | None:
    """A boolean cell that may have gone through CSV (``"True"``/``"false"``/``1``) or be missing."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def message(item: Any, column: str) -> Message:
    """One message as ``{"role", "content"}``; accepts ``role``/``content`` or ShareGPT ``from``/``value``."""
    if not isinstance(item, dict):
        raise InvalidRow(f"{column}: malformed message", column, f"expected a dict, got {type(item).__name__}")
    role = item.get("role", item.get("from"))
    content = item.get("content", item.get("value"))
    if not isinstance(role, str):
        raise InvalidRow(f"{column}: malformed message", column, "no 'role' (or 'from') text")
    canonical = ROLE_ALIASES.get(role.strip().lower())
    if canonical is None:
        raise InvalidRow(f"{column}: unknown role", column, f"role {role!r}")
    if not isinstance(content, str):
        raise InvalidRow(f"{column}: message content is not text", column, f"got {type(content).__name__}")
    return {"role": canonical, "content": content}


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


def make_pair(chosen: Any, rejected: Any, prompt: Any = None, system: Any = None) -> dict[str, list[Message]]:
    """A validated TRL conversational pair with an explicit prompt. ``chosen``/``rejected``: completions
    (text or assistant messages), or whole dialogues whose shared leading messages are the prompt (then
    ``prompt``, often a text copy of the first user turn, is not used); ``prompt``: text or messages;
    ``system``: text, put first unless the prompt has a system message."""
    chosen = text_or_messages(chosen, "chosen", ASSISTANT)
    rejected = text_or_messages(rejected, "rejected", ASSISTANT)
    if chosen[0]["role"] != ASSISTANT or rejected[0]["role"] != ASSISTANT:
        prompt_messages, chosen, rejected = split_shared_prefix(chosen, rejected)
    else:
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


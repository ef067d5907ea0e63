"""The format registry: one :class:`Format` per preference-dataset schema, and detection.

A format says which columns it needs (``required``), which columns make it recognisable
(``signature``), how to look at the first rows (``check``), and how to turn one row into a TRL
pair (``normalize_row``, a pure function). :func:`detect` scores every format against a
dataset's columns and first rows:

    score = 10 per required column + 3 per signature column present + 5 if ``check`` passes

(0 if a required column is missing or ``check`` fails). Ties go to the format registered first;
``formats/__init__.py`` registers the specific families before TRL's generic formats.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DatasetFormatError
from .messages import flag, optional_text, score

# Metadata kept in the output, under these stable names whatever the source calls them.
# name -> (datasets dtype, coercion applied to every value)
METADATA: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "source": ("string", optional_text),
    "prompt_id": ("string", optional_text),
    "category": ("string", optional_text),
    "score_chosen": ("float64", score),
    "score_rejected": ("float64", score),
    "model_chosen": ("string", optional_text),
    "model_rejected": ("string", optional_text),
    "status": ("string", optional_text),
    "in_gsm8k_train": ("bool", flag),
    "preference_prob": ("float64", score),  # P(chosen > rejected), for train_dpo(loss_type="soft")
}

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class Format:
    """One dataset schema: how to recognise it and how to normalize one of its rows."""

    name: str
    normalize_row: Callable[..., dict]
    required: tuple[str, ...]
    description: str
    expected: str  # what a row should look like, quoted in error messages
    signature: tuple[str, ...] = ()
    check: Callable[[list[dict]], bool] | None = None
    metadata: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()  # other columns normalize_row may read
    hub_ids: Mapping[str, str] = field(default_factory=dict)  # hub id -> its usual preference split
    stream_from_hub: bool = False  # too big to download whole: load from the hub with streaming=True
    options: Mapping[str, Any] = field(default_factory=dict)  # option -> default
    option_choices: Mapping[str, tuple] = field(default_factory=dict)
    detectable: bool = True
    # For formats whose columns depend on the data or the options (TRL pass-through, columns=):
    metadata_fn: Callable[[Sequence[str], Mapping[str, Any]], tuple[str, ...]] | None = None
    reads_fn: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None

    def score(self, columns: Sequence[str], rows: list[dict]) -> int:
        present = set(columns)
        if not self.detectable or not set(self.required) <= present:
            return 0
        if self.check is not None and not self.check(rows):
            return 0
        return 10 * len(self.required) + 3 * len(present & set(self.signature)) + (5 if self.check else 0)

    def output_metadata(self, columns: Sequence[str], options: Mapping[str, Any]) -> tuple[str, ...]:
        return self.metadata_fn(columns, options) if self.metadata_fn else self.metadata

    def columns_read(self, columns: Sequence[str], options: Mapping[str, Any]) -> list[str]:
        wanted = self.reads_fn(options) if self.reads_fn else (*self.required, *self.signature, *self.reads)
        present = set(columns)
        return [c for c in dict.fromkeys(wanted) if c in present]

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options with defaults filled in; ``ConfigError`` names a bad key or value."""
        unknown = set(options) - set(self.options)
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(
                f"format {self.name!r} has no option {sorted(unknown)[0]!r} (its options: {known})"
            )
        merged = {**self.options, **options}
        for key, choices in self.option_choices.items():
            if merged[key] not in choices:
                raise ConfigError(
                    f"format {self.name!r}: {key}={merged[key]!r} is not one of {', '.join(map(repr, choices))}"
                )
        return merged


_REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in _REGISTRY:
        raise ValueError(f"format {fmt.name!r} is registered twice")
    _REGISTRY[fmt.name] = fmt
    return fmt


def _ensure_loaded() -> None:
    from . import formats  # noqa: F401  (importing the package registers every family)


def formats() -> list[str]:
    """The names of the registered formats, usable as ``normalize(..., source=NAME)``."""
    _ensure_loaded()
    return list(_REGISTRY)


def get_format(name: str) -> Format:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(
            f"unknown source format {name!r}.{hint} Known formats: {', '.join(_REGISTRY)}"
        ) from None


# ------------------------------------------------------------------------------------------------
# hub ids
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSpec:
    """How to load a hub id: the repo, its sub-folder (``Anthropic/hh-rlhf/harmless-base``), format, split."""

    repo: str
    data_dir: str | None
    format: str | None
    split: str | None
    streaming: bool


def hub_spec(hub_id: str) -> HubSpec:
    """Map a hub id to its format and usual split, without touching the network.

    ``owner/name/sub/folder`` loads ``owner/name`` with ``data_dir="sub/folder"`` (HH-RLHF keeps its
    subsets that way). Unknown ids get no format (detected after loading) and no split.
    """
    _ensure_loaded()
    parts = hub_id.strip("/").split("/")
    repo, data_dir = "/".join(parts[:2]), "/".join(parts[2:]) or None
    for fmt in _REGISTRY.values():
        for known, split in fmt.hub_ids.items():
            if known.lower() == repo.lower():
                return HubSpec(known, data_dir, fmt.name, split, fmt.stream_from_hub)
    return HubSpec(repo, data_dir, None, None, False)


# ------------------------------------------------------------------------------------------------
# detection
# ------------------------------------------------------------------------------------------------


def detect(columns: Sequence[str], rows: list[dict], dataset: str | None = None) -> str:
    """The name of the format that fits ``columns`` and ``rows`` best; ``DatasetFormatError`` if none."""
    _ensure_loaded()
    scores = [(fmt.score(columns, rows), -i, fmt.name) for i, fmt in enumerate(_REGISTRY.values())]
    best = max(scores)
    if best[0] > 0:
        return best[2]
    raise DatasetFormatError(unknown_schema_message(columns, dataset), dataset=dataset)


def unknown_schema_message(columns: Sequence[str], dataset: str | None) -> str:
    """Columns found, the closest formats (and what they miss), and how to pass ``columns=``."""
    present = set(columns)
    ranked = []
    for fmt in _REGISTRY.values():
        if not fmt.detectable:
            continue
        known = set(fmt.required) | set(fmt.signature)
        overlap = len(present & known) / len(known | present) if known | present else 0.0
        ranked.append((overlap, fmt))
    ranked.sort(key=lambda pair: -pair[0])
    lines = [
        f"{dataset or 'the dataset'}: no known preference format fits its columns {sorted(map(str, columns))}.",
        "Closest known formats:",
    ]
    for _, fmt in ranked[:3]:
        missing = [c for c in fmt.required if c not in present]
        why = f"missing {missing}" if missing else "its first rows do not look like it"
        lines.append(f"  - {fmt.name} ({fmt.description}): {why}")
    lines.append(
        "Name your columns instead, e.g. normalize(data, columns="
        f"{guess_columns(columns)!r}) (keys: prompt, chosen, rejected, optional system), "
        "or force a format with source=NAME (see smol_align.data.formats())."
    )
    return "\n".join(lines)


_COLUMN_HINTS = {
    "prompt": ("prompt", "question", "instruction", "input", "query", "conversation", "context"),
    "chosen": ("chosen", "accepted", "preferred", "better", "good", "positive", "win"),
    "rejected": ("rejected", "dispreferred", "worse", "bad", "negative", "lose"),
    "system": ("system",),
}


def guess_columns(columns: Sequence[str]) -> dict[str, str]:
    """A best guess at a ``columns=`` mapping from column names (for error messages)."""
    guess = {}
    names = [c for c in columns if isinstance(c, str)]
    for key, hints in _COLUMN_HINTS.items():
        for hint in hints:
            match = next((c for c in names if hint in c.lower() and c not in guess.values()), None)
            if match is not None:
                guess[key] = match
                break
        else:
            if key != "system":
                guess[key] = f"<your {key} column>"
    return guess


# ------------------------------------------------------------------------------------------------
# helpers for format modules
# ------------------------------------------------------------------------------------------------


def take_metadata(row: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """``{stable name: coerced row[source column]}`` for each entry of ``mapping``."""
    return {name: METADATA[name][1](row.get(column)) for name, column in mapping.items()}


def passthrough_metadata(columns: Sequence[str], options: Mapping[str, Any]) -> tuple[str, ...]:
    """For formats already in TRL's shape: keep whichever stable metadata columns are there."""
    return tuple(name for name in METADATA if name in set(columns))


def first_value(rows: list[dict], column: str) -> Any:
    return next((row[column] for row in rows if row.get(column) is not None), None)


def column_is(column: str, kind: str) -> Callable[[list[dict]], bool]:
    """A ``check``: the first non-empty value of ``column`` is ``"messages"`` or ``"text"``."""
    from .messages import is_message_list

    def check(rows: list[dict]) -> bool:
        value = first_value(rows, column)
        if value is None:
            return True  # nothing to look at: the columns decide
        if kind == "messages":
            return is_message_list(value) or (
                isinstance(value, dict) and ("role" in value or "from" in value)
            )
        return isinstance(value, str) and not is_message_list(value)

    return check


def all_of(*checks: Callable[[list[dict]], bool]) -> Callable[[list[dict]], bool]:
    return lambda rows: all(check(rows) for check in checks)

"""Filters over normalized pairs: all off unless asked for, one by one or through a named recipe.

Each is a pure predicate on one normalized row; :func:`drop_reason` names the first that drops a
row (in :data:`FILTERS` order), so every dropped row is counted once, under one name.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

# Each filter option and its reason, as counted in NormalizeReport.dropped.
FILTERS = {
    "drop_empty": "empty completion",
    "drop_identical": "identical pair",
    "drop_ties": "tie",
    "min_margin": "low margin",
    "argilla_orca": "argilla-orca recipe",
    "dedupe_prompts": "duplicate prompt",
}

RECIPES: dict[str, dict[str, Any]] = {
    # https://huggingface.co/datasets/argilla/distilabel-intel-orca-dpo-pairs (dataset card)
    "argilla-orca": {"argilla_orca": True},
    # what the doctor flags, dropped: pairs that carry no preference signal, repeated prompts
    "clean": {"drop_empty": True, "drop_identical": True, "drop_ties": True, "dedupe_prompts": True},
}


def resolve(recipe: str | None = None, **options: Any) -> dict[str, Any]:
    """The active filters: a recipe's, overridden by explicit options; ``ConfigError`` on a bad one."""
    active: dict[str, Any] = {}
    if recipe is not None:
        if recipe not in RECIPES:
            raise ConfigError(f"unknown filters={recipe!r}; named sets: {', '.join(RECIPES)}")
        active.update(RECIPES[recipe])
    for key, value in options.items():
        if key not in FILTERS:
            raise ConfigError(f"unknown filter {key!r}; filters: {', '.join(FILTERS)}, or filters=NAME")
        active[key] = value
    margin = active.get("min_margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise ConfigError(f"min_margin must be a number (a rating difference), got {margin!r}")
    return {key: value for key, value in active.items() if value not in (None, False)}


def take(options: dict) -> dict[str, Any]:
    """The active filters that ``options`` names (``filters=NAME`` and single ones), taken out of it."""
    wanted = {key: options.pop(key) for key in list(options) if key in FILTERS or key == "filters"}
    return resolve(wanted.pop("filters", None), **wanted)


def check_columns(active: Mapping[str, Any], columns: list[str], format_name: str) -> None:
    """Rating filters need rating columns (``drop_ties``: or ``status``): say so rather than keep everything."""
    ratings = ("score_chosen", "score_rejected")
    needs = {
        "drop_ties": ratings,
        "min_margin": ratings,
        "argilla_orca": ("score_chosen", "status", "in_gsm8k_train"),
    }
    for key, wanted in needs.items():
        if (
            key in active
            and not set(wanted) <= set(columns)
            and not (key == "drop_ties" and "status" in columns)
        ):
            raise ConfigError(
                f"filter {key} needs the columns {list(wanted)}, which format {format_name!r} "
                "does not provide"
            )


def completion_text(completion: list[dict]) -> str:
    return "".join(m["content"] for m in completion)


def is_empty(row: Mapping[str, Any]) -> bool:
    return not completion_text(row["chosen"]).strip() or not completion_text(row["rejected"]).strip()


def is_identical(row: Mapping[str, Any]) -> bool:
    return completion_text(row["chosen"]) == completion_text(row["rejected"])


def margin(row: Mapping[str, Any]) -> float | None:
    chosen, rejected = row.get("score_chosen"), row.get("score_rejected")
    return None if chosen is None or rejected is None else chosen - rejected


def is_tie(row: Mapping[str, Any]) -> bool:
    return margin(row) == 0 or row.get("status") == "tie"


def argilla_orca_keeps(row: Mapping[str, Any]) -> bool:
    score = row.get("score_chosen")
    return row.get("status") != "tie" and score is not None and score >= 8 and not row.get("in_gsm8k_train")


def prompt_key(row: Mapping[str, Any]) -> str:
    """A short digest of the prompt (with its images: the same question about another picture is another
    prompt), equal for equal prompts."""
    encoded = json.dumps(row["prompt"], ensure_ascii=False, separators=(",", ":")).encode()
    digest = hashlib.blake2b(encoded, digest_size=12)
    for image in row.get("images") or ():  # PIL images as datasets decodes them
        digest.update(image.tobytes() if hasattr(image, "tobytes") else repr(image).encode())
    return digest.hexdigest()


_DROPS = {  # filter -> does it drop the row (given the filter's value)
    "drop_empty": lambda row, _: is_empty(row),
    "drop_identical": lambda row, _: is_identical(row),
    "drop_ties": lambda row, _: is_tie(row),
    "min_margin": lambda row, least: (
        (m := margin(row)) is not None and m < least
    ),  # pairs without ratings are kept
    "argilla_orca": lambda row, _: not argilla_orca_keeps(row),
}


def drop_reason(row: Mapping[str, Any], active: Mapping[str, Any]) -> str | None:
    """The first active filter (except ``dedupe_prompts``, which needs the other rows) that drops ``row``."""
    return next(
        (FILTERS[key] for key, drops in _DROPS.items() if key in active and drops(row, active[key])), None
    )


def apply(dataset, active: Mapping[str, Any], counts: Counter):
    """``dataset`` without the rows the ``active`` filters drop, each counted by reason in ``counts`` (a
    stream's as it is read): in this process, where ``dedupe_prompts`` sees the earlier prompts and the
    counts stay, and never from the cache (the counts would stay empty)."""
    if not active:
        return dataset
    seen: set[str] = set()

    def keep(row: dict) -> bool:
        reason = drop_reason(row, active)
        if reason is None and "dedupe_prompts" in active:
            key = prompt_key(row)
            reason = FILTERS["dedupe_prompts"] if key in seen else None
            seen.add(key)
        if reason is not None:
            counts[reason] += 1
        return reason is None

    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        return dataset.filter(keep)
    return dataset.filter(keep, load_from_cache_file=False, desc="Filtering pairs")

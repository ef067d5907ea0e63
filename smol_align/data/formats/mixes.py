"""Curated mixes of other preference sets: argilla/dpo-mix-7k and mlabonne/orpo-dpo-mix-40k.

Both keep whole dialogues (message lists) in ``chosen``/``rejected``, multi-turn possible: the
shared leading messages are the prompt. Several of their columns are *unverified* (see
DATASETS.md), so detection leans on the columns that are certain and the normalizers accept a
completion-only ``chosen`` with the prompt in a text column as well.
"""

from __future__ import annotations

from ..messages import make_pair
from ..registry import Format, all_of, column_is, register, take_metadata


def dpo_mix(row: dict) -> dict:
    """argilla/dpo-mix-7k; ``dataset`` (the origin of the pair) is kept as ``source``."""
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt"))
    meta = {
        "source": "dataset",
        "score_chosen": "chosen_rating",
        "score_rejected": "rejected_rating",
        "model_chosen": "chosen_model",  # unverified
        "model_rejected": "rejected_model",  # unverified
    }
    return {**pair, **take_metadata(row, meta)}


def orpo_dpo_mix(row: dict) -> dict:
    """mlabonne/orpo-dpo-mix-40k (the course's ORPO set)."""
    prompt = row.get("prompt") if row.get("prompt") is not None else row.get("question")
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=prompt)
    return {**pair, **take_metadata(row, {"source": "source"})}


register(
    Format(
        name="argilla-dpo-mix",
        normalize_row=dpo_mix,
        required=("dataset", "chosen", "rejected"),
        signature=("chosen_rating", "rejected_rating", "chosen_model", "rejected_model"),
        reads=("prompt",),
        check=column_is("chosen", "messages"),
        metadata=("source", "score_chosen", "score_rejected", "model_chosen", "model_rejected"),
        description="argilla/dpo-mix-7k (multi-turn, rated)",
        expected="`chosen`/`rejected`: the same dialogue (messages), differing only in the last assistant message",
        hub_ids={"argilla/dpo-mix-7k": "train"},
    )
)
register(
    Format(
        name="orpo-dpo-mix",
        normalize_row=orpo_dpo_mix,
        required=("chosen", "rejected"),
        signature=("question", "prompt", "source"),
        # all its columns are unverified: ask for one of them besides chosen/rejected, or plain
        # TRL implicit-prompt data would be taken for this mix
        check=all_of(
            column_is("chosen", "messages"), lambda rows: any("question" in r or "source" in r for r in rows)
        ),
        metadata=("source",),
        description="mlabonne/orpo-dpo-mix-40k",
        expected="`chosen`/`rejected`: the same dialogue (messages), differing only in the last assistant message",
        hub_ids={"mlabonne/orpo-dpo-mix-40k": "train"},
    )
)

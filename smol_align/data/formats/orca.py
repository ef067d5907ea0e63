"""Orca DPO pairs: Intel's original set and Argilla's re-rated distilabel version.

Both hold a ``system`` text (often empty: then no system message), a question (``question`` or
``input``) and two answer texts. Argilla's version adds ratings, a ``status`` (``tie``,
``unchanged``, ``swapped``) and ``in_gsm8k_train``, which the ``"argilla-orca"`` filter recipe
uses: ``status != "tie" and chosen_score >= 8 and not in_gsm8k_train``.
"""

from __future__ import annotations

from ..messages import make_pair, maybe_json, score
from ..registry import Format, column_is, register, take_metadata


def intel_orca(row: dict) -> dict:
    """Intel/orca_dpo_pairs."""
    return make_pair(
        row.get("chosen"), row.get("rejected"), prompt=row.get("question"), system=row.get("system")
    )


def argilla_orca(row: dict) -> dict:
    """argilla/distilabel-intel-orca-dpo-pairs.

    ``rating`` holds the two generations' ratings; the chosen one is the higher (after the
    ``swapped`` correction), so the rejected score is the lower of the two (*unverified* beyond
    the dataset card: a ``rating`` that is not two numbers gives no rejected score).
    """
    pair = make_pair(
        row.get("chosen"), row.get("rejected"), prompt=row.get("input"), system=row.get("system")
    )
    ratings = maybe_json(row.get("rating"))
    ratings = [score(r) for r in ratings] if isinstance(ratings, list) else []
    two = len(ratings) == 2 and None not in ratings
    chosen_score = score(row.get("chosen_score"))
    meta = {
        "score_chosen": chosen_score if chosen_score is not None or not two else max(ratings),
        "score_rejected": min(ratings) if two else None,
        "status": row.get("status"),
        "in_gsm8k_train": row.get("in_gsm8k_train"),
    }
    return {**pair, **take_metadata(meta, {name: name for name in meta})}


register(
    Format(
        name="argilla-orca",
        normalize_row=argilla_orca,
        required=("input", "chosen", "rejected"),
        signature=(
            "system",
            "generations",
            "order",
            "labelling_model",
            "rating",
            "rationale",
            "status",
            "original_chosen",
            "original_rejected",
            "chosen_score",
            "in_gsm8k_train",
        ),
        check=column_is("chosen", "text"),
        metadata=("score_chosen", "score_rejected", "status", "in_gsm8k_train"),
        description="argilla/distilabel-intel-orca-dpo-pairs (re-rated, with status and in_gsm8k_train)",
        expected="`input`, `chosen`, `rejected`: text; optional `system` text",
        hub_ids={"argilla/distilabel-intel-orca-dpo-pairs": "train"},
    )
)
register(
    Format(
        name="intel-orca",
        normalize_row=intel_orca,
        required=("question", "chosen", "rejected"),
        signature=("system",),
        check=column_is("chosen", "text"),
        description="Intel/orca_dpo_pairs",
        expected="`question`, `chosen`, `rejected`: text; optional `system` text",
        hub_ids={"Intel/orca_dpo_pairs": "train"},
    )
)

"""Argilla's re-rated Intel Orca pairs (argilla/distilabel-intel-orca-dpo-pairs): scores from ``rating``,
the two generations' ratings: chosen has the higher (after the ``swapped`` correction), rejected the lower
(*unverified* beyond the dataset card: a ``rating`` that is not two numbers gives no rejected score).
"""

from __future__ import annotations

from ..messages import maybe_json, rating, score
from .trl import pair


def argilla_orca(row: dict) -> dict:
    """``system``, ``input``, ``chosen``, ``rejected`` texts; ``chosen_score`` and ``rating`` as scores."""
    ratings = maybe_json(row.get("rating"))
    ratings = [score(r) for r in ratings] if isinstance(ratings, list) else []
    two = len(ratings) == 2 and None not in ratings
    chosen_score = rating(row.get("chosen_score"), "chosen_score")
    return {
        **pair(row, prompt="input"),
        "score_chosen": chosen_score if chosen_score is not None or not two else max(ratings),
        "score_rejected": min(ratings) if two else None,
    }

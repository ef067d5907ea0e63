"""Raw openbmb/UltraFeedback (four rated completions per instruction), binarized here.

``strategy="best-vs-worst"`` (default) pairs the best-rated completion with the worst;
``"best-vs-random"`` with a random one rated strictly lower (the Zephyr recipe, minus its ties),
seeded by ``seed`` and the instruction, so a row gets the same pair in any process or batch.
``rating="mean"`` (default) averages the four aspect ratings, skipping "N/A"; ``"overall_score"``,
``"fine-grained_score"`` or an aspect name use that alone. Ties, and rows with fewer than two rated
completions, are dropped and counted, never silently lost.
"""

from __future__ import annotations

import random

from ..messages import DroppedRow, InvalidRow, make_pair, maybe_json, score, text

ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


def _aspect_rating(annotation) -> float | None:
    if isinstance(annotation, list):  # some exports keep a list of one rating dict
        annotation = annotation[0] if annotation else None
    return score(annotation.get("Rating")) if isinstance(annotation, dict) else None


def completion_rating(completion: dict, rating: str) -> float | None:
    """The rating of one raw completion, or ``None`` if it has none ("N/A", missing)."""
    if rating in ("overall_score", "fine-grained_score"):
        return score(completion.get(rating))
    annotations = completion.get("annotations")
    if not isinstance(annotations, dict):
        return None
    if rating != "mean":
        return _aspect_rating(annotations.get(rating))
    ratings = [r for r in (_aspect_rating(annotations.get(a)) for a in ASPECTS) if r is not None]
    return sum(ratings) / len(ratings) if ratings else None


def raw_ultrafeedback(row: dict, strategy="best-vs-worst", rating="mean", seed=42) -> dict:
    """openbmb/UltraFeedback: binarize the rated completions of one instruction into a pair."""
    instruction = text(row.get("instruction"), "instruction")
    completions = maybe_json(row.get("completions"))
    if not isinstance(completions, list):
        raise InvalidRow("completions: expected a list of completions", "completions")
    rated = []
    for completion in completions:
        if not isinstance(completion, dict):
            raise InvalidRow("completions: malformed completion", "completions", "expected a dict")
        response = completion.get("response")
        if not isinstance(response, str):
            raise InvalidRow("completions: response is not text", "completions")
        value = completion_rating(completion, rating)
        if value is not None:
            rated.append((value, response, completion.get("model")))
    if len(rated) < 2:
        raise DroppedRow("ultrafeedback: fewer than two rated completions", "completions")
    best = max(rated, key=lambda r: r[0])
    lower = [r for r in rated if r[0] < best[0]]
    if not lower:
        raise DroppedRow("ultrafeedback: tie between the best and the other completions", "completions")
    worst = strategy == "best-vs-worst"
    other = min(lower, key=lambda r: r[0]) if worst else random.Random(f"{seed}:{instruction}").choice(lower)
    return {
        **make_pair(best[1], other[1], prompt=instruction),
        "score_chosen": best[0],
        "score_rejected": other[0],
        "model_chosen": best[2],
        "model_rejected": other[2],
    }

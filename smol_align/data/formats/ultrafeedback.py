"""The UltraFeedback family: TRL's and H4's binarized versions, and raw openbmb/UltraFeedback.

Raw UltraFeedback has four rated completions per instruction and needs binarizing:

- ``strategy="best-vs-worst"`` (default): the best-rated completion against the worst;
- ``strategy="best-vs-random"``: against a random completion rated strictly lower (the Zephyr
  recipe, minus its ties), seeded by ``seed`` and the instruction, so a row always gets the same
  pair whatever the process or batch;
- ``rating="mean"`` (default) averages the four aspect ratings (helpfulness, honesty,
  instruction_following, truthfulness), skipping "N/A"; ``"overall_score"`` /
  ``"fine-grained_score"`` use those fields, an aspect name uses that aspect alone.

Rows whose best and other completion tie, or with fewer than two rated completions, are
skipped and counted (``dropped`` in the report), never silently lost.
"""

from __future__ import annotations

import random

from ..messages import DroppedRow, InvalidRow, make_pair, maybe_json, score, text
from ..registry import Format, all_of, column_is, register, take_metadata

ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


def trl_ultrafeedback(row: dict) -> dict:
    """trl-lib/ultrafeedback_binarized: implicit-prompt dialogues plus scores."""
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt"))
    return {
        **pair,
        **take_metadata(row, {"score_chosen": "score_chosen", "score_rejected": "score_rejected"}),
    }


def h4_ultrafeedback(row: dict) -> dict:
    """HuggingFaceH4/ultrafeedback_binarized: ``chosen``/``rejected`` hold the user turn too."""
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt"))
    meta = {"prompt_id": "prompt_id", "score_chosen": "score_chosen", "score_rejected": "score_rejected"}
    return {**pair, **take_metadata(row, meta)}


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


def raw_ultrafeedback(
    row: dict, strategy: str = "best-vs-worst", rating: str = "mean", seed: int = 42
) -> dict:
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
    if strategy == "best-vs-worst":
        other = min(lower, key=lambda r: r[0])
    else:
        other = random.Random(f"{seed}:{instruction}").choice(lower)
    pair = make_pair(best[1], other[1], prompt=instruction)
    meta = {
        "source": row.get("source"),
        "score_chosen": best[0],
        "score_rejected": other[0],
        "model_chosen": best[2],
        "model_rejected": other[2],
    }
    return {**pair, **take_metadata(meta, {name: name for name in meta})}


register(
    Format(
        name="h4-ultrafeedback",
        normalize_row=h4_ultrafeedback,
        required=("prompt", "prompt_id", "chosen", "rejected"),
        signature=("messages", "score_chosen", "score_rejected"),
        check=column_is("chosen", "messages"),
        metadata=("prompt_id", "score_chosen", "score_rejected"),
        description="HuggingFaceH4/ultrafeedback_binarized (splits train_prefs/test_prefs)",
        expected="`prompt`: text; `chosen`/`rejected`: [user, assistant] messages; `score_*`: floats",
        hub_ids={"HuggingFaceH4/ultrafeedback_binarized": "train_prefs"},
    )
)
register(
    Format(
        name="trl-ultrafeedback",
        normalize_row=trl_ultrafeedback,
        # The score columns are *unverified*, so they are not required; but without them the data
        # is detected as trl-conversational-implicit (the same pairs). The hub id still picks us.
        required=("chosen", "rejected"),
        signature=("score_chosen", "score_rejected"),
        reads=("prompt",),
        check=all_of(column_is("chosen", "messages"), lambda rows: any("score_chosen" in r for r in rows)),
        metadata=("score_chosen", "score_rejected"),
        description="trl-lib/ultrafeedback_binarized (implicit prompt, scores)",
        expected="`chosen`/`rejected`: [user, assistant] messages sharing the user turn",
        hub_ids={"trl-lib/ultrafeedback_binarized": "train"},
    )
)
register(
    Format(
        name="ultrafeedback-raw",
        normalize_row=raw_ultrafeedback,
        required=("instruction", "completions"),
        signature=("models", "source", "correct_answers", "incorrect_answers"),
        metadata=("source", "score_chosen", "score_rejected", "model_chosen", "model_rejected"),
        description="openbmb/UltraFeedback, raw (binarized here: best vs worst or vs random)",
        expected="`instruction`: text; `completions`: a list of {response, annotations, overall_score, ...}",
        hub_ids={"openbmb/UltraFeedback": "train"},
        options={"strategy": "best-vs-worst", "rating": "mean", "seed": 42},
        option_choices={
            "strategy": ("best-vs-worst", "best-vs-random"),
            "rating": ("mean", "overall_score", "fine-grained_score", *ASPECTS),
        },
    )
)

"""Argilla's preference collection: UltraFeedback (raw columns and cleaned), Capybara, math, OpenHermes.

Most keep whole dialogues in ``chosen``/``rejected`` (the shared leading messages are the
prompt); the older ones keep an ``instruction`` and two response texts. Ratings and model names
are kept as ``score_chosen``/``score_rejected`` and ``model_chosen``/``model_rejected``.
The Intel Orca pairs that Argilla re-rated live in ``orca.py``, dpo-mix-7k in ``mixes.py``.
"""

from __future__ import annotations

from ..messages import make_pair
from ..registry import Format, column_is, register, take_metadata

_RATED = ("source", "score_chosen", "score_rejected", "model_chosen", "model_rejected")


def _rated(
    chosen_rating: str, rejected_rating: str, chosen_model: str, rejected_model: str
) -> dict[str, str]:
    return {
        "source": "source",
        "score_chosen": chosen_rating,
        "score_rejected": rejected_rating,
        "model_chosen": chosen_model,
        "model_rejected": rejected_model,
    }


def ultrafeedback(row: dict) -> dict:
    """argilla/ultrafeedback-binarized-preferences: an instruction and two response texts."""
    pair = make_pair(row.get("chosen_response"), row.get("rejected_response"), prompt=row.get("instruction"))
    meta = _rated("chosen_avg_rating", "rejected_avg_rating", "chosen_model", "rejected_model")
    return {**pair, **take_metadata(row, meta)}


def ultrafeedback_cleaned(row: dict) -> dict:
    """argilla/ultrafeedback-binarized-preferences-cleaned: hyphenated rating/model columns."""
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt"))
    return {
        **pair,
        **take_metadata(row, _rated("chosen-rating", "rejected-rating", "chosen-model", "rejected-model")),
    }


def capybara(row: dict) -> dict:
    """argilla/Capybara-Preferences and distilabel-capybara-dpo-7k-binarized: multi-turn dialogues."""
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt"))
    return {
        **pair,
        **take_metadata(row, _rated("chosen_rating", "rejected_rating", "chosen_model", "rejected_model")),
    }


def math_preference(row: dict) -> dict:
    """argilla/distilabel-math-preference-dpo: an instruction and two response texts, rated."""
    pair = make_pair(row.get("chosen_response"), row.get("rejected_response"), prompt=row.get("instruction"))
    return {
        **pair,
        **take_metadata(row, {"score_chosen": "chosen_rating", "score_rejected": "rejected_rating"}),
    }


def openhermes(row: dict) -> dict:
    """argilla/OpenHermesPreferences: dialogues, with the policies (models) that wrote them."""
    pair = make_pair(row.get("chosen"), row.get("rejected"), prompt=row.get("prompt"))
    meta = {
        "source": "source",
        "category": "category",
        "model_chosen": "chosen_policy",
        "model_rejected": "rejected_policy",
    }
    return {**pair, **take_metadata(row, meta)}


_RESPONSES = "`instruction`: text; `chosen_response`/`rejected_response`: text"
_DIALOGUES = "`chosen`/`rejected`: the same dialogue (messages), differing only in the last assistant message"

register(
    Format(
        name="argilla-ultrafeedback",
        normalize_row=ultrafeedback,
        required=("instruction", "chosen_response", "rejected_response"),
        signature=("chosen_avg_rating", "rejected_avg_rating", "chosen_model", "rejected_model", "source"),
        metadata=_RATED,
        description="argilla/ultrafeedback-binarized-preferences",
        expected=_RESPONSES,
        hub_ids={"argilla/ultrafeedback-binarized-preferences": "train"},
    )
)
register(
    Format(
        name="argilla-ultrafeedback-cleaned",
        normalize_row=ultrafeedback_cleaned,
        required=("chosen", "rejected", "chosen-rating", "rejected-rating"),
        signature=("prompt", "chosen-model", "rejected-model", "source"),
        check=column_is("chosen", "messages"),
        metadata=_RATED,
        description="argilla/ultrafeedback-binarized-preferences-cleaned (hyphenated columns)",
        expected=_DIALOGUES,
        hub_ids={"argilla/ultrafeedback-binarized-preferences-cleaned": "train"},
    )
)
register(
    Format(
        name="argilla-capybara-dpo",
        normalize_row=capybara,
        required=("conversation", "new_generations", "chosen", "rejected"),
        signature=(
            "source",
            "original_response",
            "generation_model",
            "generation_prompt",
            "raw_generation_responses",
            "prompt",
            "chosen_rating",
            "chosen_model",
            "rejected_rating",
            "rejected_model",
        ),
        check=column_is("chosen", "messages"),
        metadata=_RATED,
        description="argilla/distilabel-capybara-dpo-7k-binarized (multi-turn)",
        expected=_DIALOGUES,
        hub_ids={"argilla/distilabel-capybara-dpo-7k-binarized": "train"},
    )
)
register(
    Format(
        name="argilla-capybara",
        normalize_row=capybara,
        required=("source", "chosen", "rejected", "chosen_rating", "rejected_rating"),
        signature=("chosen_model", "rejected_model"),
        check=column_is("chosen", "messages"),
        metadata=_RATED,
        description="argilla/Capybara-Preferences (multi-turn)",
        expected=_DIALOGUES,
        hub_ids={"argilla/Capybara-Preferences": "train"},
    )
)
register(
    Format(
        name="argilla-math",
        normalize_row=math_preference,
        required=("instruction", "chosen_response", "rejected_response"),
        signature=("chosen_rating", "rejected_rating", "metadata"),
        metadata=("score_chosen", "score_rejected"),
        description="argilla/distilabel-math-preference-dpo",
        expected=_RESPONSES,
        hub_ids={"argilla/distilabel-math-preference-dpo": "train"},
    )
)
register(
    Format(
        name="argilla-openhermes",
        normalize_row=openhermes,
        required=("chosen", "rejected", "chosen_policy"),
        signature=(
            "prompt",
            "source",
            "category",
            "candidates_completions",
            "candidate_policies",
            "ranks",
            "rank_str",
            "rejected_policy",
        ),
        check=column_is("chosen", "messages"),
        metadata=("source", "category", "model_chosen", "model_rejected"),
        description="argilla/OpenHermesPreferences (~990k rows: streamed from the hub)",
        expected=_DIALOGUES,
        hub_ids={"argilla/OpenHermesPreferences": "train"},
        stream_from_hub=True,
    )
)

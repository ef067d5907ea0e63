"""FORMATS: every preference-dataset schema smol_align reads, by name, and how one is detected.

Detection: among the formats whose ``signature`` columns are all present and whose ``check``
accepts the first rows, the longest signature wins (ties: the earlier entry); with none,
``trl-unpaired`` (KTO's rows) if its columns are there. axolotl's DPO types (``chatml.intel``, ...)
are accepted by name with ``format=``, never detected. Every pair format keeps the columns named
like a :data:`METADATA` extra (``score_chosen``...); a column a format neither reads nor ``ignores``
is reported: nothing is dropped in silence.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from ..errors import ConfigError, DatasetFormatError
from .messages import is_message, is_message_list, optional_flag, optional_text, rating
from .rows import argilla, chat, hh, trl, ultrafeedback

# Extras kept in the output under these stable names: name -> (datasets dtype, coercion(value, column)); the
# coercion raises InvalidRow for a cell it cannot read (a score "high"), rather than keep None in its place.
_STR, _FLOAT = ("string", optional_text), ("float64", rating)
METADATA: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "source": _STR,
    "prompt_id": _STR,
    "category": _STR,
    "score_chosen": _FLOAT,
    "score_rejected": _FLOAT,
    "model_chosen": _STR,
    "model_rejected": _STR,
    "status": _STR,
    "in_gsm8k_train": ("bool", optional_flag),
    "preference_prob": _FLOAT,  # P(chosen > rejected), for train_dpo(loss_type="soft")
}
PAIR_COLUMNS = ("prompt", "chosen", "rejected")
UNPAIRED = "trl-unpaired"  # the one format of unpaired rows (prompt, completion, label), for KTO
# SFT's rows (a target answer, no rejected one): detected when no pair format fits, longest signature first
SFT = ("alpaca-sft", "trl-prompt-completion", "trl-messages", "trl-text")


@dataclass(frozen=True)
class Format:
    """One dataset schema: how to recognise it and how to turn one of its rows into a pair."""

    row: Callable[..., dict]
    signature: tuple[str, ...]
    expected: str  # what a row should look like, quoted in error messages
    reads: tuple[str, ...] = ()  # optional columns the row function reads
    extras: Mapping[str, str] = field(default_factory=dict)  # stable name -> source column
    ignores: tuple[str, ...] = ()  # columns of the schema that hold nothing a pair needs
    check: Callable[[list[dict]], bool] | None = None  # tells formats with the same columns apart
    hub: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> (train, test split)
    options: Mapping[str, tuple] = field(default_factory=dict)  # option -> allowed values, default first
    detect: bool = True
    stream: bool = False  # too big to download whole: a hub id is streamed
    columns: tuple[str, ...] = PAIR_COLUMNS  # what a normalized row holds (besides the extras)

    def extras_in(self, columns: Sequence[str]) -> tuple[str, ...]:
        """The extras this data has (their source column is present)."""
        return tuple(name for name, column in self.extras.items() if column in columns)

    def known(self) -> set[str]:
        return {*self.signature, *self.reads, *self.extras.values(), *self.ignores}

    def check_options(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options with defaults filled in; ``ConfigError`` names a bad key or value."""
        for key, value in options.items():
            if key not in self.options:
                raise ConfigError(
                    f"format {name!r} has no option {key!r} (its options: {', '.join(self.options) or 'none'})"
                )
            choices = self.options[key]
            if len(choices) > 1 and value not in choices:
                raise ConfigError(
                    f"format {name!r}: {key}={value!r} is not one of {', '.join(map(repr, choices))}"
                )
        return {key: options.get(key, choices[0]) for key, choices in self.options.items()}


def column_is(column: str, kind: str) -> Callable[[list[dict]], bool]:
    """A ``check``: the first non-empty value of ``column`` is ``"messages"`` or ``"text"``."""

    def check(rows: list[dict]) -> bool:
        value = next((r[column] for r in rows if r.get(column) is not None), None)
        if value is None:
            return True  # nothing to look at: the columns decide
        if kind == "messages":
            return is_message_list(value) or is_message(value)
        return isinstance(value, str) and not is_message_list(value)

    return check


_INSTRUCTION = "`instruction`: text; `chosen_response`/`rejected_response`: text"
_DIALOGUES = "`chosen`/`rejected`: the same dialogue (messages), differing only in the last assistant message"
_RATED = {
    "score_chosen": "chosen_rating",
    "score_rejected": "rejected_rating",
    "model_chosen": "chosen_model",
    "model_rejected": "rejected_model",
}
_MESSAGES, _TEXT = column_is("chosen", "messages"), column_is("chosen", "text")
_instruction = partial(trl.pair, prompt="instruction", chosen="chosen_response", rejected="rejected_response")

FORMATS: dict[str, Format] = {
    "hh-rlhf": Format(
        hh.normalize_row,
        ("chosen", "rejected"),
        check=hh.looks_like_hh,
        expected="`chosen`/`rejected`: the same '\\n\\nHuman: ...\\n\\nAssistant: ...' dialogue, "
        "differing only after the last '\\n\\nAssistant: '",
        hub={"Anthropic/hh-rlhf": ("train", "test")},
    ),
    "h4-ultrafeedback": Format(
        trl.pair,
        ("prompt", "prompt_id", "chosen", "rejected"),
        check=_MESSAGES,
        ignores=("messages",),
        extras={"prompt_id": "prompt_id", "score_chosen": "score_chosen", "score_rejected": "score_rejected"},
        expected="`prompt`: text; `chosen`/`rejected`: [user, assistant] messages; `score_*`: floats",
        hub={"HuggingFaceH4/ultrafeedback_binarized": ("train_prefs", "test_prefs")},
    ),
    "trl-ultrafeedback": Format(
        trl.pair,
        ("chosen", "rejected", "score_chosen", "score_rejected"),
        reads=("prompt",),
        check=lambda rows: _MESSAGES(rows) and not any(is_message_list(r.get("prompt")) for r in rows),
        expected="`chosen`/`rejected`: [user, assistant] messages sharing the user turn; `score_*`: floats",
        hub={"trl-lib/ultrafeedback_binarized": ("train", "test")},
    ),
    "ultrafeedback-raw": Format(
        ultrafeedback.raw_ultrafeedback,
        ("instruction", "completions"),
        extras={
            "source": "source",
            "score_chosen": "completions",
            "score_rejected": "completions",
            "model_chosen": "completions",
            "model_rejected": "completions",
        },
        ignores=("models", "correct_answers", "incorrect_answers"),
        expected="`instruction`: text; `completions`: a list of {response, annotations, overall_score, ...}",
        hub={"openbmb/UltraFeedback": ("train", None)},
        options={
            "strategy": ("best-vs-worst", "best-vs-random"),
            "rating": ("mean", "overall_score", "fine-grained_score", *ultrafeedback.ASPECTS),
            "seed": (42,),
        },
    ),
    "argilla-ultrafeedback": Format(
        _instruction,
        ("instruction", "chosen_response", "rejected_response", "chosen_avg_rating", "rejected_avg_rating"),
        extras={
            **_RATED,
            "source": "source",
            "score_chosen": "chosen_avg_rating",
            "score_rejected": "rejected_avg_rating",
        },
        expected=_INSTRUCTION,
        hub={"argilla/ultrafeedback-binarized-preferences": ("train", None)},
    ),
    "argilla-ultrafeedback-cleaned": Format(
        trl.pair,
        ("chosen", "rejected", "chosen-rating", "rejected-rating"),
        check=_MESSAGES,
        reads=("prompt",),
        extras={
            "source": "source",
            "score_chosen": "chosen-rating",
            "score_rejected": "rejected-rating",
            "model_chosen": "chosen-model",
            "model_rejected": "rejected-model",
        },
        expected=_DIALOGUES,
        hub={"argilla/ultrafeedback-binarized-preferences-cleaned": ("train", None)},
    ),
    "argilla-capybara-dpo": Format(
        trl.pair,
        ("conversation", "new_generations", "chosen", "rejected", "chosen_rating", "rejected_rating"),
        check=_MESSAGES,
        reads=("prompt",),
        extras={**_RATED, "source": "source"},
        ignores=("original_response", "generation_model", "generation_prompt", "raw_generation_responses"),
        expected=_DIALOGUES,
        hub={"argilla/distilabel-capybara-dpo-7k-binarized": ("train", None)},
    ),
    "argilla-capybara": Format(
        trl.pair,
        ("source", "chosen", "rejected", "chosen_rating", "rejected_rating"),
        check=_MESSAGES,
        extras={**_RATED, "source": "source"},
        expected=_DIALOGUES,
        hub={"argilla/Capybara-Preferences": ("train", None)},
    ),
    "argilla-math": Format(
        _instruction,
        ("instruction", "chosen_response", "rejected_response", "chosen_rating", "rejected_rating"),
        extras={"score_chosen": "chosen_rating", "score_rejected": "rejected_rating"},
        ignores=("metadata",),
        expected=_INSTRUCTION,
        hub={"argilla/distilabel-math-preference-dpo": ("train", None)},
    ),
    "argilla-openhermes": Format(
        trl.pair,
        ("prompt", "chosen", "rejected", "chosen_policy", "rejected_policy"),
        check=_MESSAGES,
        extras={
            "source": "source",
            "category": "category",
            "model_chosen": "chosen_policy",
            "model_rejected": "rejected_policy",
        },
        ignores=("candidates_completions", "candidate_policies", "ranks", "rank_str"),
        expected=_DIALOGUES,
        hub={"argilla/OpenHermesPreferences": ("train", None)},
        stream=True,
    ),
    "argilla-dpo-mix": Format(
        trl.pair,
        ("dataset", "chosen", "rejected"),
        check=_MESSAGES,
        reads=("prompt",),
        extras={**_RATED, "source": "dataset"},  # the model columns are *unverified*
        expected=_DIALOGUES,
        hub={"argilla/dpo-mix-7k": ("train", "test")},
    ),
    "orpo-dpo-mix": Format(  # its columns are *unverified*: chosen/rejected dialogues are what counts
        trl.prompt_or_question,
        ("chosen", "rejected", "question", "source"),
        check=_MESSAGES,
        reads=("prompt",),
        extras={"source": "source"},
        expected=_DIALOGUES,
        hub={"mlabonne/orpo-dpo-mix-40k": ("train", None)},
    ),
    "argilla-orca": Format(
        argilla.argilla_orca,
        ("input", "chosen", "rejected", "status", "chosen_score"),
        check=_TEXT,
        reads=("system",),
        extras={
            "score_chosen": "chosen_score",
            "score_rejected": "rating",
            "status": "status",
            "in_gsm8k_train": "in_gsm8k_train",
        },
        ignores=(
            "generations",
            "order",
            "labelling_model",
            "labelling_prompt",
            "raw_labelling_response",
            "rationale",
            "original_chosen",
            "original_rejected",
        ),
        expected="`input`, `chosen`, `rejected`: text; optional `system` text",
        hub={"argilla/distilabel-intel-orca-dpo-pairs": ("train", None)},
    ),
    "intel-orca": Format(
        partial(trl.pair, prompt="question"),
        ("question", "chosen", "rejected"),
        check=_TEXT,
        reads=("system",),
        expected="`question`, `chosen`, `rejected`: text; optional `system` text",
        hub={"Intel/orca_dpo_pairs": ("train", None)},
    ),
    "alpaca": Format(  # LLaMA-Factory's alpaca preference shape
        chat.alpaca,
        ("instruction", "input", "chosen", "rejected"),
        check=_TEXT,
        reads=("system", "history"),
        expected="`instruction`, `input` (may be empty), `chosen`, `rejected`: text; optional `system`, `history`",
    ),
    "sharegpt": Format(  # LLaMA-Factory's sharegpt preference shape
        chat.sharegpt,
        ("conversations", "chosen", "rejected"),
        check=column_is("conversations", "messages"),
        reads=("system",),
        expected="`conversations`: [{from, value}] turns ending with human; `chosen`/`rejected`: {from: gpt, value}",
    ),
    "trl-conversational": Format(
        trl.pair,
        ("prompt", "chosen", "rejected"),
        reads=("system",),
        check=lambda rows: column_is("prompt", "messages")(rows) or _MESSAGES(rows),
        expected="`prompt`: messages ending with a user turn; `chosen`/`rejected`: one assistant message each",
    ),
    "trl-conversational-implicit": Format(
        trl.pair,
        ("chosen", "rejected"),
        check=_MESSAGES,
        reads=("system",),
        expected="`chosen`/`rejected`: the same dialogue, differing only in the last assistant message",
    ),
    "trl-standard": Format(
        trl.pair,
        ("prompt", "chosen", "rejected"),
        check=lambda rows: column_is("prompt", "text")(rows) and _TEXT(rows),
        reads=("system",),
        expected="`prompt`, `chosen`, `rejected`: text; optional `system`",
    ),
    "trl-standard-implicit": Format(
        trl.standard_implicit,
        ("chosen", "rejected"),
        check=_TEXT,
        expected="`chosen`/`rejected`: texts that start with the same prompt",
    ),
    UNPAIRED: Format(  # KTO's rows, not pairs; detected when no pair format fits
        trl.unpaired,
        ("prompt", "completion", "label"),
        detect=False,
        columns=("prompt", "completion", "label"),
        expected="`prompt`: text or messages; `completion`: text or one assistant message; "
        "`label`: true (desirable) or false (undesirable)",
    ),
    # SFT rows (train_sft): a prompt and the answer to learn, or a text; never detected as pairs
    "alpaca-sft": Format(
        chat.alpaca_sft,
        ("instruction", "output"),
        reads=("input", "system", "history"),
        detect=False,
        columns=("prompt", "completion"),
        expected="`instruction`, `output`: text; optional `input`, `system`, `history` (SFT)",
    ),
    "trl-prompt-completion": Format(
        trl.prompt_completion,
        ("prompt", "completion"),
        reads=("system",),
        detect=False,
        columns=("prompt", "completion"),
        expected="`prompt`: text or messages ending with a user turn; `completion`: text or one assistant "
        "message (SFT)",
    ),
    "trl-messages": Format(
        trl.conversation,
        ("messages",),
        detect=False,
        columns=("prompt", "completion"),
        expected="`messages`: a dialogue ending with the assistant's answer, which is learned (SFT)",
    ),
    "trl-text": Format(
        trl.language_modeling,
        ("text",),
        detect=False,
        columns=("text",),
        expected="`text`: text, every token of it learned (SFT)",
    ),
}
# axolotl's DPO types (src/axolotl/prompt_strategies/dpo/), by their own names; llama3.* are the same shapes.
AXOLOTL = {
    "chatml.argilla": replace(
        FORMATS["argilla-math"],
        signature=("instruction", "chosen_response", "rejected_response"),
        extras={},
        reads=("system",),
    ),
    "chatml.argilla_chat": FORMATS["trl-conversational-implicit"],
    "chatml.icr": replace(
        FORMATS["intel-orca"],
        row=partial(trl.pair, prompt="input"),
        signature=("input", "chosen", "rejected"),
    ),
    "chatml.intel": FORMATS["intel-orca"],
    "chatml.prompt_pairs": FORMATS["trl-standard"],
    "chatml.ultra": replace(
        FORMATS["h4-ultrafeedback"], signature=("prompt", "chosen", "rejected"), reads=("prompt_id",)
    ),
    "chat_template.default": replace(
        FORMATS["sharegpt"],
        row=partial(chat.sharegpt, prompt="messages"),
        signature=("messages", "chosen", "rejected"),
        check=None,
    ),
}
FORMATS.update({name: replace(fmt, detect=False, hub={}) for name, fmt in AXOLOTL.items()})
FORMATS.update(
    {name.replace("chatml.", "llama3."): fmt for name, fmt in FORMATS.items() if name.startswith("chatml.")}
)


def _with_stable_columns(fmt: Format) -> Format:
    """``fmt`` that also keeps the columns named like an extra (``score_chosen``, ``source``...) that it has
    no other use for: per-answer scores reach the pairs whatever the format (not KTO's unpaired rows)."""
    taken = {*fmt.extras, *fmt.extras.values(), *fmt.reads, *fmt.ignores}
    return replace(fmt, extras={**fmt.extras, **{name: name for name in METADATA if name not in taken}})


FORMATS.update(
    {name: _with_stable_columns(fmt) for name, fmt in FORMATS.items() if name != UNPAIRED and name not in SFT}
)


def get(name: str) -> Format:
    """The format called ``name``; ``ConfigError`` with the closest names when there is none."""
    if name in FORMATS:
        return FORMATS[name]
    close = difflib.get_close_matches(str(name), list(FORMATS), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"unknown format {name!r}.{hint} Known formats: {', '.join(FORMATS)}")


def hub_format(hub_id: str) -> tuple[str, str, str | None, str | None, str | None, bool]:
    """``(repo, data_dir, format, train split, test split, stream)`` of a hub id, without the network:
    ``owner/name/sub/folder`` is ``owner/name`` with ``data_dir="sub/folder"`` (HH-RLHF's subsets);
    unknown ids get no format (detected after loading) and no splits."""
    parts = hub_id.strip("/").split("/")
    repo, data_dir = "/".join(parts[:2]), "/".join(parts[2:]) or None
    for name, fmt in FORMATS.items():
        for known, (train, test) in fmt.hub.items():
            if known.lower() == repo.lower():
                return known, data_dir, name, train, test, fmt.stream
    return repo, data_dir, None, None, None, False


def detect(columns: Sequence[str], rows: list[dict], dataset: str | None = None) -> str:
    """The name of the format that fits ``columns`` and ``rows``; ``DatasetFormatError`` if none does."""
    present = set(columns)
    fits = [
        (len(fmt.signature), -i, name)
        for i, (name, fmt) in enumerate(FORMATS.items())
        if fmt.detect and set(fmt.signature) <= present and (fmt.check is None or fmt.check(rows))
    ]
    if fits:
        return max(fits)[2]
    for name in (UNPAIRED, *SFT):  # rows that are not pairs: KTO's, then SFT's
        if set(FORMATS[name].signature) <= present:
            return name
    raise DatasetFormatError(unknown_schema_message(columns, dataset), dataset=dataset)


def unknown_schema_message(columns: Sequence[str], dataset: str | None) -> str:
    """Columns found, the closest formats (and what they miss), and how to pass ``columns=``."""
    present = set(columns)

    def overlap(fmt: Format) -> float:
        return len(present & set(fmt.signature)) / len(present | set(fmt.signature))

    ranked = sorted(FORMATS.items(), key=lambda item: -overlap(item[1]))[:3]
    lines = [
        f"{dataset or 'the dataset'}: no known preference format fits its columns {sorted(map(str, columns))}.",
        "Closest known formats:",
    ]
    for name, fmt in ranked:
        missing = [c for c in fmt.signature if c not in present]
        lines.append(
            f"  - {name} ({fmt.expected}): "
            + (f"missing {missing}" if missing else "its rows do not look like it")
        )
    lines.append(
        f"Name your columns, e.g. columns={guess_columns(columns)!r} (TRL's names: prompt, chosen, rejected, "
        "optional system), or pick a format with format=NAME (see smol_align.data.formats())."
    )
    return "\n".join(lines)


_HINTS = {
    "prompt": ("prompt", "question", "instruction", "input", "query", "conversation", "context"),
    "chosen": ("chosen", "accepted", "preferred", "better", "good", "positive", "win"),
    "rejected": ("rejected", "dispreferred", "worse", "bad", "negative", "lose"),
}


def guess_columns(columns: Sequence[str]) -> dict[str, str]:
    """A best guess at a ``columns=`` mapping from column names (for error messages)."""
    guess: dict[str, str] = {}
    names = [c for c in columns if isinstance(c, str)]
    for key, hints in _HINTS.items():
        match = next((c for h in hints for c in names if h in c.lower() and c not in guess.values()), None)
        guess[key] = match or f"<your {key} column>"
    return guess

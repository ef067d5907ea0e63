"""The options of a run as types: :class:`RunOptions` (the runner's), :class:`DataOptions` (``data.load``'s),
:class:`ModelOptions` (the builders': tokenizer, reference, callbacks, LoRA...), and TRL's config keywords.

:func:`split_options` sorts a user's keywords into them once, at the entry point (``train_dpo``, ``compare``,
``iterate``, ``build_dpo_trainer``; the CLI hands its parsed flags to the same functions), and refuses an unknown
or misplaced keyword naming the closest option. The layers below take the typed objects: none pops its keys
from a shared dict. Each field carries its ``help``, as TRL's configs do.

>>> options = split_options("dpo", {"max_steps": 3, "eval_split": 0.2, "overwrite": True}, "train_dpo")
>>> options.run.overwrite, options.data.eval_split, options.config
(True, 0.2, {'max_steps': 3})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .presets import EXTRA_KEYS, config_names, unknown_option


def _given(options) -> dict[str, Any]:
    """The fields of ``options`` that were given (not ``None``), as keywords."""
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if getattr(options, f.name) is not None
    }


@dataclass
class RunOptions:
    """What the runner (:func:`smol_align.run.run`) does around TRL's training."""

    save: bool = field(default=True, metadata={"help": "save the model and report in output_dir"})
    evaluate: bool = field(default=True, metadata={"help": "held-out figures before and after training"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing run of smol_align's"})
    resume: bool = field(
        default=False,
        metadata={
            "help": "continue the unfinished run in output_dir (default: the newest) from its checkpoint"
        },
    )
    max_eval_pairs: int | None = field(
        default=None, metadata={"help": "held-out pairs evaluated (default: all)"}
    )
    max_time: float | None = field(
        default=None,
        metadata={"help": "minutes of training: stop after the step that crosses it, then evaluate and save"},
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bar or summary"})
    answer_prompts: int = field(
        default=32, metadata={"help": "held-out prompts answered greedily before and after training"}
    )
    answer_tokens: int = field(default=48, metadata={"help": "new tokens of each of those answers"})
    merge: bool = field(
        default=False,
        metadata={"help": "LoRA: also save the adapter merged into its base (in output_dir/merged)"},
    )
    merged_dir: str | None = field(
        default=None, metadata={"help": "where merge writes the merged model (default: output_dir/merged)"}
    )
    voice: Any = field(
        default=None,
        metadata={"help": "Python only: a function answer -> bool; the share it passes is voice_rate"},
    )

    def __post_init__(self):
        if self.max_time is not None and not self.max_time > 0:
            raise ConfigError(f"max_time is minutes of training and must be positive, got {self.max_time!r}.")


@dataclass
class DataOptions:
    """The keywords of :func:`smol_align.data.load`; a field left at its default is not passed (``load``'s).
    The types are the command line's (``smol-align dpo --eval-split 0.2``, parsed by TRL's parser): a fraction
    or ``name=column`` list given as text is read here, so the CLI and Python build the same options."""

    format: str = field(
        default="auto", metadata={"help": "the data's format, e.g. alpaca, sharegpt (detected)"}
    )
    columns: dict | str | None = field(
        default=None, metadata={"help": "rename your columns: prompt=question,chosen=good,rejected=bad"}
    )
    split: str | None = field(default=None, metadata={"help": "the split to train on (default: train)"})
    eval_split: float | str | None = field(
        default=None,
        metadata={"help": "held-out split name, or a fraction held out (default: test, else 0.1)"},
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "held-out pairs from another file or hub id (Python: any data load reads)"},
    )
    split_seed: int = field(default=0, metadata={"help": "the shuffle of a held-out fraction"})
    strict: bool = field(default=False, metadata={"help": "stop at the first row that does not fit"})
    lenient: bool = field(default=False, metadata={"help": "leave out text columns the format does not read"})
    max_rows: int | None = field(default=None, metadata={"help": "read only the first rows of each split"})
    streaming: bool | None = field(
        default=None, metadata={"help": "stream the dataset instead of loading it"}
    )
    num_proc: int | None = field(default=None, metadata={"help": "processes that normalize the rows"})
    filters: str | None = field(
        default=None, metadata={"help": "a named set of filters: clean, argilla-orca"}
    )
    drop_empty: bool = field(default=False, metadata={"help": "drop pairs with an empty completion"})
    drop_identical: bool = field(default=False, metadata={"help": "drop pairs whose chosen equals rejected"})
    drop_ties: bool = field(default=False, metadata={"help": "drop pairs with equal ratings"})
    min_margin: float | None = field(
        default=None, metadata={"help": "drop pairs whose rating margin is below"}
    )
    argilla_orca: bool = field(default=False, metadata={"help": "the argilla-orca recipe's filter"})
    dedupe_prompts: bool = field(default=False, metadata={"help": "keep only the first pair of each prompt"})
    strategy: str | None = field(
        default=None, metadata={"help": "ultrafeedback-raw: best-vs-worst or -random"}
    )
    rating: str | None = field(
        default=None, metadata={"help": "ultrafeedback-raw: the rating pairs are made by"}
    )

    def __post_init__(self):
        if isinstance(self.eval_split, str):
            self.eval_split = split_or_fraction(self.eval_split)
        if isinstance(self.columns, str):
            self.columns = column_names(self.columns)

    def keywords(self) -> dict[str, Any]:
        """The options given (not at their default), as keywords of ``load``."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }


def split_or_fraction(value: str) -> str | float:
    """``"0.2"`` -> 0.2 (a fraction held out); any other text is a split name."""
    try:
        return float(value)
    except ValueError:
        return value


def column_names(value: str) -> dict[str, str]:
    """``"prompt=question,chosen=good"`` -> ``{"prompt": "question", "chosen": "good"}``."""
    try:
        return dict(item.split("=", 1) for item in value.split(","))
    except ValueError:
        raise ConfigError(f"columns: expected NAME=COLUMN[,NAME=COLUMN...], got {value!r}") from None


@dataclass
class ModelOptions:
    """What the builders take beside TRL's config: the tokenizer, reference, callbacks, loss terms, and the
    model settings :func:`smol_align.presets.build` reads (LoRA, 4-bit, dtype, ...); ``None``: not given."""

    tokenizer: Any = field(default=None, metadata={"help": "the tokenizer, or its name or folder"})
    ref_model: Any = field(default=None, metadata={"help": "the reference model (default: a frozen copy)"})
    callbacks: list | None = field(default=None, metadata={"help": "transformers TrainerCallbacks"})
    constraints: list | None = field(
        default=None, metadata={"help": "terms added to the DPO loss: 'dpop[:lam]', 'length[:alpha]', fn"}
    )
    peft_config: Any = field(default=None, metadata={"help": "a peft config (default: the preset's)"})
    quantization_config: Any = field(default=None, metadata={"help": "a BitsAndBytesConfig"})
    load_in_4bit: bool | None = field(default=None, metadata={"help": "a 4-bit NF4 base (qlora-4bit's)"})
    dtype: Any = field(default=None, metadata={"help": "the weights' dtype (default: fp32, bf16 under LoRA)"})
    group_by_length: bool | None = field(default=None, metadata={"help": "steps of pairs of similar length"})
    lora_r: int | None = field(default=None, metadata={"help": "LoRA rank"})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha"})
    lora_dropout: float | None = field(default=None, metadata={"help": "LoRA dropout"})
    lora_target_modules: Any = field(default=None, metadata={"help": "LoRA's modules (all-linear)"})

    def preset_keywords(self) -> dict[str, Any]:
        """The model settings given, as keywords of :func:`smol_align.presets.build`."""
        return {k: v for k, v in _given(self).items() if k in EXTRA_KEYS}


@dataclass
class Options:
    """A user's keywords, sorted: ``config`` holds TRL config keywords (course-era names as given:
    :func:`smol_align.presets.check_overrides` maps them)."""

    run: RunOptions = field(default_factory=RunOptions)
    data: DataOptions = field(default_factory=DataOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    config: dict[str, Any] = field(default_factory=dict)


RUN_NAMES = frozenset(f.name for f in dataclasses.fields(RunOptions))
DATA_NAMES = frozenset(f.name for f in dataclasses.fields(DataOptions))
MODEL_NAMES = frozenset(f.name for f in dataclasses.fields(ModelOptions)) | {"processing_class"}
# (tests/test_options.py: DATA_NAMES is data.load's DATA_OPTIONS, MODEL_NAMES holds presets.EXTRA_KEYS)


def split_options(
    method: str,
    keywords: Mapping[str, Any],
    where: str,
    *,
    refuse: Iterable[str] = (),
    also_named: Iterable[str] = (),
) -> Options:
    """Sort ``keywords`` (of ``train_<method>`` & co.) into :class:`Options`. A keyword that is none of the
    runner's, the data's, the builders' or a config field of ``method``, or is one of ``refuse`` (options the
    caller takes otherwise, or not), is a ``ConfigError`` naming the closest option; ``also_named`` (the
    caller's own parameters) only widens the suggestions."""
    accepted = (config_names(method) | DATA_NAMES | MODEL_NAMES | RUN_NAMES) - set(refuse)
    for key in keywords:
        if key in set(refuse):  # a real option, of another entry point: say whose
            raise ConfigError(
                f"Unknown option {key!r} for {where}: it is an option of train_dpo, train_orpo and train_kto "
                "(the runner's or the builders'), which this entry point sets itself or does not take."
            )
        if key not in accepted:
            raise unknown_option(key, accepted | set(also_named), where)
    keywords = dict(keywords)
    if "processing_class" in keywords:  # TRL's name for the tokenizer
        if "tokenizer" in keywords:
            raise ConfigError("Pass the tokenizer once: `tokenizer=` or `processing_class=`, not both.")
        keywords["tokenizer"] = keywords.pop("processing_class")
    taken = {name: {k: v for k, v in keywords.items() if k in names} for name, names in _PLACES}
    config = {k: v for k, v in keywords.items() if not any(k in part for part in taken.values())}
    return Options(
        RunOptions(**taken["run"]), DataOptions(**taken["data"]), ModelOptions(**taken["model"]), config
    )


# Where a keyword goes, first match wins (none of these names is a TRL config field but output_dir, the
# builders' own parameter)
_PLACES = (("run", RUN_NAMES), ("model", MODEL_NAMES - {"processing_class"}), ("data", DATA_NAMES))

"""Builders that return real, not yet started TRL trainers.

``build_dpo_trainer``, ``build_orpo_trainer``, ``build_kto_trainer`` and ``build_sft_trainer`` turn (model,
data, preset, overrides) into ``trl.DPOTrainer`` / ``ORPOTrainer`` / ``trl.KTOTrainer`` / ``trl.SFTTrainer``
objects with nothing hidden: change any field of ``trainer.args`` before calling ``trainer.train()``.
"""

from __future__ import annotations

import copy
from typing import Any

from . import presets
from ._compat import import_orpo, keep_4bit_layers_trainable, library_noise_filtered, trainable_params_to_fp32
from .data.images import is_vision
from .data.load import load
from .data.sft import is_sft_rows, sft_rows
from .data.unpaired import is_unpaired, unpair
from .errors import ConfigError
from .models import (
    DEFAULT_MODEL,
    is_peft,
    is_vision_language,
    load_model,
    load_processor,
    load_tokenizer,
    model_name,
    prepare_tokenizer,
)
from .options import RUN_NAMES, Options, split_options


def build_dpo_trainer(model: Any = DEFAULT_MODEL, dataset: Any = None, preset: str = "auto", **overrides):
    """A ``trl.DPOTrainer`` for ``model`` on ``dataset`` with ``preset``; keywords override any config field.

    ``model`` is a name or path (loaded with :func:`smol_align.load_model`, in the preset's dtype
    and 4-bit setting) or a loaded model, then pass ``tokenizer=``. ``dataset`` is anything
    :func:`smol_align.data.load` reads (its :class:`~smol_align.data.Pairs` are used as they are);
    ``None`` is the built-in demo data. Data options (``format``, ``columns``, ``split``,
    ``eval_split``, ``eval_dataset``, the filters: see ``smol_align.data.DATA_OPTIONS``) go to
    ``load``. Also accepted: ``tokenizer`` (alias ``processing_class``), ``ref_model``,
    ``output_dir``, ``callbacks``. ``loss_type="soft"`` trains the soft-label (cDPO) loss from a
    ``preference_prob`` column. ``constraints=[fn, ...]`` adds each term to TRL's loss, each logged as
    ``constraint/<name>``: a callable ``fn(logps, batch) -> scalar`` (``logps`` a
    :class:`smol_align.reference.PairLogps`) or ``"dpop[:lam]"`` (DPO-Positive), ``"length[:alpha]"`` (R-DPO);
    see docs/methods/dpo.md, "Constraints". Both build :class:`smol_align.soft_dpo.SoftDPOTrainer`, which
    changes only the loss.
    """
    return build_trainer("dpo", model, dataset, preset, _options("dpo", overrides))


def build_orpo_trainer(model: Any = DEFAULT_MODEL, dataset: Any = None, preset: str = "auto", **overrides):
    """An ``ORPOTrainer`` (from ``trl.experimental.orpo``) built like :func:`build_dpo_trainer`; no reference model."""
    return build_trainer("orpo", model, dataset, preset, _options("orpo", overrides))


def build_kto_trainer(model: Any = DEFAULT_MODEL, dataset: Any = None, preset: str = "auto", **overrides):
    """A ``trl.KTOTrainer`` built like :func:`build_dpo_trainer`, with a frozen copy of the start model as reference.

    Pairs train as two unpaired rows each (chosen desirable, rejected undesirable: ``data.unpaired.unpair``,
    shuffled by ``seed``); rows of TRL's unpaired format (``prompt``, ``completion``, ``label``) as they are.
    """
    return build_trainer("kto", model, dataset, preset, _options("kto", overrides))


def build_sft_trainer(model: Any = DEFAULT_MODEL, dataset: Any = None, preset: str = "auto", **overrides):
    """A ``trl.SFTTrainer`` built like :func:`build_dpo_trainer`, with no reference model.

    ``dataset``: SFT rows (``prompt``/``completion``, ``messages``, alpaca's ``instruction``/``output``,
    ``text``) or pairs, which train on their chosen answers (``data.sft.sft_rows``): the loss on the
    answer only.
    """
    return build_trainer("sft", model, dataset, preset, _options("sft", overrides))


def _options(method: str, overrides: dict) -> Options:
    """The keywords of ``build_<method>_trainer``, sorted (no runner option: that is train_<method>'s)."""
    named = {"model", "dataset", "preset"}
    return split_options(method, overrides, f"build_{method}_trainer", refuse=RUN_NAMES, also_named=named)


@library_noise_filtered()  # the libraries' noise, while it builds (SMOL_ALIGN_VERBOSE=1 shows it)
def build_trainer(method: str, model, dataset, preset: str, options: Options):
    """The trainer of ``method`` with ``options`` (:func:`smol_align.options.split_options`'s)."""
    tokenizer, ref_model, callbacks = (
        options.model.tokenizer,
        options.model.ref_model,
        options.model.callbacks,
    )
    constraints = list(options.model.constraints or [])
    if constraints and method != "dpo":
        raise ConfigError(
            f"constraints are terms on the DPO loss; {method.upper()} takes none (got {constraints})."
        )
    config = dict(options.config)
    soft = method == "dpo" and config.get("loss_type") == "soft"
    if soft:
        del config["loss_type"]
    built = presets.build(method, preset, **config, **options.model.preset_keywords())
    model, tokenizer = _model_and_tokenizer(model, tokenizer, built)
    # a PEFT model given (a LoRA run continued: smol_align.pipeline's lora="continue") trains its own adapter
    peft_config = None if is_peft(model) else built.peft_config
    pairs = load(dataset, **options.data.keywords())  # Pairs from train_dpo & co. come back as they are
    train_dataset, eval_dataset = pairs.train, pairs.eval
    if is_vision(train_dataset) and (method != "dpo" or not is_vision_language(model)):
        who = method.upper() if method != "dpo" else f"the text-only model {model_name(model)!r}"
        raise ConfigError(
            f"{pairs.name} holds images (an `images` column), which {who} cannot read: image pairs train with "
            "train_dpo on a vision-language model (its config has a vision_config; e.g. "
            "HuggingFaceTB/SmolVLM-256M-Instruct), or drop the column for a text-only run."
        )
    if method == "sft":  # pairs train on their chosen answers
        train_dataset, eval_dataset = sft_rows(train_dataset, pairs.name), sft_rows(eval_dataset, pairs.name)
    elif is_sft_rows(train_dataset):
        raise ConfigError(
            f"{pairs.name} holds SFT rows (a prompt and one answer to learn, or a text), not pairs: "
            f"train them with train_sft (smol-align sft); {method.upper()} needs a chosen and a rejected "
            "answer per prompt."
        )
    elif method == "kto":  # read in order (its KL rows are batch neighbours): not length-grouped
        train_dataset = (
            train_dataset if is_unpaired(train_dataset) else unpair(train_dataset, seed=built.args.seed)
        )
    elif is_unpaired(train_dataset):
        raise ConfigError(
            f"{pairs.name} holds unpaired rows (prompt, completion, label): train them with train_kto, "
            f"not {method.upper()}, which needs pairs."
        )
    elif built.group_by_length:
        train_dataset = _grouped_by_length(train_dataset, built.args)

    if method == "orpo":
        trainer_class, extra = import_orpo()[1], {}
    elif method == "sft":
        from trl import SFTTrainer as trainer_class

        extra = {}
    else:
        zero3 = getattr(getattr(built.args, "deepspeed_plugin", None), "zero_stage", None) == 3
        if (
            ref_model is None
            and peft_config is None
            and not is_peft(model)
            and not built.args.precompute_ref_log_probs
        ):
            # TRL 1.16 (DPO and KTO) reloads the reference from model.config._name_or_path when given none, which
            # fails for a model built or changed in memory; a frozen copy is exact and cheaper. Not under
            # ZeRO-3: the policy is sharded, so TRL loads the reference itself, sharded the same way.
            ref_model = None if zero3 else copy.deepcopy(model).eval().requires_grad_(False)
        extra = {"ref_model": ref_model}
        if method == "kto":
            from trl import KTOTrainer as trainer_class
        elif soft or constraints:
            from .soft_dpo import SoftDPOTrainer as trainer_class

            extra["constraints"] = constraints
            if soft:
                train_dataset = _with_soft_labels(train_dataset)
                eval_dataset = _with_soft_labels(eval_dataset) if eval_dataset is not None else None
            else:
                extra["preference_prob_column"] = None
        else:
            from trl import DPOTrainer as trainer_class
    trainer = trainer_class(
        model=model,
        args=built.args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        **extra,
    )
    if is_peft(
        trainer.model
    ):  # adapters train in fp32 whatever the base; a 4-bit base keeps passing gradients (_compat)
        trainable_params_to_fp32(trainer.model)
        keep_4bit_layers_trainable(trainer.model)
    return trainer


def _grouped_by_length(data, args, window: int = 64):
    """``group_by_length=True`` (the ``cpu`` preset's; a smol_align option, so ``presets.build(...).args`` stays usable
    in a trainer you build yourself): steps of pairs of similar length, in random order.

    The pairs are reordered once, before tokenization (seeded: a resume and every method of a compare see the same
    order): shuffled, sorted by length (characters of the prompt and the longer answer) within windows of ``window``
    steps, cut into global batches (one optimizer step's pairs: the same steps on one process or several), the
    steps shuffled; the trainer reads them in that order (``sequential``). HH-RLHF rows at batch 4: 56% of the padded
    positions are real tokens in random batches, 91% here (docs/benchmarks.md, "Speed"). Not transformers'
    LengthGroupedSampler: it serves each window longest batch first, so a short run would train on the longest
    pairs only.
    """
    import random

    if not hasattr(data, "select") or not {"prompt", "chosen", "rejected"} <= set(data.column_names or []):
        return data  # a streamed dataset is read in its own order

    def size(messages) -> int:
        return (
            len(messages)
            if isinstance(messages, str)
            else sum(len(str(m.get("content", ""))) for m in messages)
        )

    lengths = [
        size(p) + max(size(c), size(r))
        for p, c, r in zip(data["prompt"], data["chosen"], data["rejected"], strict=True)
    ]
    rng = random.Random(args.seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batch = (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    )  # one step's pairs
    batches = []
    for start in range(0, len(order), window * batch):
        chunk = sorted(order[start : start + window * batch], key=lengths.__getitem__)
        batches += [
            chunk[i : i + batch] for i in range(0, len(chunk), batch)
        ]  # each sorted: so are its micro-batches
    rng.shuffle(batches)
    args.train_sampling_strategy = "sequential"
    return data.select([i for b in batches for i in b])


def _with_soft_labels(dataset):
    """Add ``preference_prob`` from the normalized rating columns when the data has ratings but no such column."""
    from .soft_dpo import PREFERENCE_PROB_COLUMN, with_preference_prob

    columns = dataset.column_names or []
    if PREFERENCE_PROB_COLUMN in columns or not {"score_chosen", "score_rejected"} <= set(columns):
        return dataset  # SoftDPOTrainer names the missing column itself
    return with_preference_prob(dataset, "score_chosen", "score_rejected")


def _model_and_tokenizer(model, tokenizer, built: presets.Build):
    if isinstance(model, str):
        quantization = built.quantization_config
        return load_model(model, tokenizer=tokenizer, dtype=built.dtype, quantization_config=quantization)
    if isinstance(tokenizer, str):
        tokenizer = (load_processor if is_vision_language(model) else load_tokenizer)(tokenizer)
    if built.quantization_config is not None and not getattr(model, "is_loaded_in_4bit", False):
        raise ConfigError(
            f"Preset {built.preset!r} loads the model in 4-bit, which needs the model by name or path, "
            "not an already loaded model. Pass model='org/name' (or a folder)."
        )
    if tokenizer is None:
        what = "its processor (AutoProcessor)" if is_vision_language(model) else "its tokenizer"
        raise ConfigError(f"A loaded model needs {what}: pass tokenizer=... (or pass the model by name).")
    if built.peft_config is None and not is_peft(model):
        presets.warn_if_updates_round_away(model.dtype, built.args.learning_rate)
    prepare_tokenizer(model, tokenizer)
    return model, tokenizer

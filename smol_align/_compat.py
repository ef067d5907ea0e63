"""Everything that differs across TRL / transformers releases, and every private library name we touch.

TRL 1.x moved ORPO to ``trl.experimental.orpo`` (importing it warns), dropped
``DPOConfig.max_prompt_length`` and ``setup_chat_format``. Code elsewhere in smol_align imports
these names from this module only. The private names, each in one small function here and each with a test
in tests/test_compat.py that fails naming the library and its version when a release renames it:
TRL's ``trl.trainer.utils._use_triton`` (:func:`compact_lm_head_while`), ``DPOTrainer._prepare_dataset``
(:func:`dpo_tokenized`), a trainer's ``_metrics`` (:func:`trainer_metrics`) and
``TrlParser._add_dataclass_arguments`` (:func:`add_dataclass_group`); transformers'
``Trainer._signature_columns`` (:func:`keep_signature_column`), ``_tied_weights_keys``
(:func:`tied_weights_keys`) and ``WandbCallback._wandb`` / ``_initialized`` (:func:`finish_wandb`);
accelerate's ``PartialState._shared_state`` (:func:`distributed_state_made`); bitsandbytes' CPU packing
(:func:`keep_4bit_layers_trainable`). ``SoftDPOTrainer`` overrides ``DPOTrainer._compute_loss`` and
``Trainer._set_signature_columns_if_needed``, tested there too; :class:`HelpFormatter` overrides argparse's
``HelpFormatter._format_action_invocation`` as Python 3.13 has it. ``SMOL_ALIGN_TRL_HOOKS=0`` (:data:`HOOKS`)
turns the one patch (:func:`compact_lm_head_while`) off and runs TRL as shipped. The libraries' noise a run
causes is filtered while smol_align works (:func:`library_noise_filtered`; ``SMOL_ALIGN_VERBOSE=1`` shows it).
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from contextlib import contextmanager

HOOKS = os.environ.get("SMOL_ALIGN_TRL_HOOKS", "1") != "0"  # the one switch for patches of TRL's privates

# What the libraries print while smol_align works that no user has to act on: on importing peft (the first
# run in a process), bitsandbytes >= 0.49 fetches a CPU kernel through ``kernels`` and, offline or without it,
# logs the hub's "Skipping publisher trust check" and its own "Failed to load CPU gemm_4bit_forward" (a 4-bit
# CPU-inference speed-up that no preset uses); TRL 1.16 reads ``model.is_gradient_checkpointing``, which
# transformers 5 deprecates (a FutureWarning); bitsandbytes 0.46's CPU ops call ``torch._check_is_size``, which
# torch 2.13 deprecates (a FutureWarning per 4-bit step); the progress bars of datasets' map/filter (TRL's "Tokenizing",
# smol_align's "Normalizing") and of transformers' loading and saving ("Loading weights", "Writing model shards").
NOISY_LOGGERS = ("kernels", "bitsandbytes")  # their records below ERROR; the logger is not imported
NOISY_WARNINGS = (
    (FutureWarning, r".*is_gradient_checkpointing. is deprecated"),
    (FutureWarning, r"_check_is_size will be removed"),
)


@contextmanager
def library_noise_filtered(bars: bool = True):
    """Inside the block (or the function it decorates), the libraries' noise a run causes is filtered
    (:data:`NOISY_LOGGERS`, :data:`NOISY_WARNINGS`; with ``bars``, the progress bars of datasets and transformers:
    the training bar, TRL's, stays, and so do the Hub's download bars); on the way out the loggers' levels, the
    warnings filters and the bars are as they were, so a notebook's own ``datasets.map`` shows its bar again.
    Everything else comes through: smol_align's own lines and warnings, and the libraries' other warnings and
    errors. ``SMOL_ALIGN_VERBOSE=1`` in the environment (read at each entry) turns the filter off: every line
    the libraries print, for debugging. ``bars=False`` imports nothing (the CLI wraps every command in it, so
    ``smol-align --help`` stays fast); the runner, which needs both libraries, silences the bars. Yields whether
    the filter is on."""
    if os.environ.get("SMOL_ALIGN_VERBOSE", "0").strip().lower() not in ("", "0", "false", "no"):
        yield False
        return
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    with warnings.catch_warnings():  # the filters as they were, on the way out
        for category, message in NOISY_WARNINGS:
            warnings.filterwarnings("ignore", message, category)
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        restore_bars = _library_bars_off() if bars else None
        try:
            yield True
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if restore_bars is not None:
                restore_bars()


def _library_bars_off():
    """Turn off datasets' progress bars (unless ``HF_DATASETS_DISABLE_PROGRESS_BARS`` decides) and transformers'
    (through its tqdm hook, transformers >= 5: its ``disable_progress_bar`` would take the Hub's download bars
    too); returns the function that puts them back as they were."""
    import datasets.utils as datasets_utils
    from transformers.utils import logging as transformers_logging

    undo, chosen = [], "HF_DATASETS_DISABLE_PROGRESS_BARS" in os.environ  # the user's choice, either way
    if not chosen and not datasets_utils.are_progress_bars_disabled():
        datasets_utils.disable_progress_bars()
        undo.append(datasets_utils.enable_progress_bars)
    if hasattr(transformers_logging, "set_tqdm_hook"):

        def hidden(make, args, kwargs):
            return make(*args, **{**kwargs, "disable": True})

        previous = transformers_logging.set_tqdm_hook(hidden)
        undo.append(lambda: transformers_logging.set_tqdm_hook(previous))

    def restore():
        for step in undo:
            step()

    return restore


def import_orpo():
    """``(ORPOConfig, ORPOTrainer)`` from ``trl.experimental.orpo`` (TRL 1.x), its "experimental" notice silenced:
    smol_align pins the TRL it tests against, so the notice would only puzzle learners."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    return ORPOConfig, ORPOTrainer


def add_dataclass_group(parser, dataclass, title: str) -> None:
    """``dataclass``'s fields as flags of ``parser`` (an ``HfArgumentParser``: TRL's ``TrlParser``), listed
    under ``title`` in the help. Its private ``_add_dataclass_arguments`` makes a group of a class's
    ``_argument_group_name``: a subclass carries the title, TRL's class is left as it is."""
    parser._add_dataclass_arguments(type(dataclass.__name__, (dataclass,), {"_argument_group_name": title}))


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help as Python 3.13 prints it: a flag's spellings, then its value once
    (``--max_steps, --max-steps MAX_STEPS``); before 3.13 the value follows each spelling."""

    def _format_action_invocation(self, action):
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"


def checkpointing_kwargs(enabled: bool | None) -> dict:
    """The TrainingArguments field for gradient checkpointing under this transformers release.

    transformers 5.x renamed ``gradient_checkpointing`` to ``activation_checkpointing`` (the old
    name warns); older releases only know the old one.
    """
    if enabled is None:
        return {}
    from transformers import TrainingArguments

    new = "activation_checkpointing" in TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if new else "gradient_checkpointing": bool(enabled)}


def tracker_names(folder) -> dict:
    """``run_name``: the run's folder; ``project``: the folder that holds it (``TrainingArguments.project``
    arrived in transformers 4.57; trackio read ``TRACKIO_PROJECT`` before)."""
    from transformers import TrainingArguments

    names = {"run_name": folder.name, "project": folder.resolve().parent.name}
    return names if "project" in TrainingArguments.__dataclass_fields__ else {"run_name": folder.name}


@contextmanager
def compact_lm_head_while(device):
    """Inside the block, TRL's fused LM head scores only the completion positions on CPU, as it does on GPUs.

    TRL 1.16's ``add_fused_lm_head`` projects only the positions with a label on Triton devices
    (CUDA, XPU) and every position elsewhere, because on Neuron a changing number of positions
    recompiles the graph. A CPU compiles nothing, so scoring the prompt and padding positions
    there is pure waste: a quarter of a DPO step on HH-RLHF-length prompts (measured with
    torch.profiler; scripts/bench.py). The result is the same tensor either way (every
    unscored position is zero), which tests/test_compat.py checks. It patches TRL's private
    ``trl.trainer.utils._use_triton`` when ``device`` is a CPU and puts TRL's own function back on the
    way out: the runner wraps ``trainer.train()`` in it and evaluation its forward passes, so no other
    code in the process (a trainer you build and run yourself included) sees a patched TRL. Yields
    whether the switch is on (not with :data:`HOOKS` off, another device, or a TRL without the hook).
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    on = HOOKS and original is not None and getattr(device, "type", device) == "cpu"
    if on:
        trl_utils._use_triton = lambda d: d.type == "cpu" or original(d)
    try:
        yield on
    finally:
        if on:
            trl_utils._use_triton = original


@contextmanager
def no_cudnn_attention_while(device):
    """On CUDA, scaled-dot-product attention without its cuDNN backend inside the block (flash, memory-efficient or
    math instead); elsewhere nothing. Yields whether it is on.

    torch 2.11 picks cuDNN's attention on an H100, which plans its kernels anew for each new sequence length. DPO's
    padded batches bring a new length at almost every step: the planning took 6.3 ms of CPU per forward call and
    12.8 ms per backward, two thirds of a SmolLM2-135M step, the GPU busy 42 ms of it (torch.profiler, docs/benchmarks.md "Speed").
    """
    if getattr(device, "type", device) != "cuda":
        yield False
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        yield True


def trainable_params_to_fp32(model) -> int:
    """Cast trainable parameters back to fp32; returns how many were cast.

    TRL 1.16 casts the LoRA adapters of a 4-bit model to bf16 (DPOTrainer always, ORPOTrainer
    under ``bf16=True``), after the QLoRA paper. At DPO-sized learning rates bf16 adapters lose
    most updates to rounding (``presets.weights_dtype``), so smol_align keeps them in fp32: the
    optimizer is created at ``train()``, after this runs. The frozen 4-bit base is untouched.
    """
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            cast += 1
    return cast


def keep_4bit_layers_trainable(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference; returns how many layers it touched.

    On a CPU with AVX512-BF16, bitsandbytes 0.50's ``Linear4bit.forward`` converts its weight, on the
    first forward in eval mode without gradients (any held-out evaluation or ``generate``), into a
    packed CPU-inference layout (``packing_format_for_cpu``) and keeps it that way. A later training
    forward through a packed layer passes no gradient to its input, so every LoRA adapter below a
    4-bit layer learns only through the residual stream: QLoRA on the demo reached "prefers chosen"
    0.38 there (0.81 for LoRA; 1.00 for QLoRA on a GPU, which never packs). Switching the layer's
    ``support_avx512bf16_for_cpu`` off keeps the trainable layout; a layer packed already is unpacked.
    """
    count = 0
    for module in model.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse

            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state
            )
        count += 1
    return count


def dpo_tokenized(dataset, tokenizer, max_length: int | None = None):
    """Preference rows tokenized by TRL's own (private) ``DPOTrainer._prepare_dataset``, with no trainer built.

    Gives ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` exactly as a DPO trainer would (prompt extracted
    when implicit, EOS added to string completions, the chat template, the completion starting where the
    tokenized prompt and prompt + completion diverge) and drops the pairs whose prompt alone fills
    ``max_length``. The method reads only ``self._tokenizer`` and three fields of its config.
    """
    from types import SimpleNamespace

    from trl import DPOTrainer

    args = SimpleNamespace(dataset_num_proc=None, max_length=max_length, truncation_mode="keep_start")
    return DPOTrainer._prepare_dataset(
        SimpleNamespace(_tokenizer=tokenizer), dataset, tokenizer, args, "held-out"
    )


def distributed_state_made() -> bool:
    """Whether accelerate's process state exists yet (its private ``PartialState._shared_state``), so that
    asking fixes nothing: a ``PartialState()`` made before a trainer would fix the process as not distributed
    on a CPU (accelerate needs ``cpu=True`` there, which TRL's config passes)."""
    from accelerate import PartialState

    return bool(PartialState._shared_state)


def tied_weights_keys(model) -> set[str]:
    """The names of ``model``'s weights tied to another (transformers' private ``_tied_weights_keys``: a dict
    of tied name -> source in transformers 5, a list before); a checkpoint stores only one of each pair."""
    return set(getattr(model, "_tied_weights_keys", None) or ())


def finish_wandb(callback) -> bool:
    """Finish the wandb run a transformers ``WandbCallback`` opened (its private ``_wandb``, the module, and
    ``_initialized``), which transformers leaves open until the process ends; returns whether one was open."""
    if callback._wandb is None or not callback._initialized:
        return False
    callback._wandb.finish()
    callback._initialized = False
    return True


def trainer_metrics(trainer, mode: str) -> dict[str, list]:
    """TRL's private per-step metric lists of a trainer (``trainer._metrics["train"|"eval"]``): what a
    subclass appends here, TRL averages and logs with its own (``rewards/margins``...) at the next ``log``."""
    return trainer._metrics[mode]


def keep_signature_column(trainer, column: str) -> None:
    """Keep ``column`` in the batches: transformers drops every dataset column its private
    ``_signature_columns`` (set by ``_set_signature_columns_if_needed``) does not name."""
    if column not in trainer._signature_columns:
        trainer._signature_columns = [*trainer._signature_columns, column]


def forward_without_autocast(model) -> None:
    """Undo accelerate's autocast wrapper of ``model.forward`` (``prepare`` leaves it for good), handing back the
    forward it saved (``_original_forward``: TRL's fused-head forward over the model's own). accelerate 1.x's
    ``extract_model_from_parallel(keep_fp32_wrapper=False)`` looks for it down the ``__wrapped__`` chain, which
    TRL's patch points at the model class's forward, and binds the innermost function it finds: the forward
    without transformers' decorators, which Idefics3 (SmolVLM) cannot generate with."""
    from accelerate.utils import extract_model_from_parallel

    saved = model.__dict__.get("_original_forward")
    extract_model_from_parallel(model, keep_fp32_wrapper=False)
    if saved is not None:
        model.forward = saved

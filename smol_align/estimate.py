"""Peak memory of a DPO/ORPO/KTO run, predicted before it starts: ``smol_align.estimate``, ``smol-align estimate``.

The peak of a step (from step 2 on, when AdamW's moments exist) is the sum of these parts, each
computed from the model's config (instantiated on the meta device: no weights are loaded) and the
preset's TRL config:

* ``runtime``: the Python process with torch, transformers and TRL loaded (CPU: resident memory;
  on a GPU 0, as ``torch.cuda.max_memory_allocated`` counts only tensors);
* ``weights``: every parameter in the dtype it is loaded in; a 4-bit base holds its decoder linear
  layers in NF4 (half a byte, plus double-quantized block constants) and the rest in the compute dtype;
* ``autocast``: bf16 autocast over fp32 weights keeps a bf16 copy of every matmul weight for the step;
* ``reference``: a DPO full fine-tune's frozen copy of the weights (none for LoRA, whose reference is
  the base with the adapters off, for ORPO, or with ``precompute_ref_log_probs``);
* ``gradients`` and ``optimizer``: fp32, one and two (AdamW's moments) per trainable parameter (the
  gradients are not counted beside the activations: they do not peak together);
* ``activations``: what the forward keeps for the backward, for ``2 x batch`` sequences (chosen and
  rejected; KTO's batch of single answers counts as half as many pairs: its KL forward keeps no
  activations) of ``max_length`` tokens, :data:`ACTIVATION_BYTES` per token and layer; with checkpointing,
  on a GPU each layer's input plus one layer's activations (recomputed in the backward), on a CPU
  :data:`CHECKPOINTED_SHARE` of the whole;
* ``reference`` and ``lm head``: KTO as DPO;
* ``lm head``: DPO: TRL's fused head scores a ``[tokens, 32768]`` fp32 tile of logits at a time; ORPO's
  trainer builds the whole ``[tokens, vocabulary]`` logits (:data:`ORPO_LOGIT_BYTES`).

On a GPU the figure is what ``torch.cuda.max_memory_allocated`` counts: live tensors, counted from a
Llama block. On a CPU it is the process's peak resident memory, which also holds blocks the allocator
freed but kept: its constants are measured (larger activations, the norms' fp32 copies of a bf16 base).

It is an upper bound for data that fills ``max_length`` (shorter batches take less), and it is
checked against measured peaks by ``scripts/bench_memory.py`` (docs/presets.md, "Memory").
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

GB = 2**30
RUNTIME_CPU = 0.55 * GB  # resident memory of python + torch + transformers + TRL + datasets, measured
ACTIVATION_BYTES = {"cuda": {"hidden": 32, "intermediate": 8}, "cpu": {"hidden": 34, "intermediate": 14}}
"""Bytes kept for the backward per token and decoder layer, per unit of hidden size and of MLP width, at 2-byte
(bf16 autocast) activations; twice that in fp32. GPU, counted from a Llama block: each RMSNorm's fp32 input and
normalized output and their bf16 cast (2 x 10), q, k, v, their rotated copies and the attention output (12);
gate, up, SiLU and their product (8). CPU: measured peak resident memory (scripts/bench_memory.py), which
also holds what the allocator freed and kept."""
HEAD_TILE = (4096, 32768)  # TRL 1.16's fused LM head: tokens x vocabulary entries per fp32 tile
ORPO_LOGIT_BYTES = {
    "cuda": 10,
    "cpu": 14,
}  # per token and vocabulary entry: bf16 logits, fp32 log-softmax, its gradient
CHECKPOINTED_SHARE = 0.4
"""CPU: share of the activations resident at the peak with gradient checkpointing (transformers 5.23, TRL 1.16):
measured, not derived (docs/presets.md, "Memory": full and LoRA at 512 tokens both hold 0.4 of what they hold
without); the layers' inputs and one layer's recomputation, which is what a GPU holds, would be under 0.1."""


@dataclass
class Estimate:
    """Predicted peak memory in bytes, by part (``parts``), and what it was computed for (``setting``)."""

    parts: dict[str, float]
    setting: dict[str, Any]

    @property
    def total(self) -> float:
        """Bytes at the peak: gradients and activations do not peak together (TRL zeroes the gradients,
        set_to_none, before each forward; the backward frees activations as it fills gradients)."""
        p = self.parts
        return sum(p.values()) - min(p["gradients"], p["activations"] + p["lm head"])

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def line(self) -> str:
        """One line for the start of a run."""
        shown = ", ".join(f"{k} {v / GB:.1f}" for k, v in self.parts.items() if v >= 0.05 * GB)
        return f"Estimated peak memory {self.total_gb:.1f} GB of {free_memory() / GB:.1f} GB free ({shown})"

    def __str__(self) -> str:
        head = ", ".join(f"{k} {v}" for k, v in self.setting.items())
        rows = [f"  {name:<12} {value / GB:6.2f} GB" for name, value in self.parts.items() if value]
        note = "  (gradients and activations do not peak together: the smaller is left out of the total)"
        return "\n".join(
            [
                f"Estimated peak memory: {self.total_gb:.2f} GB ({head}); {free_memory() / GB:.1f} GB free here",
                *rows,
                note,
            ]
        )


def estimate(
    model: Any = None,
    method: str = "dpo",
    preset: str = "auto",
    max_length: int | None = None,
    batch_size: int | None = None,
    longest: int | None = None,
    **overrides: Any,
) -> Estimate:
    """Predicted peak memory of training ``model`` with ``method`` on ``preset`` (see the module docstring).

    ``model`` is a name or path (only its config is read) or a loaded model; ``max_length`` and
    ``batch_size`` (per device) default to the preset's; ``longest`` is the data's longest pair in tokens
    (prompt + the longer answer) when it is shorter than ``max_length``; other keywords override the config as in
    :func:`smol_align.train_dpo` (``gradient_checkpointing=True``, ``bf16=False``, ``lora_r=8``...).
    """
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from . import presets
    from .models import DEFAULT_MODEL, loading, resolve

    model = DEFAULT_MODEL if model is None else model
    sizes = {"max_length": max_length, "per_device_train_batch_size": batch_size}
    built = presets.build(method, preset, **{k: v for k, v in sizes.items() if v is not None}, **overrides)
    args = built.args
    if hasattr(model, "config"):
        config = model.config
    else:
        with loading(model, needs=("config",)):
            config = AutoConfig.from_pretrained(resolve(str(model)))
    with init_empty_weights():
        meta = AutoModelForCausalLM.from_config(config)
    meta.tie_weights()  # not done on the meta device: SmolLM2's head would count twice
    head = meta.get_output_embeddings()
    linear = [m for m in meta.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    total = sum(p.numel() for p in meta.parameters())
    in_linear = sum(m.weight.numel() for m in linear)
    lora = built.peft_config
    trainable = sum(lora.r * (m.in_features + m.out_features) for m in linear) if lora else total
    size = torch.finfo(built.dtype).bits // 8
    bf16 = bool(args.bf16)
    device = (
        "cpu" if args.use_cpu else "cuda"
    )  # the preset's: colab-t4 is estimated for its GPU on any machine

    if (
        built.quantization_config is not None
    ):  # NF4: 4 bits, plus an 8-bit constant per 64 and fp32 per 256 of those
        weights = in_linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + (total - in_linear) * (2 if bf16 else 4)
    else:
        weights = total * size
    weights += (trainable * 4) if lora else 0  # fp32 adapters
    text = config.get_text_config()
    layers, hidden = text.num_hidden_layers, text.hidden_size
    counts = ACTIVATION_BYTES[device]
    per_layer = (counts["hidden"] * hidden + counts["intermediate"] * text.intermediate_size) * (
        1 if bf16 else 2
    )
    if device == "cpu" and (
        size == 2 or built.quantization_config is not None
    ):  # measured: a bf16 base's norms
        per_layer += 2 * 2 * 4 * hidden
    length = min(args.max_length, longest or args.max_length)
    pairs = args.per_device_train_batch_size // (2 if method == "kto" else 1)  # KTO's batch: single answers
    tokens = 2 * pairs * length
    checkpointing = bool(
        getattr(args, "activation_checkpointing", None) or getattr(args, "gradient_checkpointing", False)
    )
    if not checkpointing:
        stored = layers * per_layer
    elif (
        device == "cuda"
    ):  # each layer's input (the residual stream: fp32 over fp32 weights), one layer recomputed
        stored = layers * hidden * (4 if size == 4 else 2) + per_layer
    else:
        stored = layers * per_layer * CHECKPOINTED_SHARE
    if method in ("dpo", "kto"):  # TRL's fused head: one fp32 tile and its softmax
        logits = 2 * min(tokens, HEAD_TILE[0]) * min(text.vocab_size, HEAD_TILE[1]) * 4
    else:  # ORPO's trainer builds the full logits: bf16, their fp32 log-softmax and its gradient
        logits = tokens * text.vocab_size * ORPO_LOGIT_BYTES[device]
    reference = method in ("dpo", "kto") and not lora and not getattr(args, "precompute_ref_log_probs", False)
    parts = {
        "runtime": RUNTIME_CPU if device == "cpu" else 0,
        "weights": weights,
        "autocast": in_linear * 2 if bf16 and size == 4 else 0,
        "reference": total * size if reference else 0,
        "gradients": trainable * 4,
        "optimizer": trainable * 8,
        "activations": tokens * stored,
        "lm head": logits,
    }
    setting = {
        "method": method,
        "preset": built.preset,
        "tokens per sequence": length,
        "batch": args.per_device_train_batch_size,
        "accumulation": args.gradient_accumulation_steps,
        "checkpointing": checkpointing,
        "bf16": bf16,
    }
    return Estimate(parts, setting)


def free_memory() -> int:
    """Bytes a run can use here: free memory of GPU 0, else the available RAM (Linux's MemAvailable)."""
    import psutil  # an accelerate dependency
    import torch

    return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else psutil.virtual_memory().available


def fit(
    model: Any,
    method: str,
    preset: str,
    overrides: dict,
    longest: int | None = None,
    budget: int | None = None,
) -> Estimate:
    """The estimate of the run ``overrides`` describe, made to fit when the machine was left to ``auto``.

    When the preset names no hardware and neither the batch size nor checkpointing was given, and the
    estimate exceeds 90% of ``budget`` (default :func:`free_memory`): checkpointing goes on, then the
    per-device batch is halved (gradient accumulation doubled: the same global batch) until it fits or is 1.
    ``overrides`` gets the values chosen.
    """
    from .presets import EXTRA_KEYS, HARDWARE, config_class

    fields = {f.name for f in dataclasses.fields(config_class(method))} | EXTRA_KEYS
    given = {k: v for k, v in overrides.items() if k in fields}
    plan = estimate(model, method, preset, longest=longest, **given)
    limit = 0.9 * (budget or free_memory())
    chosen = {"per_device_train_batch_size", "gradient_checkpointing", "activation_checkpointing"} & set(
        given
    )
    if plan.total <= limit or chosen or any(p in HARDWARE for p in (preset or "auto").lower().split("+")):
        return plan
    batch, global_batch = plan.setting["batch"], plan.setting["batch"] * plan.setting["accumulation"]
    while True:
        sizes = {
            "per_device_train_batch_size": batch,
            "gradient_accumulation_steps": max(1, global_batch // batch),
            "gradient_checkpointing": True,
        }
        plan = estimate(model, method, preset, longest=longest, **{**given, **sizes})
        if plan.total <= limit or batch == (2 if method == "kto" else 1):  # KTO's KL estimate needs 2
            overrides.update(sizes)
            return plan
        batch //= 2


def plan_memory(model, method, preset, overrides, report, say) -> None:
    """Say the estimate before anything loads; left to ``auto``, the run is made to fit (:func:`fit`).
    Sequences are as long as the data's longest pair in the doctor's ``report``: its chars/4 count, plus a
    quarter and 32 chat-template tokens."""
    try:
        lengths = report.lengths if report is not None else {}
        answer = max(lengths["chosen"].max, lengths["rejected"].max) if lengths else 0
        longest = lengths["prompt"].max + answer if lengths else None
        before = dict(overrides)
        plan = fit(model, method, preset, overrides, longest=int(longest * 1.25) + 32 if longest else None)
        say(plan.line())
        if overrides != before:
            batch, steps = plan.setting["batch"], plan.setting["accumulation"]
            say(
                f"To fit, preset {preset!r} trains with checkpointing, per-device batch {batch} x {steps} "
                "accumulation steps (the same global batch)."
            )
    except Exception as err:  # the estimate must never stop a run
        logger.info("No memory estimate: %s", err)

"""Named presets that build TRL's own configs (``DPOConfig`` / ``ORPOConfig`` / ``KTOConfig`` /
``SFTConfig``) for a machine.

A preset is a hardware base (``cpu``, ``colab-t4``, ``gpu-bf16``) and an adaptation mode
(``full``, ``lora``, ``qlora-4bit``); ``auto`` picks the hardware base for this machine. Join
them with ``+`` (``"colab-t4+lora"``); a mode alone (``"lora"``) runs on the ``auto`` hardware.

>>> from smol_align import presets
>>> built = presets.build("dpo", "cpu", learning_rate=1e-5)   # doctest: +SKIP
>>> built.args                                                 # a real trl.DPOConfig
>>> built.peft_config, built.quantization_config               # None for a full fine-tune

Every field of the TRL config can be overridden by keyword. Unknown keywords are an error that
suggests the closest valid name; the names the course material used with older TRL releases
are mapped to today's with a warning, or refused with a message that says what to use.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

METHODS = ("dpo", "orpo", "kto", "sft")


@dataclass(frozen=True)
class Preset:
    """One named preset: TRL config values plus the LoRA / 4-bit choices, each value commented."""

    name: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)  # fields shared by DPOConfig and ORPOConfig
    lora: dict[str, Any] | None = None  # peft.LoraConfig kwargs; None = full fine-tune
    load_in_4bit: bool = False  # bitsandbytes NF4 quantization of the frozen base
    group_by_length: bool = False  # steps of pairs of similar length (trainers._grouped_by_length)


# Values every preset starts from: TRL's defaults, less what gets in a learner's way.
_COMMON = {
    "report_to": [],  # no wandb/tensorboard prompts in a notebook; the report is smol_align's own
    "logging_steps": 1,  # short runs: one point per step for the curves
    "save_strategy": "no",  # train_dpo/train_orpo checkpoint a quarter of the run at a time (smol_align.run)
    "logging_nan_inf_filter": False,  # show a NaN loss as NaN: the runner stops there instead of saving
    "eval_strategy": "no",  # held-out evaluation runs before and after training, not mid-run
    "max_length": 512,  # prompt + completion; TRL's 1024 doubles the cost of rare long pairs
    "seed": 0,
}

HARDWARE = {
    "cpu": Preset(
        name="cpu",
        description="Laptop or CI CPU: fp32 (bf16 only with native bf16 instructions), no checkpointing.",
        config={
            "use_cpu": True,  # without it, TRL's default bf16=True is refused on a machine without a GPU
            "bf16": "native",  # resolved at build time: True only with AVX512-BF16/AMX, where it is fast
            "gradient_checkpointing": False,  # memory is plentiful on CPU; recomputation costs ~30% more time
            "per_device_train_batch_size": 8,  # a 135M model with 8 short pairs fits easily in a few GB
            "per_device_eval_batch_size": 16,
            "gradient_accumulation_steps": 1,
            "learning_rate": 5e-6,  # small models tolerate more than the 5e-7 of 7B recipes
            "dataloader_num_workers": 0,  # worker processes only compete for the two cores
        },
        # HH-RLHF pairs: 91% of padded positions real instead of 56%; 3.19x TRL's pairs/s (docs/benchmarks.md)
        group_by_length=True,
    ),
    "colab-t4": Preset(
        name="colab-t4",
        description="Colab T4 (16 GB, no bf16): fp32 weights and math, never fp16, checkpointing on.",
        config={
            "bf16": False,  # the T4 has no bf16
            "fp16": False,  # fp16 DPO underflows the log-ratios and the loss collapses to 0
            "gradient_checkpointing": True,  # fp32 activations of 1k-token pairs fill 16 GB quickly
            "per_device_train_batch_size": 4,
            "per_device_eval_batch_size": 8,
            "gradient_accumulation_steps": 4,  # effective batch 16
            "learning_rate": 5e-6,
        },
    ),
    "gpu-bf16": Preset(
        name="gpu-bf16",
        description="One Ampere-or-newer GPU (A100, H100, L4, RTX 30xx+): bf16, checkpointing on.",
        config={
            "bf16": True,
            "gradient_checkpointing": True,  # lets the batch, not the activations, use the memory
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 16,
            "gradient_accumulation_steps": 2,  # effective batch 16
            "learning_rate": 5e-6,
            "max_length": 1024,
        },
    ),
}

_LORA = {  # peft.LoraConfig kwargs of both adapter modes
    "r": 16,
    "lora_alpha": 32,  # alpha = 2r, the usual scaling
    "lora_dropout": 0.0,  # TRL disables dropout in DPO anyway; keep train and eval alike
    "target_modules": "all-linear",  # attention and MLP projections, not lm_head (TRL refuses it)
    "task_type": "CAUSAL_LM",
}
MODES = {
    "full": Preset(name="full", description="Full fine-tune: every weight trains (the default mode)."),
    "lora": Preset(
        name="lora",
        description="LoRA adapters (r=16) on every linear layer; the reference is the base with the adapter off.",
        config={"learning_rate": 5e-5},  # adapters start at zero and need ~10x the full-tune rate
        lora=_LORA,
    ),
    "qlora-4bit": Preset(
        name="qlora-4bit",
        description="QLoRA: the frozen base in 4-bit NF4 (bitsandbytes), LoRA adapters on top.",
        config={"learning_rate": 1e-4},  # the QLoRA paper's rate for small models
        lora=_LORA,
        load_in_4bit=True,
    ),
}

ORPO_DEFAULTS = {
    "beta": 0.1,  # lambda in the ORPO paper: weight of the odds-ratio term next to the SFT loss
    "learning_rate": 8e-6,  # the ORPO paper's rate; its SFT term needs no reference model
    "remove_unused_columns": False,  # ORPO's collator reads the text columns: TRL sets it, with a warning, if not
}
KTO_DEFAULTS = {  # with the hardware's batch doubled (build): a step holds the rows of as many pairs as DPO's
    "beta": 0.1,  # TRL's default and the KTO paper's: the scale of the implicit reward, as in DPO
    "desirable_weight": 1.0,  # pairs give as many desirable rows as undesirable ones: the paper's eq. 8 range
    "undesirable_weight": 1.0,  # (lambda_D n_D / lambda_U n_U in [1, 4/3]) holds at 1:1; TRL warns otherwise
}

SFT_RATES = {  # SFT's learning rate per mode: its loss is the plain NLL of the target tokens, whose gradient
    # does not saturate as DPO's sigmoid does, and instruction tuning moves the model further than a
    # preference nudge; 2e-5 is TRL's SFTConfig default and the usual full fine-tune rate (4x DPO's 5e-6),
    # below the ~1e-4 where a 135M model starts forgetting its instruction tuning
    "full": 2e-5,
    "lora": 2e-4,  # adapters start at zero: ~10x the full rate, as TRL's and PEFT's SFT examples use
    "qlora-4bit": 2e-4,  # the QLoRA paper's 2e-4 for models of this size
}
SFT_DEFAULTS = {
    "completion_only_loss": None,  # TRL's rule: the loss on the completion only for prompt/completion rows
    "packing": False,  # each row its own sequence: held-out NLL and the answers' voice stay per answer
}

# Course-era names (TRL < 1.0) -> today's name, or None with the reason it was refused.
RENAMED = {
    "evaluation_strategy": "eval_strategy",
    "per_gpu_train_batch_size": "per_device_train_batch_size",
    "per_gpu_eval_batch_size": "per_device_eval_batch_size",
    "no_cuda": "use_cpu",
    "activation_checkpointing": "gradient_checkpointing",
    "warmup_ratio": "warmup_steps",  # transformers 5 removed it; warmup_steps < 1 is a ratio
}
RETIRED = {
    "max_prompt_length": "TRL 1.x has no separate prompt limit: `max_length` bounds prompt + completion, "
    "keeping the start. Shorten long prompts in the data, or raise max_length.",
    "max_target_length": "use `max_length` (prompt + completion).",
    "generate_during_eval": "use smol_align.evaluate() / the report's side-by-side answers.",
    "is_encoder_decoder": "DPO in TRL 1.x trains decoder-only models; the flag is gone.",
    "label_pad_token_id": "TRL 1.x masks padding itself; the label pad id is no longer configurable.",
    "padding_value": "set tokenizer.pad_token instead (load_model does).",
    "reference_free": "use loss_type='sigmoid' with a reference (TRL 1.x always has one), or train_orpo (no reference).",
    "model_adapter_name": "TRL 1.x trains the active adapter and uses an adapter named 'ref' as reference if present.",
    "ref_adapter_name": "name the reference adapter 'ref': TRL 1.x picks it up by that name.",
    "use_logits_to_keep": "TRL 1.x computes only the needed log-probs through its fused LM head.",
    "use_num_logits_to_keep": "TRL 1.x computes only the needed log-probs through its fused LM head.",
    "force_use_ref_model": "pass ref_model= to build_dpo_trainer.",
    "ref_model_init_kwargs": "pass ref_model= (a loaded model) to build_dpo_trainer.",
}

# Keys that are not TRL config fields but that presets understand.
_LORA_KEYS = {
    "lora_r": "r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "lora_target_modules": "target_modules",
}
EXTRA_KEYS = {"peft_config", "quantization_config", "load_in_4bit", "dtype", "group_by_length", *_LORA_KEYS}


@dataclass
class Build:
    """What a preset builds: TRL's config and the objects that go beside it."""

    method: str
    preset: str  # the resolved name, e.g. "cpu+lora"
    args: Any  # trl.DPOConfig, ORPOConfig or KTOConfig
    peft_config: Any = None  # peft.LoraConfig or None
    quantization_config: Any = None  # transformers.BitsAndBytesConfig or None
    dtype: Any = None  # torch dtype to load the model in
    group_by_length: bool = False  # smol_align's builders reorder the pairs into steps of similar length


RECIPE_KEYS = ("model", "dataset", "preset")  # recipe keys that are not config fields


def names() -> list[str]:
    """The preset names, ``auto`` first."""
    return ["auto", *HARDWARE, *MODES]


def describe() -> list[tuple[str, str]]:
    """``(name, description)`` for every preset."""
    rows = [("auto", f"Picks the hardware preset for this machine (here: {auto_hardware()}).")]
    rows += [(p.name, p.description) for p in (*HARDWARE.values(), *MODES.values())]
    return rows


def auto_hardware() -> str:
    """``gpu-bf16`` on a GPU with bf16 in hardware, ``colab-t4`` on another GPU (a T4's bf16 is emulated), else ``cpu``."""
    import torch

    from .models import gpu_has_native_bf16

    if torch.cuda.is_available():
        return "gpu-bf16" if gpu_has_native_bf16() else "colab-t4"
    return "cpu"


def resolve(preset: str) -> tuple[Preset, Preset]:
    """``"colab-t4+lora"`` -> (hardware preset, mode preset); ``auto`` and omissions filled in."""
    hardware, mode = None, None
    for part in (preset or "auto").lower().replace(" ", "").split("+"):
        if part == "auto":
            continue
        if part in HARDWARE and hardware is None:
            hardware = HARDWARE[part]
        elif part in MODES and mode is None:
            mode = MODES[part]
        else:
            close = difflib.get_close_matches(part, names(), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"Unknown preset {part!r} in {preset!r}.{hint} Presets: {', '.join(names())}.")
    return hardware or HARDWARE[auto_hardware()], mode or MODES["full"]


def preset_name(preset: str) -> str:
    """The preset as resolved: ``"auto"`` -> ``"cpu+full"`` on a CPU."""
    hardware, mode = resolve(preset)
    return f"{hardware.name}+{mode.name}"


def config_class(method: str):
    """TRL's config class for ``method`` ('dpo', 'orpo', 'kto' or 'sft')."""
    if method not in METHODS:
        raise ConfigError(f"Unknown method {method!r}: expected one of {', '.join(METHODS)}.")
    if method == "orpo":
        from ._compat import import_orpo

        return import_orpo()[0]
    import trl  # DPOConfig, SFTConfig; KTOConfig is stable in TRL 1.16 (trl.experimental.kto: an alias)

    return getattr(trl, f"{method.upper()}Config")


# Names a learner reaches for that no config has, each with the one it means (difflib finds none of these).
HINTS = {
    "batch_size": "per_device_train_batch_size",
    "train_batch_size": "per_device_train_batch_size",
    "eval_batch_size": "per_device_eval_batch_size",
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "num_epochs": "num_train_epochs",
    "steps": "max_steps",
    "num_steps": "max_steps",
    "lambda": "beta",
    "orpo_alpha": "beta",
}


def config_names(method: str) -> set[str]:
    """Every keyword the config of ``method`` takes: its fields, :data:`EXTRA_KEYS`, and the course-era names
    that :func:`check_overrides` maps or explains."""
    fields = {f.name for f in dataclasses.fields(config_class(method))}
    return fields | EXTRA_KEYS | set(RENAMED) | set(RETIRED) | {"rpo_alpha"}


def unknown_option(key: str, known: Iterable[str], where: str) -> ConfigError:
    """The error for a keyword nothing takes: it names the closest known ones (difflib, as the CLI does)."""
    close = [HINTS[key]] if key in HINTS else difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"Unknown option {key!r} for {where}.{hint}")


def check_settings(method: str, values: Mapping[str, Any]) -> None:
    """Refuse values that cannot train (``ConfigError`` with the reason), before anything loads: a ``beta``
    <= 0, a learning rate <= 0, a batch or accumulation of less than 1, ``max_steps=0``, NaN or infinity
    anywhere. Course-era names are read as the names they map to; keys that are not config fields are not
    looked at."""
    values = {RENAMED.get(k, k): v for k, v in values.items()}
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value}: a setting must be a finite number.")
    beta = values.get("beta")
    if beta is not None and (isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0):
        meaning = {
            "dpo": "DPO's beta scales the implicit reward beta * log(pi / pi_ref): a negative beta trains "
            "the model toward the rejected answers, and 0 trains nothing",
            "orpo": "ORPO's beta is the paper's lambda, the weight of the odds-ratio term next to the SFT "
            "loss: a negative one pushes toward the rejected answers, and 0 leaves plain SFT on the chosen",
            "kto": "KTO's beta scales the implicit reward beta * log(pi / pi_ref): a negative beta trains "
            "the model toward the undesirable answers, and 0 trains nothing",
        }[method]
        raise ConfigError(
            f"beta={beta!r}: beta must be positive. {meaning}. Leave it out for the default 0.1, "
            "or pass a value such as 0.05-0.5."
        )
    rate = values.get("learning_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
        raise ConfigError(
            f"learning_rate={rate!r}: the learning rate must be positive (a rate of 0 trains nothing, "
            "a negative one climbs the loss). Leave it out for the preset's, or pass e.g. 5e-6."
        )
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        size = values.get(key)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(
                f"{key}={size!r}: it must be a whole number of at least 1 (the pairs of one step are "
                "per_device_train_batch_size x gradient_accumulation_steps x devices)."
            )
    if values.get("max_steps") == 0:
        raise ConfigError(
            "max_steps=0: transformers reads 0 as a count and still trains a step. For 'not set' (train "
            "num_train_epochs full epochs) pass max_steps=-1, TRL's default, or leave it out; else pass "
            "the number of steps."
        )
    epochs, steps = values.get("num_train_epochs"), values.get("max_steps", -1)
    if epochs is not None and isinstance(steps, int) and steps < 0 and not epochs > 0:
        raise ConfigError(
            f"num_train_epochs={epochs!r} with max_steps unset trains nothing: pass a positive number of "
            "epochs, or max_steps."
        )


def check_overrides(method: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Map course-era names to today's, refuse retired ones, reject unknown keys with a suggestion and refuse
    values that cannot train (:func:`check_settings`)."""
    valid = {f.name for f in dataclasses.fields(config_class(method))} | EXTRA_KEYS
    check_settings(method, overrides)
    checked = {}
    for key, value in overrides.items():
        if key in RENAMED:
            new = RENAMED[key]
            if key != "activation_checkpointing":
                warnings.warn(
                    f"`{key}` is an older TRL/transformers name; use `{new}`. Mapped for you.",
                    FutureWarning,
                    stacklevel=3,
                )
            key = new
        elif key in RETIRED:
            raise ConfigError(f"`{key}` no longer exists in TRL 1.x: {RETIRED[key]}")
        elif key == "rpo_alpha" and method == "dpo":
            warnings.warn(
                "`rpo_alpha` is gone in TRL 1.x; mapped to loss_type=['sigmoid', 'sft'] with "
                f"loss_weights=[1.0, {value}] (the same RPO objective).",
                FutureWarning,
                stacklevel=3,
            )
            checked.update(loss_type=["sigmoid", "sft"], loss_weights=[1.0, float(value)])
            continue
        elif key not in valid:
            raise unknown_option(key, valid, f"{method.upper()} ({config_class(method).__name__})")
        if key == "fp16" and value and method == "dpo":
            warnings.warn(
                "fp16 DPO often underflows the log-ratios and the loss collapses to 0; prefer bf16 or fp32.",
                UserWarning,
                stacklevel=3,
            )
        checked[key] = value
    if (
        method == "dpo"
        and checked.get("label_smoothing")
        and checked.get("loss_type", "sigmoid") in ("sigmoid", ["sigmoid"])
    ):
        raise ConfigError(
            "`label_smoothing` with the sigmoid loss was conservative DPO (cDPO) before TRL 1.0; TRL 1.x ignores it "
            "there and would train plain DPO. Use loss_type='soft' (a per-pair probability; constant 1 - eps is cDPO) "
            "or loss_type='robust' (Chowdhury et al.), which use it."
        )
    return checked


def build(method: str, preset: str = "auto", output_dir: str | None = None, **overrides) -> Build:
    """Build TRL's config (plus LoRA and 4-bit configs) for ``method`` on ``preset``, overrides winning."""
    from ._compat import checkpointing_kwargs
    from .models import cpu_has_native_bf16

    cls = config_class(method)
    overrides = check_overrides(method, overrides)
    hardware, mode = resolve(preset)
    values: dict[str, Any] = {**_COMMON, **hardware.config, **mode.config}
    if method == "orpo":
        values.update(ORPO_DEFAULTS)
        if mode.lora is not None:
            values["learning_rate"] = mode.config["learning_rate"]
    if method == "sft":
        values.update(SFT_DEFAULTS, learning_rate=SFT_RATES[mode.name])
    if (
        method == "kto"
    ):  # two rows per pair: the same sequences per step as a DPO batch, and a bigger KL batch
        values.update(KTO_DEFAULTS, per_device_train_batch_size=2 * values["per_device_train_batch_size"])
    extras = {k: overrides.pop(k) for k in list(overrides) if k in EXTRA_KEYS}
    values.update(overrides)
    if (
        method == "kto"
        and values.get("loss_type", "kto") == "kto"
        and values["per_device_train_batch_size"] < 2
    ):
        raise ConfigError(
            f"per_device_train_batch_size={values['per_device_train_batch_size']}: KTO needs at least 2 rows per "
            "device batch (its KL estimate pairs each prompt with another row's completion)."
        )
    check_settings(method, values)  # the preset's values with yours: e.g. KTO's doubled batch
    if values.get("bf16") == "native":
        values["bf16"] = cpu_has_native_bf16()
    if values.get("fp16"):
        values["bf16"] = False
    values.update(checkpointing_kwargs(values.pop("gradient_checkpointing", None)))
    values["output_dir"] = output_dir or f"{method}-output"
    if values.get("bf16") and not values.get("use_cpu") and auto_hardware() != "gpu-bf16":
        raise ConfigError(
            f"Preset {hardware.name!r} trains in bf16 on a GPU, and this machine has no GPU with bf16. "
            f"Use preset='auto' (here: {auto_hardware()!r}) or 'cpu', or pass bf16=False."
        )
    args = cls(**values)
    _check_trackers(args.report_to)

    peft_config = extras.get("peft_config", _lora_config(mode.lora, extras))
    load_in_4bit = extras.get("load_in_4bit", mode.load_in_4bit)
    quantization_config = extras.get("quantization_config")
    if quantization_config is None and load_in_4bit:
        quantization_config = _bnb_4bit_config(bf16=bool(values.get("bf16")))
    if quantization_config is not None:
        _require_bitsandbytes(hardware.name, mode.name)
    if quantization_config is not None and peft_config is None:
        raise ConfigError(
            "A 4-bit base cannot be trained directly: use the 'qlora-4bit' preset or pass peft_config."
        )
    dtype = weights_dtype(
        bool(values.get("bf16")), adapters=peft_config is not None, explicit=extras.get("dtype")
    )
    if peft_config is None:
        warn_if_updates_round_away(dtype, args.learning_rate)
    group = extras.get("group_by_length", hardware.group_by_length)
    return Build(method, f"{hardware.name}+{mode.name}", args, peft_config, quantization_config, dtype, group)


def _check_trackers(report_to: list[str]) -> None:
    """An unknown or uninstalled tracker in ``report_to`` stops here, before the model loads, in transformers' words."""
    if not report_to:
        return
    from transformers.integrations import get_reporting_integration_callbacks

    try:
        for callback in get_reporting_integration_callbacks(report_to):
            callback()  # each raises if its package is missing
    except (ValueError, RuntimeError, ImportError) as err:
        raise ConfigError(f"report_to={report_to}: {err}") from None


def weights_dtype(bf16: bool, adapters: bool, explicit=None):
    """The dtype the model's weights are loaded in; ``bf16`` only switches on bf16 autocast.

    A full fine-tune keeps fp32 master weights: TRL's ``bf16=True`` autocasts the math on an fp32
    model, and that is what learns. Pure-bf16 weights do not learn at DPO rates: an AdamW step of
    5e-6 is below half a bf16 ulp of a typical weight (|w| ~ 0.02 has an ulp of 1.2e-4) and rounds
    away (the demo: held-out reward accuracy 0.78 with bf16 weights, 1.00 with fp32 ones). A LoRA
    base is frozen, so it can be bf16 (half the memory); its adapters stay fp32 (PEFT's default,
    and trainers.py undoes TRL's cast of 4-bit adapters to bf16). ``explicit`` (``dtype=``) wins.
    """
    import torch

    if explicit is not None:
        return explicit
    return torch.bfloat16 if bf16 and adapters else torch.float32


# An AdamW step moves a weight by about lr; bf16 keeps 8 significant bits, so a step below
# |w| / 2**9 (half an ulp) rounds away. Typical weights of small LMs are ~0.02-0.05 in magnitude.
_TYPICAL_WEIGHT = 0.02


def warn_if_updates_round_away(dtype, learning_rate: float) -> bool:
    """Warn (and return True) when training bf16 weights at a rate whose steps round away."""
    import torch

    if dtype not in (torch.bfloat16, "bfloat16", "bf16") or learning_rate * 2**9 >= _TYPICAL_WEIGHT:
        return False
    warnings.warn(
        f"Training bf16 weights with learning_rate={learning_rate:g}: an AdamW step of that size is below half a "
        f"bf16 ulp of every weight larger than {learning_rate * 2**9:.4f} in magnitude (most of them), so most "
        "updates round away and the model barely learns. Keep fp32 weights (the default; bf16=True then only "
        "autocasts the math), or use LoRA, or raise the learning rate.",
        UserWarning,
        stacklevel=3,
    )
    return True


def _lora_config(lora: dict | None, extras: dict):
    if lora is None and not any(k in extras for k in _LORA_KEYS):
        return None
    from peft import LoraConfig

    kwargs = dict(lora or _LORA)
    kwargs.update({_LORA_KEYS[k]: extras[k] for k in _LORA_KEYS if k in extras})
    return LoraConfig(**kwargs)


def _require_bitsandbytes(hardware: str, mode: str) -> None:
    """A 4-bit base needs bitsandbytes, which only the ``qlora`` extra installs: say so before the model loads."""
    from importlib.util import find_spec

    if find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"A 4-bit base (preset '{hardware}+{mode}') needs bitsandbytes, which is not installed. Install it "
            "with: pip install 'smol-align[qlora]'. Or use the 'lora' preset: the same adapters on a full base."
        )


def _bnb_4bit_config(bf16: bool):
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",  # the QLoRA paper's NormalFloat4
        bnb_4bit_use_double_quant=True,  # quantize the quantization constants too (~0.4 bit/param saved)
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )

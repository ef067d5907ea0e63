"""Presets build TRL's own configs; overrides win; unknown and course-era keys behave as documented."""

import dataclasses
import warnings
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from smol_align import presets
from smol_align.errors import ConfigError

CPU_BUILDABLE = ["auto", "cpu", "colab-t4", "full", "lora", "qlora-4bit", "colab-t4+lora", "cpu+qlora-4bit"]


def test_names_lists_the_issue_presets():
    assert {"auto", "cpu", "colab-t4", "gpu-bf16", "lora", "qlora-4bit", "full"} <= set(presets.names())
    assert presets.names()[0] == "auto"
    assert all(text for _, text in presets.describe())


@pytest.mark.parametrize("method", ["dpo", "orpo"])
@pytest.mark.parametrize("name", CPU_BUILDABLE)
def test_every_preset_builds_a_real_trl_config(name, method, tmp_path):
    from trl import DPOConfig

    from smol_align._compat import import_orpo

    built = presets.build(method, name, output_dir=str(tmp_path))
    expected = DPOConfig if method == "dpo" else import_orpo()[0]
    assert type(built.args) is expected
    assert built.args.output_dir == str(tmp_path)
    assert built.args.report_to in ([], ["none"], "none")
    # never fp16 by default: DPO's log-ratios underflow in it
    assert built.args.fp16 is False
    if "lora" in name:
        from peft import LoraConfig

        assert isinstance(built.peft_config, LoraConfig)
        assert built.args.learning_rate > 1e-5
    else:
        assert built.peft_config is None
    if "qlora" in name:
        assert built.quantization_config.load_in_4bit
        assert built.quantization_config.bnb_4bit_quant_type == "nf4"
    else:
        assert built.quantization_config is None


def test_cpu_preset_values():
    built = presets.build("dpo", "cpu")
    assert built.args.use_cpu is True
    assert built.args.gradient_checkpointing is False
    assert built.args.per_device_train_batch_size == 8
    from smol_align.models import cpu_has_native_bf16

    assert built.args.bf16 is cpu_has_native_bf16()
    assert built.dtype == torch.float32  # bf16 (where native) only autocasts: fp32 master weights


def test_gpu_bf16_preset_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        built = presets.build("dpo", "gpu-bf16")
        assert built.args.bf16 is True
        return
    with pytest.raises(ConfigError, match="no GPU with bf16.*preset='auto'"):
        presets.build("dpo", "gpu-bf16")


def test_gpu_bf16_preset_values_are_valid_config_fields():
    """Even where it cannot build (no GPU), every value of every preset is a field of TRL's configs."""
    from trl import DPOConfig

    from smol_align._compat import import_orpo

    fields = {f.name for f in dataclasses.fields(DPOConfig)} & {
        f.name for f in dataclasses.fields(import_orpo()[0])
    }
    for preset in (*presets.HARDWARE.values(), *presets.MODES.values()):
        assert set(preset.config) <= fields, preset.name


def test_auto_is_cpu_here():
    import torch

    if not torch.cuda.is_available():
        assert presets.auto_hardware() == "cpu"
        assert presets.build("dpo", "auto").preset == "cpu+full"
        assert presets.build("dpo", "lora").preset == "cpu+lora"


@pytest.mark.parametrize(("major", "preset"), [(7, "colab-t4"), (8, "gpu-bf16"), (9, "gpu-bf16")])
def test_auto_takes_a_gpu_with_emulated_bf16_for_a_t4(major, preset):
    """torch.cuda.is_bf16_supported() says yes on a T4 (compute capability 7.5): it can make a bf16 tensor."""
    with (
        mock.patch("torch.cuda.is_available", lambda: True),
        mock.patch("torch.cuda.current_device", lambda: 0),
        mock.patch("torch.cuda.get_device_properties", lambda d: SimpleNamespace(major=major, minor=5)),
        mock.patch("torch.cuda._check_bf16_tensor_supported", lambda d: True, create=True),
    ):
        assert torch.cuda.is_bf16_supported()  # torch's default check, emulation included
        assert presets.auto_hardware() == preset


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_overrides_win(method):
    built = presets.build(
        method, "cpu", learning_rate=3e-4, per_device_train_batch_size=3, max_steps=7, beta=0.25
    )
    assert built.args.learning_rate == 3e-4
    assert built.args.per_device_train_batch_size == 3
    assert built.args.max_steps == 7
    assert built.args.beta == 0.25


def test_lora_overrides():
    built = presets.build("dpo", "lora", lora_r=4, lora_alpha=8)
    assert built.peft_config.r == 4 and built.peft_config.lora_alpha == 8
    # LoRA keys on a full preset switch LoRA on with the lora preset's other values
    built = presets.build("dpo", "cpu", lora_r=2)
    assert built.peft_config.r == 2 and built.peft_config.target_modules == "all-linear"


def test_unknown_keyword_suggests_the_closest():
    with pytest.raises(ConfigError, match="Unknown option 'learning_rte'.*'learning_rate'"):
        presets.build("dpo", "cpu", learning_rte=1e-5)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ConfigError, match="Unknown preset 'colab'.*'colab-t4'"):
        presets.build("dpo", "colab")


def test_dpo_only_key_refused_for_orpo():
    with pytest.raises(ConfigError, match="Unknown option 'loss_type' for ORPO"):
        presets.build("orpo", "cpu", loss_type="ipo")


@pytest.mark.parametrize(
    "old,new,value",
    [
        ("evaluation_strategy", "eval_strategy", "steps"),
        ("per_gpu_train_batch_size", "per_device_train_batch_size", 2),
        ("warmup_ratio", "warmup_steps", 0.1),  # transformers 5: a warmup_steps below 1 is the ratio
    ],
)
def test_course_era_names_are_mapped_with_a_warning(old, new, value):
    with pytest.warns(FutureWarning, match=f"`{old}` is an older TRL/transformers name; use `{new}`"):
        built = presets.build("dpo", "cpu", **{old: value}, eval_steps=5)
    assert getattr(built.args, new) == value


def test_rpo_alpha_maps_to_the_sft_loss_mix():
    with pytest.warns(FutureWarning, match="rpo_alpha"):
        built = presets.build("dpo", "cpu", rpo_alpha=0.5)
    assert built.args.loss_type == ["sigmoid", "sft"]
    assert built.args.loss_weights == [1.0, 0.5]


@pytest.mark.parametrize(
    "key", ["max_prompt_length", "generate_during_eval", "reference_free", "padding_value"]
)
def test_retired_names_are_refused_with_what_to_use(key):
    with pytest.raises(ConfigError, match=f"`{key}` no longer exists in TRL 1.x: .+"):
        presets.build("dpo", "cpu", **{key: 1})


def test_fp16_dpo_warns_and_switches_bf16_off():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            built = presets.build("dpo", "colab-t4", fp16=True)
        except ValueError:  # no GPU: TrainingArguments refuses fp16 on CPU, after our warning
            built = None
    assert any("fp16 DPO" in str(w.message) for w in caught)
    if built is not None:
        assert built.args.bf16 is False


def test_qlora_without_lora_is_refused():
    with pytest.raises(ConfigError, match="4-bit base cannot be trained directly"):
        presets.build("dpo", "cpu", load_in_4bit=True, peft_config=None)


def test_qlora_without_bitsandbytes_names_the_extra(monkeypatch):
    """bitsandbytes comes with the qlora extra only: without it, the 4-bit preset stops before the model loads
    and says how to install it; the other presets do not need it. (The wheel installed without extras meets
    this for real in scripts/check_package.sh.)"""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else find_spec(n, *a)
    )
    with pytest.raises(ConfigError, match=r"needs bitsandbytes.*pip install 'smol-align\[qlora\]'"):
        presets.build("dpo", "cpu+qlora-4bit")
    assert presets.build("dpo", "cpu+lora").quantization_config is None


def test_recipes_load_and_build():
    """Every shipped recipe is valid YAML whose keys train_dpo/train_orpo accept."""
    from importlib import resources

    import yaml

    recipes = sorted(
        (p for p in (resources.files("smol_align") / "recipes").iterdir() if p.name.endswith(".yaml")),
        key=lambda p: p.name,
    )
    assert recipes, "no recipes shipped"
    for path in recipes:
        if "pipeline" in path.name:  # stages, each with its own options: tests/test_pipeline.py reads it
            continue
        recipe = yaml.safe_load(path.read_text())
        method = next((m for m in ("orpo", "kto", "sft") if m in path.name), "dpo")
        options = {k: v for k, v in recipe.items() if k not in ("model", "dataset", "preset")}
        options = {
            k: v.get("full", v) if isinstance(v, dict) else v for k, v in options.items()
        }  # per-mode rates
        built = presets.build(method, recipe.get("preset", "auto"), **options)
        for key, value in options.items():  # every value reaches TRL's config as written
            assert getattr(built.args, key) in (value, [value]), (path.name, key)


def test_course_cdpo_label_smoothing_with_sigmoid_is_refused():
    with pytest.raises(ConfigError, match="TRL 1.x ignores it.*loss_type='soft'"):
        presets.build("dpo", "cpu", label_smoothing=0.1)
    assert presets.build("dpo", "cpu", label_smoothing=0.1, loss_type="robust").args.label_smoothing == 0.1


@pytest.mark.parametrize(
    "method, key, value, says",
    [
        ("dpo", "beta", -0.5, "toward the rejected answers"),
        ("dpo", "beta", 0.0, "beta must be positive"),
        ("orpo", "beta", -0.1, "the paper's lambda"),
        ("orpo", "beta", 0, "beta must be positive"),
        ("kto", "beta", -1.0, "toward the undesirable answers"),
        ("kto", "beta", 0.0, "beta must be positive"),
        ("dpo", "learning_rate", 0.0, "learning rate must be positive"),
        ("orpo", "learning_rate", -1e-5, "learning rate must be positive"),
        ("dpo", "per_device_train_batch_size", 0, "at least 1"),
        ("kto", "per_device_train_batch_size", -2, "at least 1"),
        ("dpo", "gradient_accumulation_steps", 0, "at least 1"),
        ("dpo", "per_gpu_train_batch_size", 0, "per_device_train_batch_size=0"),  # course-era name, mapped
        ("dpo", "max_steps", 0, "pass max_steps=-1"),
        ("dpo", "num_train_epochs", 0, "trains nothing"),
        ("dpo", "learning_rate", float("nan"), "finite"),
        ("orpo", "beta", float("inf"), "finite"),
        ("dpo", "max_grad_norm", float("nan"), "finite"),
    ],
)
def test_settings_that_cannot_learn_are_refused_with_the_reason(method, key, value, says):
    with pytest.raises(ConfigError, match=says), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # per_gpu_train_batch_size: mapped with a warning
        presets.build(method, "cpu", **{key: value})


def test_max_steps_minus_one_is_trls_not_set():
    assert presets.build("dpo", "cpu", max_steps=-1).args.max_steps == -1


@pytest.mark.parametrize(
    "key, closest",
    [
        ("batch_size", "per_device_train_batch_size"),
        ("lr", "learning_rate"),
        ("epochs", "num_train_epochs"),
        ("learnig_rate", "learning_rate"),
    ],
)
def test_names_a_learner_guesses_point_at_the_field(key, closest):
    with pytest.raises(ConfigError, match=f"Unknown option '{key}'.*Did you mean '{closest}'"):
        presets.build("dpo", "cpu", **{key: 1})

"""smol_align.estimate: each part by hand on the tiny Llama, fit() under a small budget, the CLI, the runner's line.
(The estimate against measured peaks of the embedded SmolLM2: scripts/bench_memory.py, docs/presets.md "Memory".)"""

from pathlib import Path

import pytest

from smol_align import cli
from smol_align.estimate import (
    ACTIVATION_BYTES,
    CHECKPOINTED_SHARE,
    GB,
    ORPO_LOGIT_BYTES,
    RUNTIME_CPU,
    estimate,
    fit,
)
from smol_align.testing import tiny_preference_rows


def _shapes(model):
    import torch

    head = model.get_output_embeddings()
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    text = model.config
    return sum(p.numel() for p in model.parameters()), linear, text


def test_parts_by_hand_full_lora_orpo_checkpointing(tiny_model):
    total, linear, c = _shapes(tiny_model)
    cpu = ACTIVATION_BYTES["cpu"]
    per_layer = 2 * (cpu["hidden"] * c.hidden_size + cpu["intermediate"] * c.intermediate_size)
    full = estimate(
        tiny_model, "dpo", "cpu", max_length=64, batch_size=4, bf16=False
    ).parts  # fp32 throughout
    tokens = 2 * 4 * 64
    assert full["runtime"] == RUNTIME_CPU and full["weights"] == 4 * total == full["reference"]
    assert full["gradients"] == 4 * total and full["optimizer"] == 8 * total and full["autocast"] == 0
    assert full["activations"] == tokens * c.num_hidden_layers * per_layer
    assert (
        full["lm head"] == 2 * tokens * c.vocab_size * 4
    )  # one fp32 tile of [tokens, vocab] and its softmax

    lora = estimate(tiny_model, "dpo", "cpu+lora", max_length=64, batch_size=4, bf16=False, lora_r=4).parts
    adapters = sum(4 * (m.in_features + m.out_features) for m in linear)
    assert lora["gradients"] == 4 * adapters and lora["optimizer"] == 8 * adapters and lora["reference"] == 0
    assert lora["weights"] == 4 * total + 4 * adapters  # the fp32 base, the fp32 adapters

    orpo = estimate(tiny_model, "orpo", "cpu", max_length=64, batch_size=4, bf16=False).parts
    assert orpo["reference"] == 0 and orpo["weights"] == full["weights"]  # ORPO has no reference model
    assert orpo["lm head"] == tokens * c.vocab_size * ORPO_LOGIT_BYTES["cpu"]  # and builds the whole logits

    ckpt = estimate(
        tiny_model, "dpo", "cpu", max_length=64, batch_size=4, bf16=False, gradient_checkpointing=True
    )
    assert ckpt.parts["activations"] == pytest.approx(
        tokens * c.num_hidden_layers * per_layer * CHECKPOINTED_SHARE
    )
    assert (
        ckpt.setting["checkpointing"]
        and ckpt.total < estimate(tiny_model, "dpo", "cpu", max_length=64, batch_size=4, bf16=False).total
    )
    short = estimate(tiny_model, "dpo", "cpu", max_length=64, batch_size=4, bf16=False, longest=16)
    assert (
        short.parts["activations"] == full["activations"] / 4
    )  # the data's pairs are shorter than max_length
    # the peak holds the activations or the gradients, not both
    e = estimate(tiny_model, "dpo", "cpu", max_length=64, batch_size=4, bf16=False)
    assert e.total == sum(e.parts.values()) - min(
        e.parts["gradients"], e.parts["activations"] + e.parts["lm head"]
    )


def test_a_gpu_preset_counts_live_tensors_and_checkpointing_keeps_layer_inputs_plus_one_layer(tiny_model):
    """A GPU preset (colab-t4: fp32, checkpointing on; estimated for its GPU on any machine) counts no runtime, uses the
    Llama-block count, and checkpointing keeps each layer's fp32 input plus one layer's activations (what
    torch.cuda.max_memory_allocated measured on an H100, docs/presets.md "Memory")."""
    _, _, c = _shapes(tiny_model)
    gpu = ACTIVATION_BYTES["cuda"]
    per_layer = 2 * (
        gpu["hidden"] * c.hidden_size + gpu["intermediate"] * c.intermediate_size
    )  # fp32: twice bf16's
    tokens = 2 * 4 * 64
    full = estimate(
        tiny_model, "dpo", "colab-t4", max_length=64, batch_size=4, gradient_checkpointing=False
    ).parts
    assert full["runtime"] == 0 and full["activations"] == tokens * c.num_hidden_layers * per_layer
    ckpt = estimate(
        tiny_model, "dpo", "colab-t4", max_length=64, batch_size=4
    ).parts  # the preset checkpoints
    assert ckpt["activations"] == tokens * (c.num_hidden_layers * c.hidden_size * 4 + per_layer)
    orpo = estimate(tiny_model, "orpo", "colab-t4", max_length=64, batch_size=4).parts
    assert orpo["lm head"] == tokens * c.vocab_size * ORPO_LOGIT_BYTES["cuda"]


def test_bf16_halves_activations_and_caches_matmul_weights(tiny_model):
    fp32 = estimate(tiny_model, "dpo", "cpu", max_length=64, batch_size=2, bf16=False).parts
    bf16 = estimate(tiny_model, "dpo", "cpu", max_length=64, batch_size=2, bf16=True).parts
    _, linear, _ = _shapes(tiny_model)
    assert bf16["activations"] == fp32["activations"] / 2
    assert (
        bf16["autocast"] == 2 * sum(m.weight.numel() for m in linear) and bf16["weights"] == fp32["weights"]
    )


def test_fit_turns_checkpointing_on_then_halves_the_batch_only_when_left_to_auto(tiny_model):
    overrides = {"max_length": 64, "per_device_train_batch_size": 8, "bf16": False}
    assert (
        fit(tiny_model, "dpo", "auto", dict(overrides), budget=100 * GB).setting["batch"] == 8
    )  # fits: unchanged
    chosen = {"max_length": 64, "bf16": False, "gradient_accumulation_steps": 2}
    small = estimate(
        tiny_model, "dpo", "auto", max_length=64, batch_size=2, bf16=False, gradient_checkpointing=True
    )
    plan = fit(tiny_model, "dpo", "auto", chosen, budget=int(small.total / 0.9) + 1)
    assert chosen["gradient_checkpointing"] is True and plan.setting["checkpointing"]
    assert (
        chosen["per_device_train_batch_size"] == 2 and chosen["gradient_accumulation_steps"] == 8
    )  # global batch 16
    assert plan.total <= small.total
    tiny_budget = {"max_length": 64, "bf16": False}
    fit(tiny_model, "dpo", "auto", tiny_budget, budget=1)
    assert tiny_budget["per_device_train_batch_size"] == 1  # the smallest there is, even if it does not fit
    for preset, given in (
        ("cpu", {}),
        ("auto", {"per_device_train_batch_size": 8}),
    ):  # the user chose: left alone
        options = {"max_length": 64, "bf16": False, **given}
        fit(tiny_model, "dpo", preset, options, budget=1)
        assert "gradient_checkpointing" not in options, preset


def test_cli_prints_the_parts(tmp_path, capsys):
    from smol_align.testing import tiny_model_and_tokenizer

    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(tmp_path)
    assert (
        cli.main(
            [
                "estimate",
                "--model",
                str(tmp_path),
                "--preset",
                "cpu+lora",
                "--max-length",
                "128",
                "--batch-size",
                "2",
                "--gradient-checkpointing",
                "true",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("Estimated peak memory: ") and "checkpointing True" in out and "batch 2" in out
    for part in ("runtime", "weights", "optimizer", "activations", "lm head"):
        assert f"  {part}" in out, part


def test_the_runner_prints_the_estimate_and_makes_auto_fit(tiny_model, tiny_tokenizer, monkeypatch, capsys):
    import importlib

    import smol_align

    module = importlib.import_module("smol_align.estimate")  # smol_align.estimate is the function
    monkeypatch.setattr(module, "free_memory", lambda: 1)  # nothing fits: the smallest batch, checkpointed
    result = smol_align.train_dpo(
        tiny_model,
        tiny_preference_rows(12),
        "auto",
        tokenizer=tiny_tokenizer,
        bf16=False,
        max_steps=1,
        save=False,
        evaluate=False,
    )
    out = capsys.readouterr().out
    assert "Estimated peak memory" in out and "To fit, preset 'auto' trains with checkpointing" in out
    args = result.trainer.args
    assert args.per_device_train_batch_size == 1 and args.gradient_accumulation_steps == 8
    assert getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing


@pytest.mark.slow
def test_embedded_smollm2_estimate_is_what_the_docs_show():
    """The memory table of docs/presets.md comes from scripts/bench_memory.py; this pins the estimates it printed,
    each a row of that table."""
    table = (Path(__file__).parents[1] / "docs" / "presets.md").read_text()
    for preset, mode, length, expected in (
        ("cpu", "full", 512, 8.45),
        ("cpu+lora", "LoRA", 256, 4.23),
        ("cpu+qlora-4bit", "QLoRA (4-bit)", 512, 7.47),
    ):
        got = estimate(None, "dpo", preset, max_length=length, batch_size=4, bf16=True).total_gb
        assert got == pytest.approx(expected, abs=0.01), preset
        assert f"| DPO | {mode} | {length} | no | {expected:.2f} |" in table, preset

"""The learning matrix: every precision path x every mode x both methods *learns* on held-out pairs.

A tiny Llama (hidden 64: bitsandbytes' CPU 4-bit kernel needs in-features >= its block size of
64) is saved once and loaded by path, so each cell goes through the preset's own loading: fp32
master weights for a full fine-tune, a bf16 base under fp32 adapters for LoRA with bf16, a 4-bit
NF4 base for QLoRA. bf16 is forced on whatever CPU runs the tests (emulated bf16 is fine at this
size), so an AVX2 machine covers the bf16 paths too. Each cell trains 20 steps at the preset's own
learning rate and asserts that the held-out DPO reward margin grows clearly; the held-out pairs
are questions the training pairs never ask.

The bar is 0.01: every fp32-master or adapter path reaches 0.02-0.07 here, while pure-bf16
weights at the full fine-tune rate reach 0.002 (their updates round away), which the last tests
pin down.
"""

import warnings

import pytest
import torch

from smol_align import build_dpo_trainer, build_orpo_trainer
from smol_align.evaluate import evaluate
from smol_align.testing import tiny_model, tiny_tokenizer

STEPS = 20
MARGIN_BAR = 0.01
TRAIN_IDS = range(0, 64)
HELDOUT_IDS = range(200, 232)


def _rows(ids):
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
            "chosen": [{"role": "assistant", "content": f"Arr, it be {2 * i}, matey!"}],
            "rejected": [{"role": "assistant", "content": f"The answer is {2 * i}."}],
        }
        for i in ids
    ]


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama-64")
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer, hidden_size=64).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def pairs():
    from datasets import Dataset

    train, heldout = Dataset.from_list(_rows(TRAIN_IDS)), Dataset.from_list(_rows(HELDOUT_IDS))
    assert not {str(r["prompt"]) for r in train} & {str(r["prompt"]) for r in heldout}
    return train, heldout


def _train_and_measure(model, method, preset, pairs, tmp_path, **overrides):
    """(trainer, held-out figures after training, measured against the start model)."""
    train, heldout = pairs
    build = build_dpo_trainer if method == "dpo" else build_orpo_trainer
    trainer = build(
        model,
        train,
        preset,
        output_dir=str(tmp_path),
        max_steps=STEPS,
        per_device_train_batch_size=8,
        **overrides,
    )
    tokenizer = trainer.processing_class
    before = evaluate(trainer.model, heldout, tokenizer=tokenizer)
    trainer.train()
    after = evaluate(trainer.model, heldout, tokenizer=tokenizer, ref_logps=before["logps"])
    return trainer, after


def _trainable_dtypes(model):
    return {p.dtype for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["dpo", "orpo"])
@pytest.mark.parametrize("mode", ["full", "lora", "qlora-4bit"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_every_path_learns(saved_tiny, pairs, tmp_path, method, mode, bf16):
    preset = "cpu" if mode == "full" else f"cpu+{mode}"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*round away.*")  # never on a default path
        trainer, after = _train_and_measure(saved_tiny, method, preset, pairs, tmp_path, bf16=bf16)

    assert after["reward_margin"] > MARGIN_BAR, after
    assert after["reward_accuracy"] >= 0.9, after
    assert trainer.args.bf16 is bf16
    assert _trainable_dtypes(trainer.model) == {torch.float32}  # master weights / adapters in fp32
    if mode == "lora":  # the frozen base is bf16 exactly when bf16 is on
        base = trainer.model.get_base_model().model.layers[0].mlp.down_proj.base_layer.weight
        assert base.dtype == (torch.bfloat16 if bf16 else torch.float32)
    if mode == "qlora-4bit":
        assert getattr(trainer.model, "is_loaded_in_4bit", False)
        # after an evaluation, no 4-bit layer is in bitsandbytes' CPU-inference layout, which passes no
        # gradient (on AVX512-BF16 CPUs; smol_align._compat.keep_4bit_layers_trainable)
        states = [
            m.weight.quant_state for m in trainer.model.modules() if hasattr(m, "support_avx512bf16_for_cpu")
        ]
        assert states and not any(getattr(s, "packing_format_for_cpu", False) for s in states)


def test_pure_bf16_weights_at_dpo_rates_warn_and_barely_learn(saved_tiny, pairs, tmp_path):
    """The failure this matrix guards against: bf16 weights at lr 5e-6 round their updates away."""
    with pytest.warns(UserWarning, match="round away"):
        trainer, pure = _train_and_measure(
            saved_tiny, "dpo", "cpu", pairs, tmp_path / "pure", bf16=True, dtype=torch.bfloat16
        )
    assert _trainable_dtypes(trainer.model) == {torch.bfloat16}
    _, master = _train_and_measure(saved_tiny, "dpo", "cpu", pairs, tmp_path / "master", bf16=True)
    assert master["reward_margin"] > MARGIN_BAR
    assert pure["reward_margin"] < master["reward_margin"] / 4, (
        pure["reward_margin"],
        master["reward_margin"],
    )


def test_pure_bf16_weights_learn_at_a_rate_above_the_rounding(saved_tiny, pairs, tmp_path):
    """Pure bf16 stays on offer for those who ask; at a rate well above half an ulp it learns, silently."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*round away.*")
        trainer, after = _train_and_measure(
            saved_tiny, "dpo", "cpu", pairs, tmp_path, bf16=True, dtype=torch.bfloat16, learning_rate=2e-4
        )
    assert _trainable_dtypes(trainer.model) == {torch.bfloat16}
    assert after["reward_margin"] > MARGIN_BAR


def test_a_loaded_bf16_model_in_a_full_fine_tune_warns(pairs, tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer).to(torch.bfloat16)
    with pytest.warns(UserWarning, match="round away"):
        build_dpo_trainer(model, pairs[0], "cpu", tokenizer=tokenizer, output_dir=str(tmp_path), max_steps=1)

"""Builders return real TRL trainers; tiny DPO / ORPO / LoRA / 4-bit QLoRA runs train on CPU and learn.

"Learn" means the DPO reward margin on held-out pairs grows (from 0: the start model is the
reference) past MARGIN_BAR. The held-out pairs ask about other numbers than any training row.
"""

import pytest
import torch

import smol_align
from smol_align.errors import ConfigError
from smol_align.evaluate import evaluate
from smol_align.testing import tiny_model, tiny_preference_rows, tiny_tokenizer

FAST = {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1}
HELDOUT = tiny_preference_rows(208)[200:]  # "What is 200 plus 200?"...: no training row asks these
MARGIN_BAR = 0.01  # these runs reach 0.04-0.2 (2 steps at lr 1e-3); an untrained model stays at 0


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(before, model):
    return [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]


def _train_on_heldout(trainer):
    """Train; return the held-out figures of the trained model against the start model, and the
    weights just before training (after the start model's evaluation: on CPU, bitsandbytes repacks
    a 4-bit weight the first time it runs without gradients, same values in other bytes)."""
    assert not {str(r["prompt"]) for r in HELDOUT} & {str(r["prompt"]) for r in trainer.train_dataset}
    tokenizer = trainer.processing_class
    start = evaluate(trainer.model, HELDOUT, tokenizer=tokenizer)
    before = _snapshot(trainer.model)
    trainer.train()
    return evaluate(trainer.model, HELDOUT, tokenizer=tokenizer, ref_logps=start["logps"]), before


def _assert_learned(heldout):
    assert heldout["reward_margin"] > MARGIN_BAR, heldout
    assert heldout["reward_accuracy"] >= 0.75, heldout  # from 0 at the start (strict wins)


def test_build_dpo_trainer_returns_trl_trainer_not_started(tiny_model, tiny_tokenizer, tmp_path):
    from trl import DPOTrainer

    trainer = smol_align.build_dpo_trainer(
        tiny_model, tiny_preference_rows(8), "cpu", tokenizer=tiny_tokenizer, output_dir=str(tmp_path), **FAST
    )
    assert type(trainer) is DPOTrainer
    assert trainer.state.global_step == 0
    assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert trainer.args.learning_rate == 1e-3  # the override won
    assert len(trainer.train_dataset) == 8


def test_tiny_dpo_trains_and_changes_weights(tiny_model, tiny_tokenizer, tmp_path):
    trainer = smol_align.build_dpo_trainer(
        tiny_model, tiny_preference_rows(8), "cpu", tokenizer=tiny_tokenizer, output_dir=str(tmp_path), **FAST
    )
    ref_before = _snapshot(trainer.ref_model)
    heldout, before = _train_on_heldout(trainer)
    _assert_learned(heldout)
    assert trainer.state.global_step == 2
    assert _changed(before, trainer.model), "DPO did not change any weight"
    assert not _changed(ref_before, trainer.ref_model), "the reference model must stay frozen"
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 0
    assert logged[-1]["loss"] < 0.69  # and below it after one update
    assert "rewards/accuracies" in logged[-1]


def test_tiny_orpo_trains_and_changes_weights(tiny_model, tiny_tokenizer, tmp_path):
    from smol_align._compat import import_orpo

    trainer = smol_align.build_orpo_trainer(
        tiny_model, tiny_preference_rows(8), "cpu", tokenizer=tiny_tokenizer, output_dir=str(tmp_path), **FAST
    )
    assert type(trainer) is import_orpo()[1]
    heldout, before = _train_on_heldout(trainer)
    _assert_learned(heldout)
    assert _changed(before, trainer.model)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert any("log_odds_ratio" in k for k in logged[-1])


def test_lora_preset_trains_only_the_adapter(tiny_model, tiny_tokenizer, tmp_path):
    from peft import PeftModel

    trainer = smol_align.build_dpo_trainer(
        tiny_model,
        tiny_preference_rows(8),
        "lora",
        tokenizer=tiny_tokenizer,
        output_dir=str(tmp_path),
        **FAST,
    )
    assert isinstance(trainer.model, PeftModel)
    assert trainer.ref_model is None  # the reference is the base with the adapter disabled
    heldout, before = _train_on_heldout(trainer)
    _assert_learned(heldout)
    changed = _changed(before, trainer.model)
    assert changed and all("lora_" in n for n in changed), changed


def test_qlora_4bit_preset_trains_a_step_on_cpu(tmp_path):
    """A real NF4 base through bitsandbytes on CPU, LoRA on top, one optimizer step that learns."""
    pytest.importorskip("bitsandbytes")
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, hidden_size=64)  # NF4 quantizes in blocks of 64
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    trainer = smol_align.build_dpo_trainer(
        str(tmp_path / "tiny"),
        tiny_preference_rows(4),
        "cpu+qlora-4bit",
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-3,  # the preset's 1e-4 moves it ~0.004
    )
    base = trainer.model.get_base_model()
    assert getattr(base, "is_loaded_in_4bit", False)
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in base.modules())
    heldout, before = _train_on_heldout(trainer)
    _assert_learned(heldout)
    changed = _changed(before, trainer.model)
    assert changed and all("lora_" in n for n in changed)


def test_loaded_model_needs_its_tokenizer(tiny_model):
    with pytest.raises(ConfigError, match="needs its tokenizer"):
        smol_align.build_dpo_trainer(tiny_model, tiny_preference_rows(4), "cpu")


def test_course_era_tokenizer_keyword_is_accepted(tiny_model, tiny_tokenizer, tmp_path):
    trainer = smol_align.build_dpo_trainer(
        tiny_model,
        tiny_preference_rows(4),
        "cpu",
        processing_class=tiny_tokenizer,
        output_dir=str(tmp_path),
        **FAST,
    )
    assert trainer.processing_class is tiny_tokenizer


def test_4bit_preset_needs_a_model_name(tiny_model, tiny_tokenizer):
    with pytest.raises(ConfigError, match="needs the model by name"):
        smol_align.build_dpo_trainer(
            tiny_model, tiny_preference_rows(4), "qlora-4bit", tokenizer=tiny_tokenizer
        )


def test_setup_chat_format_compat_adds_chatml_to_a_base_tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    model = tiny_model(tokenizer)
    model, tokenizer = smol_align.setup_chat_format(model, tokenizer)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    assert model.get_input_embeddings().num_embeddings >= len(tokenizer)


def test_soft_loss_type_builds_the_soft_trainer_from_ratings(tiny_model, tiny_tokenizer, tmp_path):
    """loss_type="soft": the probability comes from the normalized rating columns when none is given."""
    from smol_align.soft_dpo import SoftDPOTrainer

    rows = tiny_preference_rows(8)
    for i, row in enumerate(rows):
        row["score_chosen"], row["score_rejected"] = 8.0, float(i % 8)
    trainer = smol_align.build_dpo_trainer(
        tiny_model,
        rows,
        "cpu",
        tokenizer=tiny_tokenizer,
        output_dir=str(tmp_path),
        loss_type="soft",
        **FAST,
        group_by_length=False,  # rows in their own order: row i has rating i
    )
    assert type(trainer) is SoftDPOTrainer
    probs = trainer.train_dataset["preference_prob"]
    assert probs[0] == pytest.approx(1 / (1 + 2.718281828**-8), rel=1e-6) and probs[7] == pytest.approx(
        0.731, abs=1e-3
    )
    _assert_learned(_train_on_heldout(trainer)[0])  # every p > 0.5: the chosen answers still win
    assert trainer.state.global_step == 2


def test_soft_loss_without_probabilities_names_the_column(tiny_model, tiny_tokenizer, tmp_path):
    from smol_align.errors import DatasetFormatError

    with pytest.raises(DatasetFormatError, match="preference_prob"):
        smol_align.build_dpo_trainer(
            tiny_model,
            tiny_preference_rows(4),
            "cpu",
            tokenizer=tiny_tokenizer,
            output_dir=str(tmp_path),
            loss_type="soft",
            **FAST,
        )


def test_the_cpu_preset_groups_pairs_by_length_in_random_batch_order(tiny_model, tiny_tokenizer, tmp_path):
    """group_by_length (the cpu preset's): every step's pairs have similar lengths, the steps come in a seeded
    random order (not longest first), every pair once; other presets keep TRL's random sampler."""
    import random

    rng = random.Random(1)
    words = [" ".join(["arr"] * rng.randint(1, 60)) for _ in range(64)]
    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "chosen": [{"role": "assistant", "content": w}],
            "rejected": [{"role": "assistant", "content": w[: len(w) // 2] or "no"}],
        }
        for i, w in enumerate(words)
    ]

    def build(preset, **options):
        return smol_align.build_dpo_trainer(
            tiny_model,
            rows,
            preset,
            tokenizer=tiny_tokenizer,
            bf16=False,
            eval_split=0,
            output_dir=str(tmp_path),
            per_device_train_batch_size=2,
            **options,
        )

    trainer = build("cpu", gradient_accumulation_steps=2)
    assert trainer.args.train_sampling_strategy == "sequential"  # the order is the dataset's now
    order = [int(p[0]["content"][1:]) for p in trainer.train_dataset["prompt"]]
    assert sorted(order) == list(range(64))
    steps = [order[i : i + 4] for i in range(0, 64, 4)]  # 2 pairs x 2 accumulation = one step's pairs
    sizes = [[len(words[i]) for i in step] for step in steps]
    assert all(s == sorted(s) for s in sizes)  # sorted within a step: micro-batches of similar length
    spread = sum(max(s) - min(s) for s in sizes)
    shuffled = list(range(64))
    random.Random(0).shuffle(shuffled)
    assert (
        spread
        < sum(
            max(len(words[i]) for i in shuffled[k : k + 4]) - min(len(words[i]) for i in shuffled[k : k + 4])
            for k in range(0, 64, 4)
        )
        / 3
    )  # far less padding than random steps
    firsts = [max(s) for s in sizes]
    assert firsts != sorted(firsts, reverse=True)  # steps in random order, not longest first
    assert [
        int(p[0]["content"][1:]) for p in build("cpu", gradient_accumulation_steps=2).train_dataset["prompt"]
    ] == order
    plain = build("cpu", group_by_length=False)
    assert plain.args.train_sampling_strategy == "random" and plain.train_dataset.num_rows == 64
    assert (
        smol_align.presets.build("dpo", "cpu").args.train_sampling_strategy == "random"
    )  # TRL's config: untouched

"""smol_align.evaluate: figures by hand, TRL's fused head left as it was, agreement with TRL."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from smol_align.data.tokens import tokenize_pairs
from smol_align.errors import DatasetFormatError
from smol_align.evaluate import evaluate, generate, heldout_figures
from smol_align.testing import tiny_preference_rows

BETA = 0.1


def perturbed(model, scale: float = 0.05, seed: int = 1):
    """A copy of ``model`` with seeded Gaussian noise on every weight (policy != reference)."""
    policy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return policy


def mixed_rows(n: int = 8) -> list[dict]:
    """Tiny rows, every other pair swapped, so accuracies are neither 0 nor 1."""
    rows = tiny_preference_rows(n)
    return [
        row if i % 2 else {**row, "chosen": row["rejected"], "rejected": row["chosen"]}
        for i, row in enumerate(rows)
    ]


def standard_rows(n: int = 6) -> list[dict]:
    """The same pairs in TRL's standard (plain string) format."""
    return [
        {
            "prompt": f"Q: {r['prompt'][0]['content']}\nA:",
            "chosen": " " + r["chosen"][0]["content"],
            "rejected": " " + r["rejected"][0]["content"],
        }
        for r in mixed_rows(n)
    ]


def hand_logp(model, tokenizer, prompt, completion) -> tuple[float, int]:
    """Summed log-prob and token count of ``completion`` after ``prompt``: full logits, log_softmax."""
    prompt_ids = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    full_ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)[
        "input_ids"
    ]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logits = model(torch.tensor([full_ids])).logits[0].double()
    logprobs = (
        torch.log_softmax(logits[:-1], dim=-1)
        .gather(-1, torch.tensor(full_ids[1:]).unsqueeze(-1))
        .squeeze(-1)
    )
    return logprobs[len(prompt_ids) - 1 :].sum().item(), len(full_ids) - len(prompt_ids)


def test_figures_by_hand_on_two_pairs(tiny_tokenizer, tiny_model):
    ref, policy = tiny_model, perturbed(tiny_model)
    rows = mixed_rows(2)
    got = evaluate(policy, rows, ref_model=ref, tokenizer=tiny_tokenizer, beta=BETA, batch_size=1)

    pol = [
        [hand_logp(policy, tiny_tokenizer, r["prompt"], r[k]) for k in ("chosen", "rejected")] for r in rows
    ]
    refs = [
        [hand_logp(ref, tiny_tokenizer, r["prompt"], r[k])[0] for k in ("chosen", "rejected")] for r in rows
    ]
    (c0, nc0), (r0, nr0) = pol[0]
    (c1, nc1), (r1, nr1) = pol[1]
    rc = [BETA * (pol[i][0][0] - refs[i][0]) for i in range(2)]
    rr = [BETA * (pol[i][1][0] - refs[i][1]) for i in range(2)]
    expected = {
        "n_pairs": 2,
        "preference_accuracy": ((c0 > r0) + (c1 > r1)) / 2,
        "preference_accuracy_normalized": ((c0 / nc0 > r0 / nr0) + (c1 / nc1 > r1 / nr1)) / 2,
        "reward_accuracy": ((rc[0] > rr[0]) + (rc[1] > rr[1])) / 2,
        "reward_margin": (rc[0] - rr[0] + rc[1] - rr[1]) / 2,
        "rewards_chosen": (rc[0] + rc[1]) / 2,
        "rewards_rejected": (rr[0] + rr[1]) / 2,
        "nll_chosen": -(c0 + c1) / (nc0 + nc1),
        "logps_chosen": (c0 + c1) / 2,
        "logps_rejected": (r0 + r1) / 2,
        "drift": (rc[0] + rc[1]) / 2 / BETA,
        "drift_rejected": (rr[0] + rr[1]) / 2 / BETA,
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key
    assert got["logps"]["chosen"] == pytest.approx([c0, c1], abs=1e-4)
    assert got["logps"]["rejected"] == pytest.approx([r0, r1], abs=1e-4)
    assert got["logps"]["chosen_tokens"] == [nc0, nc1]
    assert got["logps"]["rejected_tokens"] == [nr0, nr1]
    assert got["reference"] == "ref_model"
    assert got["reward_margin"] != 0.0  # the perturbation matters


def test_heldout_figures_strict_and_zero_reference():
    logps = {
        "chosen": [-1.0, -5.0, -2.0],
        "rejected": [-2.0, -3.0, -2.0],
        "chosen_tokens": [1, 5, 2],
        "rejected_tokens": [4, 1, 2],
    }
    same = heldout_figures(logps, logps, beta=0.5)
    assert same["preference_accuracy"] == pytest.approx(1 / 3)  # the tie does not count
    assert same["preference_accuracy_normalized"] == pytest.approx(1 / 3)  # -1 > -0.5? no; -1 > -3 yes; tie
    assert same["reward_accuracy"] == 0.0 and same["reward_margin"] == 0.0 and same["drift"] == 0.0
    assert same["nll_chosen"] == pytest.approx(8 / 8)
    ref = {**logps, "chosen": [-2.0, -5.0, -2.0]}
    moved = heldout_figures(logps, ref, beta=0.5)
    assert moved["reward_accuracy"] == pytest.approx(1 / 3)
    assert moved["reward_margin"] == pytest.approx(0.5 / 3)
    assert moved["drift"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("fmt", ["conversational", "standard"])
def test_batching_changes_nothing_and_the_model_is_left_as_it_was(tiny_tokenizer, tiny_model, fmt):
    import trl.trainer.utils as trl_utils

    rows = mixed_rows(7) if fmt == "conversational" else standard_rows(7)
    policy = perturbed(tiny_model)
    use_triton = trl_utils._use_triton
    batched = evaluate(policy, rows, tokenizer=tiny_tokenizer, batch_size=3)["logps"]
    one_by_one = evaluate(policy, rows, tokenizer=tiny_tokenizer, batch_size=1)["logps"]
    assert batched["chosen_tokens"] == one_by_one["chosen_tokens"]
    for key in ("chosen", "rejected"):
        assert batched[key] == pytest.approx(one_by_one[key], abs=1e-5)
    # TRL's fused head was added for the call only, and TRL's CPU switch is its own again
    assert "forward" not in vars(policy) and trl_utils._use_triton is use_triton


def _trl_evaluate(policy, ref, tokenizer, rows, tmp_path, max_length):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        output_dir=str(tmp_path),
        beta=BETA,
        per_device_eval_batch_size=len(rows) // 2,
        max_length=max_length,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    dataset = Dataset.from_list(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(
            model=policy, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        metrics = trainer.evaluate(dataset)
        prepared = trainer._prepare_dataset(dataset, tokenizer, args, "check")
    return metrics, prepared


@pytest.mark.parametrize(
    ("fmt", "max_length"), [("conversational", None), ("standard", None), ("conversational", 40)]
)
def test_agrees_with_trl_dpo_trainer_evaluate(tiny_tokenizer, tiny_model, tmp_path, fmt, max_length):
    rows = mixed_rows(8) if fmt == "conversational" else standard_rows(8)
    ref, policy = tiny_model, perturbed(tiny_model)
    ours = evaluate(
        policy, rows, ref_model=ref, tokenizer=tiny_tokenizer, beta=BETA, batch_size=3, max_length=max_length
    )
    trl, prepared = _trl_evaluate(policy, ref, tiny_tokenizer, rows, tmp_path, max_length)

    assert 0.0 < ours["reward_accuracy"] < 1.0  # a figure worth comparing
    pairs = tokenize_pairs(rows, tiny_tokenizer, max_length=max_length)
    assert [p["prompt_ids"] for p in pairs] == prepared["prompt_ids"]
    assert [p["chosen_ids"] for p in pairs] == prepared["chosen_ids"]
    assert [p["rejected_ids"] for p in pairs] == prepared["rejected_ids"]
    # TRL's own tokenized rows (a DPO trainer's eval_dataset) are taken as they are
    again = evaluate(
        policy, prepared, ref_model=ref, tokenizer=tiny_tokenizer, beta=BETA, max_length=max_length
    )
    assert again["logps"] == ours["logps"]
    for ours_key, trl_key in [
        ("reward_accuracy", "eval_rewards/accuracies"),
        ("reward_margin", "eval_rewards/margins"),
        ("rewards_chosen", "eval_rewards/chosen"),
        ("rewards_rejected", "eval_rewards/rejected"),
        ("logps_chosen", "eval_logps/chosen"),
        ("logps_rejected", "eval_logps/rejected"),
    ]:
        assert ours[ours_key] == pytest.approx(trl[trl_key], abs=1e-4), ours_key


def test_reference_defaults_and_reuse(tiny_tokenizer, tiny_model):
    rows = mixed_rows(6)
    ref, policy = tiny_model, perturbed(tiny_model)
    start = evaluate(ref, rows, tokenizer=tiny_tokenizer, batch_size=4)
    assert start["reference"] == "model itself"
    for key in (
        "reward_margin",
        "rewards_chosen",
        "rewards_rejected",
        "drift",
        "drift_rejected",
        "reward_accuracy",
    ):
        assert start[key] == 0.0, key
    assert start["preference_accuracy"] == pytest.approx(
        sum(c > r for c, r in zip(start["logps"]["chosen"], start["logps"]["rejected"], strict=True)) / 6
    )
    with_model = evaluate(policy, rows, ref_model=ref, tokenizer=tiny_tokenizer)
    with_logps = evaluate(policy, rows, tokenizer=tiny_tokenizer, ref_logps=start["logps"])
    assert with_logps["reference"] == "ref_logps"
    for key in ("reward_accuracy", "reward_margin", "drift", "drift_rejected", "nll_chosen"):
        assert with_logps[key] == pytest.approx(with_model[key], abs=1e-6), key
    with pytest.raises(ValueError, match="pairs"):
        evaluate(policy, rows, tokenizer=tiny_tokenizer, ref_logps=start["logps"], max_pairs=4)
    with pytest.raises(ValueError, match="other pairs"):
        evaluate(policy, list(reversed(rows)), tokenizer=tiny_tokenizer, ref_logps=start["logps"])


def test_max_pairs_implicit_prompt_and_modes(tiny_tokenizer, tiny_model):
    rows = mixed_rows(6)
    implicit = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in rows]
    tiny_model.train()
    explicit = evaluate(tiny_model, rows, tokenizer=tiny_tokenizer, max_pairs=4)
    assert tiny_model.training  # restored
    assert not any(p.grad is not None for p in tiny_model.parameters())
    from datasets import Dataset

    from_dataset = evaluate(tiny_model, Dataset.from_list(implicit), tokenizer=tiny_tokenizer, max_pairs=4)
    assert explicit["n_pairs"] == from_dataset["n_pairs"] == 4
    assert from_dataset["logps"]["chosen"] == pytest.approx(explicit["logps"]["chosen"], abs=1e-6)
    with pytest.raises(
        DatasetFormatError, match="cannot read a dict"
    ):  # a DatasetDict is read; a plain dict is not
        evaluate(tiny_model, {"test": rows}, tokenizer=tiny_tokenizer)
    # pairs whose prompt alone fills max_length are dropped (TRL's keep_start rule): 28 tokens here, 30 from row 10
    kept = tokenize_pairs(tiny_preference_rows(12), tiny_tokenizer, max_length=30)
    assert len(kept) == 10


def test_peft_reference_is_the_adapter_disabled(tiny_tokenizer, tiny_model):
    from peft import LoraConfig, get_peft_model

    rows = mixed_rows(4)
    base = evaluate(tiny_model, rows, tokenizer=tiny_tokenizer)
    peft_model = get_peft_model(
        copy.deepcopy(tiny_model),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    got = evaluate(peft_model, rows, tokenizer=tiny_tokenizer)
    assert got["reference"] == "adapter disabled"
    assert got["reward_margin"] != 0.0
    reused = evaluate(peft_model, rows, tokenizer=tiny_tokenizer, ref_logps=base["logps"])
    assert reused["reward_margin"] == pytest.approx(got["reward_margin"], abs=1e-6)
    assert got["logps"]["chosen"] != base["logps"]["chosen"]  # the adapters were on for the policy


def test_generate_batched_equals_one_by_one_and_sampling_is_seeded(tiny_tokenizer, tiny_model):
    model = perturbed(tiny_model, scale=0.5, seed=0)  # a random tiny Llama only emits newlines
    prompts = [r["prompt"] for r in tiny_preference_rows(3)] + ["hi"]
    prompts[1] = [
        {"role": "system", "content": "A much longer system prompt, so the batch needs padding."},
        *prompts[1],
    ]
    model.train()
    batched = generate(model, prompts, tiny_tokenizer, max_new_tokens=6, batch_size=3)
    assert model.training and tiny_tokenizer.padding_side == "right"
    single = [generate(model, [p], tiny_tokenizer, max_new_tokens=6)[0] for p in prompts]
    assert batched == single
    assert len(batched) == 4 and all(isinstance(a, str) for a in batched) and any(batched)
    state = torch.random.get_rng_state()
    drawn = [
        generate(model, prompts, tiny_tokenizer, max_new_tokens=8, sample=True, temperature=1.5, seed=s)
        for s in (1, 1, 2)
    ]
    assert drawn[0] == drawn[1] != drawn[2] and drawn[0] != batched  # seeded, and not greedy
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left as it was


@pytest.mark.slow
def test_smollm2_figures_equal_full_logits():
    """The embedded SmolLM2-135M-Instruct on a few demo test pairs (~15 s): TRL's fused head = log_softmax of full logits."""
    try:
        from smol_align.data import demo
        from smol_align.models import load_model

        model, tokenizer = load_model(dtype=torch.float32)
    except Exception as error:  # noqa: BLE001 - the embedded model is optional here
        pytest.skip(f"embedded SmolLM2 not available ({error})")
    rows = demo()["test"].select(range(3)).to_list()
    got = evaluate(model, rows, tokenizer=tokenizer, batch_size=2)
    for i, row in enumerate(rows):
        for key in ("chosen", "rejected"):
            logp, n = hand_logp(model, tokenizer, row["prompt"], row[key])
            assert (
                got["logps"][key][i] == pytest.approx(logp, abs=2e-3)
                and got["logps"][f"{key}_tokens"][i] == n
            )
    assert 0.0 < got["nll_chosen"] < 10.0


def test_a_reference_with_another_tokenizer_is_refused(tiny_tokenizer, tiny_model):
    """Rewards compare log-probs of the same token ids: a reference with another vocabulary is refused before
    any forward pass (without the check: an index error deep in torch, or figures that mean nothing)."""
    from smol_align.errors import ConfigError
    from smol_align.testing import tiny_model as make_tiny_model
    from smol_align.testing import tiny_tokenizer as make_tiny_tokenizer

    rows, policy = mixed_rows(2), perturbed(tiny_model)
    other_tokenizer = make_tiny_tokenizer(vocab_size=300)
    with pytest.raises(ConfigError, match="ref_model has 300 token embeddings and the model 320"):
        evaluate(policy, rows, ref_model=make_tiny_model(other_tokenizer), tokenizer=tiny_tokenizer)
    options = {"ref_model": tiny_model, "tokenizer": tiny_tokenizer}
    with pytest.raises(ConfigError, match="not share the tokenizer of the model: its vocabulary has 300"):
        evaluate(policy, rows, **options, ref_tokenizer=other_tokenizer)
    same = evaluate(policy, rows, **options, ref_tokenizer=tiny_tokenizer)
    assert same["reference"] == "ref_model" and same["reward_margin"] != 0


@pytest.mark.parametrize("beta", [-0.5, 0.0])
def test_a_beta_that_is_not_positive_is_refused(tiny_tokenizer, tiny_model, beta):
    """beta=-0.5 turned every implicit reward around: the model that prefers rejected scored accuracy 1.0."""
    from smol_align.errors import ConfigError

    with pytest.raises(ConfigError, match=f"beta={beta}: .* need beta > 0"):
        evaluate(tiny_model, tiny_preference_rows(2), tokenizer=tiny_tokenizer, beta=beta)

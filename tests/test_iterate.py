"""iterate() on a tiny model: rounds sample, score, pair best vs worst (ties skipped and counted), train through
run.py and save; the demo rule reward; a sequence-classification reward model; the CLI verb."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from unittest import mock

import pytest
import torch
from helpers import tiny_model_dir_and_pairs

import smol_align.run
from smol_align import iterate
from smol_align.data.demo import demo_rows
from smol_align.iterate import (
    COLUMNS,
    DEMO_SYSTEM,
    _sampling_precision,
    best_vs_worst,
    demo_prompts,
    demo_reward,
    reward_model,
)
from smol_align.testing import tiny_model_and_tokenizer, tiny_preference_rows

SAMPLES = 3
PROMPTS = [r["prompt"] for r in tiny_preference_rows(6)]  # "What is 0 plus 0?" ... "What is 5 plus 5?"
HELDOUT = [r["prompt"] for r in tiny_preference_rows(102)[100:]]
TIED = ("What is 0 plus 0?", "What is 1 plus 1?")  # the reward below scores every answer to these 0: no pair
FAST = {
    "preset": "cpu",
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "learning_rate": 5e-3,
    "max_new_tokens": 8,
    "quiet": True,
}


def _positional_reward(calls: list[int]):
    """Held-out answers: their length. Sampled answers: their position among a prompt's samples (so the last is
    best, the first worst), 0 for the TIED prompts. Records how many completions each call scores."""

    def reward(prompts, completions, **kwargs):
        calls.append(len(completions))
        if len(completions) == len(HELDOUT):
            return [float(len(c[0]["content"])) for c in completions]
        return [0.0 if p[-1]["content"] in TIED else float(i % SAMPLES) for i, p in enumerate(prompts)]

    return reward


@pytest.fixture(scope="module")
def iterated(tmp_path_factory):
    model, tokenizer = tiny_model_and_tokenizer()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls: list[int] = []
    folder = tmp_path_factory.mktemp("iterate") / "report"
    started, real_run = [], smol_align.run.run  # the model each round's run starts from, and its weights then
    evaluate = importlib.import_module("smol_align.evaluate")  # the package's `evaluate` is the function
    generated, real_generate = [], evaluate.generate  # per generate call: (sampled?, under bf16 autocast?)

    def recording_run(method, model, *args, **kwargs):
        started.append((model, {n: p.detach().clone() for n, p in model.named_parameters()}))
        return real_run(method, model, *args, **kwargs)

    def recording_generate(*args, **kwargs):
        bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        generated.append((kwargs.get("sample", False), bf16))
        return real_generate(*args, **kwargs)

    with (
        mock.patch("smol_align.run.run", recording_run),
        mock.patch.object(evaluate, "generate", recording_generate),
        mock.patch("smol_align.iterate.cpu_has_native_bf16", lambda: True),
    ):
        result = iterate(
            model,
            PROMPTS,
            _positional_reward(calls),
            rounds=2,
            samples=SAMPLES,
            output_dir=str(folder),
            tokenizer=tokenizer,
            eval_prompts=HELDOUT,
            accumulate=True,
            **FAST,
        )
    return result, calls, start, model, folder, started, generated


def test_each_round_samples_scores_and_pairs_best_against_worst(iterated):
    result, calls, *_ = iterated
    n, held = len(PROMPTS) * SAMPLES, len(HELDOUT)
    assert calls == [held, n, held, n, held]  # start, then per round: the samples, the held-out answers
    for k in (1, 2):
        folder = Path(result.report_dir) / f"round-{k}"
        samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        pairs = [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]
        assert [len(s["completions"]) for s in samples] == [SAMPLES] * len(PROMPTS)
        assert len(pairs) == len(PROMPTS) - len(TIED)
        by_prompt = {json.dumps(s["prompt"]): s for s in samples}
        for pair in pairs:
            drawn = by_prompt[json.dumps(pair["prompt"])]
            assert pair["prompt"][-1]["content"] not in TIED
            assert pair["chosen"] == [{"role": "assistant", "content": drawn["completions"][-1]}]
            assert pair["rejected"] == [{"role": "assistant", "content": drawn["completions"][0]}]
        assert result.metrics[f"round {k}"]["pairs"] == 4 and result.metrics[f"round {k}"]["skipped"] == 2


def test_accumulate_trains_on_every_rounds_pairs(iterated):
    result, *_ = iterated
    assert [result.metrics[f"round {k}"]["train_pairs"] for k in (1, 2)] == [4, 8]


def test_rounds_train_the_model_and_save_it(iterated):
    result, _, start, model, *_ = iterated
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())  # the caller's model is copied
    trained = dict(result.model.named_parameters())
    assert any(not torch.equal(trained[n], start[n]) for n in start)
    for k in (1, 2):
        assert (Path(result.report_dir) / f"round-{k}" / "model.safetensors").exists()
        card = (Path(result.report_dir) / f"round-{k}" / "README.md").read_text()  # its model card
        assert (
            "smol_align.iterate(\n    model=...,  # a LlamaForCausalLM object" in card
            and "- smol-align\n" in card
        )


def test_the_next_round_trains_the_saved_model_not_the_one_in_memory(iterated):
    result, *_, started, _ = iterated
    first = result.rounds[0].model
    (_, start), (second, weights) = started
    assert second is not first  # kept in memory, it trained 30-80% slower a step (docs/methods/iterate.md)
    assert any(not torch.equal(p, start[n]) for n, p in first.named_parameters())  # round 1 trained
    assert all(
        torch.equal(p, weights[n]) for n, p in first.named_parameters()
    )  # round 2 started from its weights


def test_sampling_runs_in_bf16_where_it_is_native_the_heldout_answers_in_the_models_precision(iterated):
    generated = iterated[-1]
    assert generated == [(False, False), (True, True), (False, False), (True, True), (False, False)]


@pytest.mark.parametrize("native", [True, False])
def test_sampling_precision_is_bf16_autocast_only_where_bf16_is_native(native):
    model, _ = tiny_model_and_tokenizer()
    with mock.patch("smol_align.iterate.cpu_has_native_bf16", lambda: native), _sampling_precision(model):
        assert torch.is_autocast_enabled("cpu") is native
        assert model(torch.tensor([[1, 2, 3]])).logits.dtype == (torch.bfloat16 if native else torch.float32)


def test_report_holds_the_per_round_table_and_plots(iterated):
    result, *_ = iterated
    folder = Path(result.report_dir)
    assert {"metrics.json", "report.md", "training.png", "heldout.png"} <= {p.name for p in folder.iterdir()}
    assert list(json.loads((folder / "metrics.json").read_text())) == ["start", "round 1", "round 2"]
    report = (folder / "report.md").read_text()
    assert all(column in report for column in COLUMNS) and "| round 2 |" in report
    assert 0.0 <= result.metrics["round 2"]["win_rate"] <= 1.0 and result.metrics["start"]["win_rate"] == 0.5


def test_per_round_gives_each_round_the_next_prompts(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    result = iterate(
        model,
        PROMPTS,
        _positional_reward([]),
        rounds=2,
        samples=SAMPLES,
        output_dir=str(tmp_path / "it"),
        tokenizer=tokenizer,
        eval_prompts=HELDOUT,
        per_round=4,
        **FAST,
    )
    asked = [
        [
            json.loads(line)["prompt"]
            for line in (Path(result.report_dir) / f"round-{k}" / "samples.jsonl").open()
        ]
        for k in (1, 2)
    ]
    assert asked == [PROMPTS[:4], PROMPTS[4:] + PROMPTS[:2]]  # the next slice, wrapping round
    assert (
        result.metrics["round 1"]["pairs"] == 2 and result.metrics["round 2"]["pairs"] == 2
    )  # TIED: the first two


def test_best_vs_worst_skips_ties_and_near_ties():
    prompts = ["a", "b", "c"]
    completions = ["a1", "a2", "b1", "b2", "c1", "c1"]
    pairs, skipped = best_vs_worst(
        prompts, completions, [0.0, 1.0, 0.5, 0.52, 3.0, 1.0], samples=2, min_gap=0.05
    )
    assert skipped == 2  # b: a near tie; c: one answer twice
    assert pairs == [
        {
            "prompt": [{"role": "user", "content": "a"}],
            "chosen": [{"role": "assistant", "content": "a2"}],
            "rejected": [{"role": "assistant", "content": "a1"}],
        }
    ]


def test_demo_reward_prefers_the_pirate_answer_that_keeps_the_fact():
    prompt = [{"role": "user", "content": "What is half of 66?"}]
    answers = [
        "Arr, half o' 66 be 33, yo ho!",
        "Half of 66 is 33.",
        "Arr, half o' 66 be 40, matey!",
        "Arr arr arr the the arr arr arr the the arr arr arr the the",
        "I'm sorry, but I'm not a calculator.",
    ]
    scores = demo_reward([prompt] * 5, [[{"role": "assistant", "content": a}] for a in answers])
    assert scores[0] == pytest.approx(3.0) and scores[1] == pytest.approx(2.0)
    assert scores[2] == pytest.approx(1.0)  # the voice, but no fact: nothing for being short either
    assert scores[3] < scores[2]  # repeated 4-grams cost
    assert scores[4] == pytest.approx(0.0)  # a short refusal earns nothing
    assert demo_reward(["Hi?"], ["Ahoy, matey!"]) == [
        pytest.approx(3.0)
    ]  # a text prompt; no fact known: the point
    rabbit = [
        [{"role": "user", "content": "Where does a rabbit live?"}]
    ]  # the fact: "burrow", not the template's "lives"
    assert demo_reward(
        rabbit * 2, [[{"role": "assistant", "content": a}] for a in ("In burrows.", "It lives in a hat.")]
    ) == [pytest.approx(2.0), pytest.approx(0.0)]


def test_demo_prompts_ask_the_demo_questions_under_the_pirate_system_prompt():
    train, test = demo_prompts()
    rows = demo_rows()
    for prompts, split in ((train, "train"), (test, "test")):
        assert {p[-1]["content"] for p in prompts} == {r["prompt"][-1]["content"] for r in rows[split]}
        assert len(prompts) == len({p[-1]["content"] for p in prompts})  # each question once
        assert all(p[0] == {"role": "system", "content": DEMO_SYSTEM} and len(p) == 2 for p in prompts)
    assert "pirate" in DEMO_SYSTEM and not {p[-1]["content"] for p in train} & {
        p[-1]["content"] for p in test
    }
    question = next(
        p for p in train if p[-1]["content"] == "What is half of 66?"
    )  # the reward keys on the question
    assert demo_reward([question], [[{"role": "assistant", "content": "Arr, half o' 66 be 33, yo ho!"}]]) == [
        pytest.approx(3.0)
    ]


@pytest.fixture
def tiny_reward_model(tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    _, tokenizer = tiny_model_and_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    return tmp_path / "rm"


def test_a_sequence_classification_model_is_a_reward(tiny_reward_model, tmp_path):
    score = reward_model(str(tiny_reward_model))
    completions = [[{"role": "assistant", "content": t}] for t in ("Arr!", "The answer is 4.", "Arr!")]
    scores = score(PROMPTS[:3], completions)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores) and scores[0] != scores[1]
    assert score(PROMPTS[:1], completions[:1]) == pytest.approx(scores[:1])  # padding does not change a score
    model, tokenizer = tiny_model_and_tokenizer()
    result = iterate(
        model,
        PROMPTS,
        str(tiny_reward_model),
        rounds=1,
        samples=2,
        output_dir=str(tmp_path / "it"),
        tokenizer=tokenizer,
        eval_prompts=HELDOUT,
        **FAST,
    )
    assert result.metrics["round 1"]["pairs"] + result.metrics["round 1"]["skipped"] == len(PROMPTS)
    assert (
        result.metrics["round 1"]["train_pairs"] == result.metrics["round 1"]["pairs"]
    )  # no accumulate: its own


def test_cli_iterate(tmp_path):
    from smol_align.cli import main

    base, pairs = tiny_model_dir_and_pairs(tmp_path, n_pairs=10)
    out = tmp_path / "out"
    code = main(
        [
            "iterate",
            "--model",
            str(base),
            "--prompts",
            str(pairs),
            "--rounds",
            "1",
            "--samples",
            "2",
            "--preset",
            "cpu",
            "--max-steps",
            "1",
            "--per-device-train-batch-size",
            "2",
            "--max-new-tokens",
            "6",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    assert (out / "report.md").exists() and (out / "round-1" / "samples.jsonl").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["round 1"]["pairs"] + metrics["round 1"]["skipped"] == 8  # 10 prompts, 2 held out

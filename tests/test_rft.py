"""RFT in iterate(): which sampled answers are kept (the best per prompt, or every one at or above a
threshold; ties and misses skipped and counted), the keep= checks, two rounds end to end on a tiny model
(the round folders, the report, the fine-tuning learns the kept answers), and the CLI flag."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import tiny_model_dir_and_pairs

from smol_align import evaluate, iterate
from smol_align.errors import ConfigError
from smol_align.iterate import RFT_COLUMNS, best_vs_worst, keep_answers
from smol_align.testing import tiny_model_and_tokenizer


def _row(prompt: str, answer: str, score: float) -> dict:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
        "score": score,
    }


# Three prompts, three answers each: a's best is a2; b's answers tie within min_gap; c's top is tied (c1, c3).
PROMPTS = ["a", "b", "c"]
COMPLETIONS = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"]
SCORES = [0.0, 2.0, 1.0, 1.0, 1.03, 1.0, 3.0, 0.0, 3.0]


def test_best_keeps_each_prompts_best_answer_and_skips_prompts_whose_answers_tie():
    rows, skipped = keep_answers(PROMPTS, COMPLETIONS, SCORES, samples=3, keep="best", min_gap=0.05)
    assert rows == [_row("a", "a2", 2.0), _row("c", "c1", 3.0)]  # c: the first drawn of the two at the top
    assert skipped == 1  # b: 1.03 - 1.0 <= min_gap, no answer better than another


def test_best_keeps_the_answer_dpo_would_choose():
    rows, skipped = keep_answers(PROMPTS, COMPLETIONS, SCORES, samples=3, keep="best", min_gap=0.05)
    pairs, pair_skipped = best_vs_worst(PROMPTS, COMPLETIONS, SCORES, samples=3, min_gap=0.05)
    assert [r["completion"] for r in rows] == [p["chosen"] for p in pairs] and skipped == pair_skipped


def test_a_threshold_keeps_every_distinct_answer_at_or_above_it():
    completions = ["a1", "a2", "a2", "b1", "b2", "b3", "c1", "c2", "c3"]
    scores = [2.0, 2.5, 2.5, 1.0, 1.9, 0.0, 3.0, 2.0, 1.0]
    rows, skipped = keep_answers(PROMPTS, completions, scores, samples=3, keep=2.0)
    assert rows == [_row("a", "a1", 2.0), _row("a", "a2", 2.5), _row("c", "c1", 3.0), _row("c", "c2", 2.0)]
    assert skipped == 1  # b: none at 2.0 (1.9 is below); a2, drawn twice, is kept once


def test_message_prompts_stay_messages():
    prompt = [{"role": "system", "content": "Be a pirate."}, {"role": "user", "content": "Hi?"}]
    rows, _ = keep_answers([prompt], ["Arr", "Hello"], [1.0, 0.0], samples=2)
    assert rows[0]["prompt"] == prompt


@pytest.mark.parametrize(
    ("method", "keep", "says"),
    [
        ("dpo", "best", "keep='best' chooses the answers RFT trains on; method='dpo' pairs"),
        ("orpo", 2.0, "keep=2.0 chooses the answers RFT trains on; method='orpo' pairs"),
        ("rft", "worst", "keep='worst': RFT keeps 'best'"),
        ("rft", float("nan"), "keep=nan: RFT keeps 'best'"),
        ("rft", True, "keep=True: RFT keeps 'best'"),
    ],
)
def test_keep_is_refused_before_any_work_where_it_means_nothing(method, keep, says, tmp_path):
    with pytest.raises(ConfigError, match="^" + re.escape(says)):
        iterate(
            "no/such-model",
            ["a", "b"],
            lambda p, c: [0.0] * len(c),
            method=method,
            keep=keep,
            output_dir=str(tmp_path / "out"),
        )
    assert not (tmp_path / "out").exists()


# Two rounds of RFT on a tiny random model. The reward prefers answers of ASCII letters; round k samples 4
# answers to each of the next 8 of 16 prompts and fine-tunes 10 steps of 4 on each prompt's best answer.
TRAIN = [[{"role": "user", "content": f"What is {i} plus {i}?"}] for i in range(16)]
HELDOUT = [[{"role": "user", "content": f"What is {i} plus {i}?"}] for i in range(100, 104)]
LEARNING_RATE = 1e-2


def _letters_reward(prompts, completions, **kwargs):
    """The share of an answer's characters that are ASCII letters (the tiny model samples mostly bytes)."""
    return [
        sum(ch.isascii() and ch.isalpha() for ch in c[0]["content"]) / max(1, len(c[0]["content"]))
        for c in completions
    ]


@pytest.fixture(scope="module")
def rft(tmp_path_factory):
    model, tokenizer = tiny_model_and_tokenizer()
    folder = tmp_path_factory.mktemp("rft") / "report"
    result = iterate(
        model,
        TRAIN,
        _letters_reward,
        method="rft",
        rounds=2,
        samples=4,
        per_round=8,
        output_dir=str(folder),
        tokenizer=tokenizer,
        eval_prompts=HELDOUT,
        preset="cpu",
        max_steps=10,
        per_device_train_batch_size=4,
        learning_rate=LEARNING_RATE,
        max_new_tokens=8,
        temperature=1.0,
        quiet=True,
    )
    return result, model, tokenizer, folder


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_round_keeps_each_prompts_best_sampled_answer_and_writes_it(rft):
    result, _, _, folder = rft
    for k in (1, 2):
        round_folder = folder / f"round-{k}"
        drawn, kept = _jsonl(round_folder / "samples.jsonl"), _jsonl(round_folder / "kept.jsonl")
        assert not (round_folder / "pairs.jsonl").exists() and (round_folder / "model.safetensors").exists()
        assert [d["prompt"] for d in drawn] == (TRAIN * 2)[8 * (k - 1) : 8 * k]
        expected, skipped = keep_answers(
            [d["prompt"] for d in drawn],
            [c for d in drawn for c in d["completions"]],
            [s for d in drawn for s in d["scores"]],
            samples=4,
        )
        assert kept == expected and kept  # the rows trained on, with their reward
        figures = result.metrics[f"round {k}"]
        assert figures["kept"] == len(kept) and figures["skipped"] == skipped == 8 - len(kept)
        assert figures["train_rows"] == len(kept)  # no accumulate: its own
        assert figures["kept_reward"] == pytest.approx(sum(r["score"] for r in kept) / len(kept), abs=1e-4)
        assert figures["kept_reward"] > figures["sampled_reward"]  # the best of 4 beats the average


def test_the_report_is_rfts_and_the_folder_is_smol_aligns(rft, tmp_path):
    result, model, tokenizer, folder = rft
    assert list(json.loads((folder / "metrics.json").read_text())) == ["start", "round 1", "round 2"]
    report = (folder / "report.md").read_text()
    assert report.startswith("# Rejection-sampling fine-tuning (RFT): 2 rounds")
    assert all(column in report for column in RFT_COLUMNS) and "| round 2 |" in report
    assert result.table().split("\n")[0].split() == ["model", *RFT_COLUMNS]
    # overwrite=True recognises the folder as an earlier run's (its rounds' kept.jsonl are files it writes)
    copy = shutil.copytree(folder, tmp_path / "report")
    again = iterate(
        model,
        TRAIN[:4],
        _letters_reward,
        method="rft",
        rounds=1,
        samples=2,
        output_dir=str(copy),
        overwrite=True,
        tokenizer=tokenizer,
        eval_prompts=HELDOUT,
        preset="cpu",
        max_steps=1,
        per_device_train_batch_size=2,
        max_new_tokens=4,
        quiet=True,
    )
    assert list(again.metrics) == ["start", "round 1"] and not (copy / "round-2").exists()


def test_rfts_fine_tuning_learns_the_kept_answers(rft):
    """Round 1's model against the start model on the answers round 1 kept: their log-probability rises (by
    25-28 nats an answer of at most 8 tokens at lr 1e-2; at lr 0, not at all). The tiny model's samples are
    mostly stray bytes, so the fine-tuning also raises the answers it did not keep: what it learns here is the
    kept rows, not yet the reward (the demo's held-out reward is measured in scripts/rft_vs_dpo.py)."""
    result, start, tokenizer, folder = rft
    kept = _jsonl(folder / "round-1" / "kept.jsonl")
    pairs = [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["completion"]} for r in kept]
    before = evaluate(start, pairs, tokenizer=tokenizer)
    after = evaluate(result.rounds[0].model, pairs, tokenizer=tokenizer, ref_logps=before["logps"])
    assert after["drift"] > 5.0  # nats an answer


def test_a_round_that_keeps_nothing_trains_nothing(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    result = iterate(
        model,
        TRAIN[:4],
        lambda prompts, completions, **kwargs: [1.0] * len(completions),  # every answer ties
        method="rft",
        rounds=1,
        samples=2,
        output_dir=str(tmp_path / "out"),
        tokenizer=tokenizer,
        eval_prompts=HELDOUT,
        max_new_tokens=4,
        quiet=True,
    )
    figures = result.metrics["round 1"]
    assert (figures["kept"], figures["skipped"], figures["train_rows"], figures["steps"]) == (0, 4, 0, 0)
    assert result.model is None and (tmp_path / "out" / "round-1" / "kept.jsonl").read_text() == ""


def test_cli_iterate_rft(tmp_path):
    from smol_align.cli import main

    base, pairs = tiny_model_dir_and_pairs(tmp_path, n_pairs=10)
    out = tmp_path / "out"
    argv = ["iterate", "--method", "rft", "--keep", "-100", "--model", str(base), "--prompts", str(pairs)]
    argv += ["--rounds", "1", "--samples", "2", "--preset", "cpu", "--max-steps", "1"]
    argv += ["--per-device-train-batch-size", "2", "--max-new-tokens", "6", "--output-dir", str(out)]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["round 1"]["kept"] == 16 - sum(  # every distinct answer to the 8 training prompts
        len(set(d["completions"])) < 2 for d in _jsonl(out / "round-1" / "samples.jsonl")
    )
    assert metrics["round 1"]["skipped"] == 0 and (out / "round-1" / "kept.jsonl").exists()

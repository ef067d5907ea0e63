"""One data path: train_dpo, the builders, compare, evaluate and the CLI read data once, through load().

Tiny models, one or two steps: what is checked is where the pairs come from (the test split, a
held-out fraction, eval_dataset in any form) and that every row is normalized exactly once.
"""

import json
from dataclasses import replace

import pytest

import smol_align
from smol_align.data import load
from smol_align.data.formats import FORMATS
from smol_align.testing import tiny_preference_rows

FAST = {"max_steps": 1, "per_device_train_batch_size": 2, "save": False, "quiet": True, "answer_prompts": 0}


def alpaca_rows(start, stop):
    """LLaMA-Factory alpaca rows (raw: every one must go through the alpaca row function)."""
    return [
        {
            "instruction": f"What is {i} plus {i}?",
            "input": "",
            "chosen": f"Arr, it be {2 * i}, matey!",
            "rejected": f"The answer is {2 * i}.",
        }
        for i in range(start, stop)
    ]


@pytest.fixture
def counted(monkeypatch):
    """Counts the calls of the alpaca row function (the test's data is alpaca)."""
    calls = []
    fmt = FORMATS["alpaca"]

    def row(r, **options):
        calls.append(r["instruction"])
        return fmt.row(r, **options)

    monkeypatch.setitem(FORMATS, "alpaca", replace(fmt, row=row))
    return calls


def test_train_dpo_evaluates_on_the_test_split_and_normalizes_each_row_once(
    counted, tiny_model, tiny_tokenizer
):
    """As train_dpo(model, "trl-lib/ultrafeedback_binarized") does with the hub's test split."""
    from datasets import Dataset, DatasetDict

    data = DatasetDict(
        {"train": Dataset.from_list(alpaca_rows(0, 12)), "test": Dataset.from_list(alpaca_rows(200, 205))}
    )
    result = smol_align.train_dpo(tiny_model, data, "cpu", tokenizer=tiny_tokenizer, **FAST)
    assert sorted(counted) == sorted(
        r["instruction"] for r in alpaca_rows(0, 12) + alpaca_rows(200, 205)
    )  # once each
    assert result.before["n_pairs"] == result.after["n_pairs"] == 5
    assert "eval_rewards/accuracies" in result.metrics
    assert len(result.trainer.train_dataset) == 12


def test_hub_id_gives_its_test_split(monkeypatch):
    import datasets

    rows = [
        {
            "chosen": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "x"}],
            "rejected": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "y"}],
            "score_chosen": 8.0,
            "score_rejected": 2.0,
        }
        for i in range(6)
    ]
    splits = {"train": datasets.Dataset.from_list(rows[:4]), "test": datasets.Dataset.from_list(rows[4:])}
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict(splits))
    pairs = load("trl-lib/ultrafeedback_binarized")
    assert (pairs.format, len(pairs.train), len(pairs.eval), pairs.heldout) == (
        "trl-ultrafeedback",
        4,
        2,
        "split 'test'",
    )


def test_no_test_split_holds_out_a_fraction_with_a_fixed_seed(tiny_model, tiny_tokenizer):
    rows = alpaca_rows(0, 40)
    pairs = load(rows)
    assert (len(pairs.train), len(pairs.eval)) == (36, 4)  # 10% by default
    assert pairs.eval.to_list() == load(rows).eval.to_list()  # the same pairs every time
    assert len(load(rows, eval_split=0.25).eval) == 10 and load(rows, eval_split=0).eval is None
    assert len(load(alpaca_rows(0, 5000)).eval) == 300  # capped
    result = smol_align.train_orpo(tiny_model, rows, "cpu", tokenizer=tiny_tokenizer, eval_split=0.1, **FAST)
    assert result.before["n_pairs"] == 4 and "eval_rewards/accuracies" in result.metrics


@pytest.mark.parametrize("form", ["jsonl", "list", "dataset_dict"])
def test_eval_dataset_in_any_form_and_filters_and_columns_reach_the_builder(
    form, tiny_model, tiny_tokenizer, tmp_path
):
    from datasets import Dataset, DatasetDict

    heldout = [
        {"question": f"What is {i} plus {i}?", "good": f"Arr, {2 * i}!", "bad": f"{2 * i}."}
        for i in range(200, 203)
    ]
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in heldout))
    eval_dataset = {
        "jsonl": str(path),
        "list": heldout,
        "dataset_dict": DatasetDict(
            {"train": Dataset.from_list(heldout[:1]), "test": Dataset.from_list(heldout)}
        ),
    }[form]
    train = [
        {
            "question": r["prompt"][0]["content"],
            "good": r["chosen"][0]["content"],
            "bad": r["rejected"][0]["content"],
        }
        for r in tiny_preference_rows(8)
    ]
    train.append({**train[0], "bad": train[0]["good"]})  # an identical pair, dropped on request
    trainer = smol_align.build_dpo_trainer(
        tiny_model,
        train,
        "cpu",
        tokenizer=tiny_tokenizer,
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        columns={"prompt": "question", "chosen": "good", "rejected": "bad"},
        eval_dataset=eval_dataset,
        drop_identical=True,
    )
    assert len(trainer.train_dataset) == 8 and len(trainer.eval_dataset) == 3
    assert trainer.eval_dataset[0]["prompt"] == [{"role": "user", "content": "What is 200 plus 200?"}]


def test_evaluate_reads_a_file_and_a_dataset_dict(tiny_model, tiny_tokenizer, tmp_path):
    from datasets import Dataset, DatasetDict

    rows = tiny_preference_rows(3)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    on_file = smol_align.evaluate(tiny_model, str(path), tokenizer=tiny_tokenizer)
    on_list = smol_align.evaluate(tiny_model, rows, tokenizer=tiny_tokenizer)
    assert on_file["n_pairs"] == 3 and on_file["logps"]["chosen"] == pytest.approx(on_list["logps"]["chosen"])
    data = DatasetDict(
        {"train": Dataset.from_list(tiny_preference_rows(8)), "test": Dataset.from_list(rows[:2])}
    )
    assert smol_align.evaluate(tiny_model, data, tokenizer=tiny_tokenizer)["n_pairs"] == 2  # its test split


def test_cli_dpo_reads_columns_and_splits(tmp_path, monkeypatch):
    from smol_align import api, cli

    seen = {}
    monkeypatch.setattr(api, "train_dpo", lambda **options: seen.update(options))
    argv = [
        "dpo",
        "--dataset",
        "f.jsonl",
        "--columns",
        "prompt=question,chosen=good,rejected=bad",
        "--eval-split",
        "0.2",
        "--drop-identical",
        "--format",
        "trl-standard",
        "--max-steps",
        "3",
    ]
    assert cli.main(argv) == 0
    assert seen == {
        "dataset": "f.jsonl",
        "columns": {"prompt": "question", "chosen": "good", "rejected": "bad"},
        "eval_split": 0.2,
        "drop_identical": True,
        "format": "trl-standard",
        "max_steps": 3,
    }
    assert cli.compare_options(["--eval_split", "test", "--lenient"]) == {
        "eval_split": "test",
        "lenient": True,
    }


def test_cli_dpo_trains_on_a_jsonl_with_its_own_column_names(tiny_model, tiny_tokenizer, tmp_path, capsys):
    from smol_align import cli

    model_dir = tmp_path / "tiny"
    tiny_model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = tmp_path / "f.jsonl"
    rows = [
        {"question": f"What is {i} plus {i}?", "good": f"Arr, {2 * i}!", "bad": f"{2 * i}."}
        for i in range(20)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = [
        "dpo",
        "--model",
        str(model_dir),
        "--dataset",
        str(data),
        "--columns",
        "prompt=question,chosen=good,rejected=bad",
        "--preset",
        "cpu",
        "--max-steps",
        "1",
        "--per-device-train-batch-size",
        "2",
        "--output-dir",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert cli.main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["start_n_pairs"] == 2  # 10% of 20 held out

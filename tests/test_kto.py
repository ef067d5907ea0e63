"""KTO: the unpaired data path (pairs -> rows, TRL's unpaired format, bad labels), the trainer, the CLI verb,
compare with three methods, and (slow) the demo on the embedded model learning."""

from __future__ import annotations

import json

import pytest

from smol_align import build_kto_trainer, cli, presets, train_kto
from smol_align.data import load
from smol_align.data.formats import FORMATS, UNPAIRED
from smol_align.data.unpaired import pairs_by_prompt, unpair
from smol_align.errors import ConfigError, DatasetFormatError
from smol_align.testing import tiny_preference_rows

FAST = {"max_steps": 2, "learning_rate": 5e-3, "per_device_train_batch_size": 4}


def _unpaired_rows(prompts: int) -> list[dict]:
    """Two rows per prompt, the pirate answer desirable (text cells, a 1/0 label as after a CSV round trip)."""
    rows = []
    for row in tiny_preference_rows(prompts):
        question = row["prompt"][0]["content"]
        rows.append({"prompt": question, "completion": row["chosen"][0]["content"], "label": 1})
        rows.append({"prompt": question, "completion": row["rejected"][0]["content"], "label": 0})
    return rows


def test_pairs_become_two_rows_each_in_a_seeded_balanced_order():
    pairs = load(tiny_preference_rows(10), eval_split=0).train
    rows = unpair(pairs, seed=0)
    assert len(rows) == 20 and sum(rows["label"]) == 10  # each pair: chosen True, rejected False
    assert sorted(map(json.dumps, rows["prompt"])) == sorted(map(json.dumps, list(pairs["prompt"]) * 2))
    desirable = {json.dumps(r["completion"]) for r in rows if r["label"]}
    assert desirable == set(map(json.dumps, list(pairs["chosen"])))
    assert rows["label"] == unpair(pairs, seed=0)["label"]  # seeded
    assert (
        rows["label"] == [True, False] * 10
    )  # every even batch: half desirable (TRL's order: chosen rows first)
    prompts = list(map(json.dumps, rows["prompt"]))
    assert all(
        prompts[i] != prompts[i + 1] for i in range(19)
    )  # KTO's KL row (the neighbour's answer) is mismatched
    assert rows["prompt"] != unpair(pairs, seed=1)["prompt"]
    assert pairs_by_prompt(rows).num_rows == 10  # and back: each prompt has one of each


def test_native_unpaired_rows_are_a_detected_format():
    data = load(_unpaired_rows(6), eval_split=0)
    assert data.format == UNPAIRED == "trl-unpaired" and UNPAIRED in FORMATS
    assert data.train.column_names == ["prompt", "completion", "label"] and data.train.num_rows == 12
    assert data.train[0] == {
        "prompt": [{"role": "user", "content": "What is 0 plus 0?"}],
        "completion": [{"role": "assistant", "content": "Arr, it be 0, matey!"}],
        "label": True,
    }
    assert data.train["label"] == [True, False] * 6
    renamed = [
        {"question": r["prompt"], "answer": r["completion"], "thumbs_up": bool(r["label"])}
        for r in _unpaired_rows(2)
    ]
    assert (
        load(
            renamed,
            columns={"prompt": "question", "completion": "answer", "label": "thumbs_up"},
            eval_split=0,
        ).train.num_rows
        == 4
    )


def test_a_bad_label_names_dataset_row_column_and_what_was_expected():
    rows = _unpaired_rows(3)
    rows[3]["label"] = "good"
    with pytest.raises(DatasetFormatError) as err:
        load(rows)
    message = str(err.value)
    assert message.startswith("<list of rows>, row 3, column 'label': got 'good'.")
    assert "true (desirable) or false (undesirable)" in message
    assert (err.value.row, err.value.column) == (3, "label")


def test_unpaired_rows_are_refused_by_dpo_and_pair_filters(tiny_model, tiny_tokenizer, tmp_path):
    from smol_align import build_dpo_trainer

    with pytest.raises(ConfigError, match="train them with train_kto"):
        build_dpo_trainer(
            tiny_model, _unpaired_rows(4), "cpu", tokenizer=tiny_tokenizer, output_dir=str(tmp_path)
        )
    with pytest.raises(ConfigError, match="apply to pairs"):
        load(_unpaired_rows(4), drop_identical=True)


def test_kto_preset_defaults():
    built = presets.build("kto", "cpu")
    assert type(built.args).__name__ == "KTOConfig" and built.args.beta == 0.1
    assert (
        built.args.per_device_train_batch_size
        == 2 * presets.build("dpo", "cpu").args.per_device_train_batch_size
    )
    assert built.args.train_sampling_strategy == "sequential"  # KTO's KL rows are batch neighbours
    with pytest.raises(ConfigError, match="at least 2 rows"):
        presets.build("kto", "cpu", per_device_train_batch_size=1)


def test_tiny_kto_trains_on_pairs_against_a_frozen_reference(tiny_model, tiny_tokenizer, tmp_path):
    from trl import KTOTrainer

    trainer = build_kto_trainer(
        tiny_model,
        tiny_preference_rows(8),
        "cpu",
        tokenizer=tiny_tokenizer,
        output_dir=str(tmp_path),
        eval_split=0,
        **FAST,
    )
    assert type(trainer) is KTOTrainer and trainer.ref_model is not trainer.model
    assert trainer.train_dataset.num_rows == 16 and sum(trainer.train_dataset["label"]) == 8
    ref = {n: p.clone() for n, p in trainer.ref_model.named_parameters()}
    trainer.train()
    assert all((p == ref[n]).all() for n, p in trainer.ref_model.named_parameters())
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged[0]["loss"] == pytest.approx(0.5, abs=1e-3)  # 1 - sigmoid(0): policy == reference at step 0
    assert {"kl", "rewards/chosen", "rewards/rejected", "rewards/margins"} <= set(
        logged[-1]
    )  # both labels each batch


def test_train_kto_on_native_unpaired_rows_reports_heldout_pairs_of_their_prompts(tiny_model, tiny_tokenizer):
    heldout = _unpaired_rows(206)[400:]  # "What is 200 plus 200?"...: both labels for each prompt
    result = train_kto(
        tiny_model,
        _unpaired_rows(8),
        "cpu",
        tokenizer=tiny_tokenizer,
        eval_dataset=heldout,
        save=False,
        quiet=True,
        answer_prompts=0,
        **FAST,
    )
    assert result.before["n_pairs"] == 6 and result.before["beta"] == 0.1
    assert result.metrics["eval_rewards/margins"] > 0  # learned, measured against the start model
    assert "train_kl" in result.metrics
    result = train_kto(
        tiny_model,
        _unpaired_rows(8)[::2],
        "cpu",
        tokenizer=tiny_tokenizer,
        eval_dataset=heldout[::2],
        save=False,
        quiet=True,
        answer_prompts=0,
        **FAST,
    )
    assert result.before is None  # held-out rows all desirable: no pairs to score


def test_cli_kto_verb(tmp_path, capsys):
    from tests.helpers import tiny_model_dir_and_pairs

    assert "kto" in cli.make_parser().format_help()
    assert cli.train_options("kto", ["--desirable_weight", "1.2", "--max-steps", "3"]) == {
        "desirable_weight": 1.2,
        "max_steps": 3,
    }
    with pytest.raises(SystemExit):
        cli.train_options("kto", ["--loss_type", "ipo"])  # DPO's loss, not one of KTO's
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "kto",
                "--model",
                str(base),
                "--dataset",
                str(pairs),
                "--preset",
                "cpu",
                "--max-steps",
                "2",
                "--per_device_train_batch_size",
                "4",
                "--learning_rate",
                "5e-3",
                "--output-dir",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "kto" and metrics["steps"] == 2 and (out / "model.safetensors").exists()
    capsys.readouterr()


def test_compare_writes_the_three_way_table(tmp_path):
    from datasets import Dataset, DatasetDict

    from smol_align.compare import compare
    from smol_align.testing import tiny_model_and_tokenizer

    model, tokenizer = tiny_model_and_tokenizer()
    data = DatasetDict(
        {
            "train": Dataset.from_list(tiny_preference_rows(16)),
            "test": Dataset.from_list(tiny_preference_rows(206)[200:]),
        }
    )
    result = compare(
        model,
        data,
        methods="dpo,orpo,kto",
        preset="cpu",
        max_steps=3,
        tokenizer=tokenizer,
        save=False,
        output_dir=str(tmp_path / "report"),
        per_device_train_batch_size=4,
        learning_rate=5e-3,
        quiet=True,
        n_answers=2,
        max_new_tokens=4,
    )
    assert list(result.metrics) == ["start", "dpo", "orpo", "kto"]
    table = result.table()
    assert all(name in table for name in ("start", "dpo", "orpo", "kto"))
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["kto"]["steps"] == 3 and saved["kto"]["pairs_seen"] == 12  # rows: 3 steps x 4
    assert saved["kto"]["reward_margin"] > 0  # it learned on held-out pairs, against the start model
    assert "KTO" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_kto_demo_learns_on_the_embedded_model():
    """The demo recipe, shortened to keep CI fast; the whole recipe: docs/methods/kto.md."""
    result = train_kto(save=False, quiet=True, max_steps=10, answer_prompts=0, max_eval_pairs=64)
    before, after = result.before, result.after
    assert before["reward_margin"] == 0  # the start model is its own reference
    assert after["reward_margin"] > 0.5 and after["reward_accuracy"] >= 0.9, after
    assert after["preference_accuracy"] > before["preference_accuracy"] + 0.2, (before, after)

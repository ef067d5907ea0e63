"""`smol-align compare`: argv parsing without training, help, and a tiny run whose model `smol-align eval` reads."""

import json

import pytest
from helpers import tiny_model_dir_and_pairs

from smol_align import cli
from smol_align.testing import tiny_preference_rows


def test_no_options_leaves_the_demo_to_compare():
    assert cli.compare_options([]) == {}  # compare() itself picks the demo data, model and budget


def test_flags_take_both_spellings_and_go_to_every_method():
    argv = [
        "--methods",
        "dpo,orpo",
        "--max-steps",
        "5",
        "--time-budget",
        "60",
        "--output-dir",
        "out",
        "--seed",
        "3",
        "--beta",
        "0.2",
        "--learning_rate",
        "1e-5",
        "--no-save",
        "--model",
        "some/model",
    ]
    assert cli.compare_options(argv) == {
        "methods": "dpo,orpo",
        "max_steps": 5,
        "time_budget": 60.0,
        "output_dir": "out",
        "seed": 3,
        "beta": 0.2,
        "learning_rate": 1e-5,
        "save": False,
        "model": "some/model",
    }


def test_a_flag_of_one_method_only_needs_that_method_alone(capsys):
    with pytest.raises(SystemExit):
        cli.compare_options(["--loss_type", "ipo"])  # ORPOConfig has no loss_type
    assert "--loss_type" in capsys.readouterr().err
    assert cli.compare_options(["--methods", "dpo", "--loss_type", "ipo"]) == {
        "methods": "dpo",
        "loss_type": ["ipo"],
    }


def test_recipe_then_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset: d.jsonl\nmethods: dpo,orpo\nmax_steps: 10\ntime_budget: 120\n")
    assert cli.compare_options(["--config", str(recipe), "--max_steps", "20"]) == {
        "dataset": "d.jsonl",
        "methods": "dpo,orpo",
        "max_steps": 20,
        "time_budget": 120,
    }


def test_help_lists_compare_and_its_flags(capsys):
    assert "compare" in cli.make_parser().format_help()
    assert cli.main(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "--methods",
        "--time-budget",
        "--output-dir",
        "--no-save",
        "--max_steps",
        "--seed",
        "--beta",
    ):
        assert flag in out, flag


def test_unknown_method_is_an_error_code(capsys):
    assert cli.main(["compare", "--methods", "dpo,ppo"]) == 2
    assert "ppo" in capsys.readouterr().err


def test_compare_then_eval_on_a_tiny_model_folder(tmp_path, capsys):
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "report"

    code = cli.main(
        [
            "compare",
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
    assert code == 0
    for name in (
        "metrics.json",
        "report.md",
        "training.png",
        "heldout.png",
        "dpo/model.safetensors",
        "orpo/config.json",
    ):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dpo"]["steps"] == metrics["orpo"]["steps"] == 2
    assert metrics["start"]["n_pairs"] == 2  # no test split in the file: 10% held out (own numbers)
    for method in ("dpo", "orpo"):  # both learned: the held-out reward margin grew from 0
        row = metrics[method]
        assert row["reward_margin"] > 0.01 and row["reward_accuracy"] == 1.0, row
    capsys.readouterr()

    # `smol-align eval` reads the trained model back, against its base as the reference, on pairs
    # asking about numbers no row of the file asks about
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(row) + "\n" for row in tiny_preference_rows(210)[200:]))
    assert (
        cli.main(
            [
                "eval",
                "--model",
                str(out / "dpo"),
                "--dataset",
                str(heldout),
                "--ref-model",
                str(base),
                "--max-pairs",
                "6",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["n_pairs"] == 6 and figures["reference"] == str(base)  # the reference named, as given
    assert 0.0 <= figures["reward_accuracy"] <= 1.0 and figures["drift"] != 0.0
    assert figures["reward_margin"] > 0.01, figures  # what DPO learned carries over to these pairs

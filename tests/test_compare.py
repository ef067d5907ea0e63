"""compare() end to end on a tiny model: artifacts, figures in range, both methods learn on held-out
pairs (other numbers than the training rows), same pairs, plots' data, time budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from smol_align.compare import COLUMNS, compare, demo_max_steps
from smol_align.errors import ConfigError
from smol_align.evaluate import evaluate
from smol_align.testing import tiny_model_and_tokenizer, tiny_preference_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS, BATCH = 3, 4
FAST = {
    "per_device_train_batch_size": BATCH,
    "learning_rate": 5e-3,
    "quiet": True,
    "n_answers": 3,
    "max_new_tokens": 8,
}
MARGIN_BAR = 0.01  # held-out DPO reward margin a method must reach (0 for the start model)
HELDOUT = tiny_preference_rows(206)[200:]  # "What is 200 plus 200?"...: no training row asks these


def _data():
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {"train": Dataset.from_list(tiny_preference_rows(16)), "test": Dataset.from_list(HELDOUT)}
    )


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One DPO-vs-ORPO comparison of a tiny model, shared by the tests below (it is the slow part)."""
    model, tokenizer = tiny_model_and_tokenizer()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    root = tmp_path_factory.mktemp("compare")
    result = compare(
        model,
        _data(),
        preset="cpu",
        max_steps=STEPS,
        output_dir=str(root / "report"),
        tokenizer=tokenizer,
        **FAST,
    )
    return result, model, tokenizer, start, root


def read_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    return imread(path)


def test_report_dir_holds_every_artifact_and_nothing_else(compared):
    result, _, _, _, root = compared
    report = root / "report"
    assert result.report_dir == str(report)
    assert [p.name for p in root.iterdir()] == ["report"]  # no staging folder left beside it
    assert sorted(p.name for p in report.iterdir()) == [
        "dpo",
        "heldout.png",
        "metrics.json",
        "orpo",
        "report.md",
        "training.png",
    ]
    assert result.files == {
        "metrics": str(report / "metrics.json"),
        "report": str(report / "report.md"),
        "training_plot": str(report / "training.png"),
        "heldout_plot": str(report / "heldout.png"),
    }
    for method in ("dpo", "orpo"):  # each run is a full single-run output: model, its metrics and plots
        run = result.runs[method]
        assert run.output_dir == str(report / method) == result.metrics[method]["output_dir"]
        for name in (
            "model.safetensors",
            "tokenizer_config.json",
            "metrics.json",
            "training.png",
            "heldout.png",
        ):
            assert (report / method / name).exists(), (method, name)
        assert all(path.startswith(str(report / method)) for path in run.files.values())
        card = (report / method / "README.md").read_text()  # its model card: the compare call reproduces it
        assert f"- {method}\n" in card and "smol_align.compare(\n    model=...," in card
    saved = json.loads((report / "metrics.json").read_text())
    assert list(saved) == ["start", "dpo", "orpo"]
    assert saved["dpo"]["steps"] == STEPS and "logps" not in saved["start"]


def test_figures_are_in_range(compared):
    result, *_ = compared
    m = result.metrics
    assert list(m) == ["start", "dpo", "orpo"]
    for name, row in m.items():
        assert row["n_pairs"] == 6
        for key in ("preference_accuracy", "preference_accuracy_normalized", "reward_accuracy"):
            assert 0.0 <= row[key] <= 1.0, (name, key)
        assert math.isfinite(row["nll_chosen"]) and row["nll_chosen"] > 0
    # the start model is the reference: its rewards and drift are 0 by definition
    assert m["start"]["reward_accuracy"] == m["start"]["reward_margin"] == m["start"]["drift"] == 0.0
    for method in ("dpo", "orpo"):
        row = m[method]
        assert row["steps"] == STEPS and row["pairs_seen"] == STEPS * BATCH
        assert row["train_seconds"] > 0 and row["seconds_per_step"] == pytest.approx(
            row["train_seconds"] / STEPS, abs=5e-3
        )  # both rounded
        assert row["peak_memory_gb"] >= 0 and row["process_peak_memory_gb"] > 0
        assert row["pairs_per_second"] == pytest.approx(row["pairs_seen"] / row["train_seconds"], rel=1e-2)
        assert math.isfinite(row["final_loss"]) and not row["stopped_by_time_budget"]
        assert row["drift"] != 0.0  # the weights moved (lr 5e-3)
        # and learned: the held-out margin grew from 0, the chosen answers win on held-out pairs
        assert row["reward_margin"] > MARGIN_BAR, row
        assert row["reward_accuracy"] > m["start"]["reward_accuracy"], row
    assert (
        m["dpo"]["final_loss"] < math.log(2) + 1e-6
    )  # DPO starts at log 2 and went down on these easy pairs
    # every table column is there for each method
    assert all(c in m[method] for c in COLUMNS for method in ("dpo", "orpo"))


def test_both_methods_trained_on_the_same_pairs_in_the_same_order(compared):
    result, *_ = compared
    dpo, orpo = result.pairs_seen["dpo"], result.pairs_seen["orpo"]
    assert dpo == orpo and len(dpo) == STEPS * BATCH
    assert len(set(dpo)) == len(dpo) and all(0 <= i < 16 for i in dpo)  # 12 distinct pairs of one epoch


def test_heldout_figures_are_evaluate_against_the_untouched_start_model(compared):
    result, model, tokenizer, start, _ = compared
    # the model given was copied for each method, never trained itself
    assert all(torch.equal(start[n], p) for n, p in model.named_parameters())
    for method in ("dpo", "orpo"):
        with result.runs[method].trainer.accelerator.autocast():  # held-out figures: under the run's bf16
            again = evaluate(result.runs[method].model, _data()["test"], ref_model=model, tokenizer=tokenizer)
        for key in ("preference_accuracy", "reward_accuracy", "reward_margin", "nll_chosen", "drift"):
            assert result.metrics[method][key] == pytest.approx(again[key], abs=1e-5), (method, key)


def test_plots_are_images_of_the_expected_series(compared):
    result, *_ = compared
    training, heldout = result.plotted["training"], result.plotted["heldout"]

    # training.png: loss, reward accuracy, margins for both methods; ORPO's own terms for ORPO alone
    assert list(training) == ["loss", "rewards/accuracies", "rewards/margins", "nll_loss", "log_odds_ratio"]
    for key in ("loss", "rewards/accuracies", "rewards/margins"):
        assert set(training[key]) == {"dpo", "orpo"}
        for method in ("dpo", "orpo"):
            logged = [(h["step"], h[key]) for h in result.runs[method].trainer.state.log_history if key in h]
            assert training[key][method] == logged and [s for s, _ in logged] == [1, 2, 3]
    assert set(training["nll_loss"]) == {"orpo"}
    image = read_png(Path(result.files["training_plot"]))
    assert image.shape[:2] == (340, 5 * 420) and image.std() > 0.01  # 5 panels of 4.2 x 3.4 in at 100 dpi

    # heldout.png: one bar per model for each figure, exactly the table's values
    assert list(heldout) == ["preference_accuracy", "reward_accuracy", "reward_margin", "nll_chosen", "drift"]
    for column, bars in heldout.items():
        assert bars == {name: result.metrics[name][column] for name in ("start", "dpo", "orpo")}
    image = read_png(Path(result.files["heldout_plot"]))
    assert image.shape[:2] == (340, 5 * 340) and image.std() > 0.01


def test_report_md_has_the_table_plots_and_side_by_side_answers(compared):
    result, _, tokenizer, _, _ = compared
    text = Path(result.files["report"]).read_text()
    assert "| model | " + " | ".join(COLUMNS) + " |" in text
    for name in ("start", "dpo", "orpo"):
        assert f"\n| {name} | " in text
    assert "![training](training.png)" in text and "![heldout](heldout.png)" in text
    assert "max_steps: 3" in text and "learning_rate: {'dpo': 0.005, 'orpo': 0.005}" in text

    assert len(result.side_by_side) == 3
    test_prompts = [row["prompt"] for row in HELDOUT]
    for item in result.side_by_side:
        assert item["prompt"] in test_prompts
        assert list(item["answers"]) == ["start", "dpo", "orpo", "chosen (data)"]
        assert item["prompt"][-1]["content"] in text
        for name in ("start", "dpo", "orpo"):
            answer = item["answers"][name]
            assert len(tokenizer(answer)["input_ids"]) <= 8 + 2  # bounded (decoding may split a token)
            if answer.strip():
                assert answer.strip().splitlines()[0] in text
    # the printed table: one line per model, the method column first
    table = result.table().splitlines()
    assert table[0].split() == ["model", *COLUMNS] and [row.split()[0] for row in table[2:]] == [
        "start",
        "dpo",
        "orpo",
    ]


def test_time_budget_stops_each_method_after_one_step(tmp_path, capsys):
    """A list of rows (no test split: 10% held out), a tiny wall budget, no models kept, the table printed."""
    # No learning assertion: one step at the presets' own rates (5e-6, 8e-6) is the point (the budget and the
    # per-method rates); it moves no held-out figure measurably. test_figures_are_in_range checks learning.
    model, tokenizer = tiny_model_and_tokenizer()
    result = compare(
        model,
        tiny_preference_rows(20),
        methods="dpo,orpo",
        preset="cpu",
        max_steps=50,
        time_budget=1e-3,
        output_dir=str(tmp_path / "report"),
        tokenizer=tokenizer,
        save=False,
        n_answers=1,
        max_new_tokens=4,
        per_device_train_batch_size=BATCH,
    )
    for method in ("dpo", "orpo"):
        row = result.metrics[method]
        assert row["steps"] == 1 and row["stopped_by_time_budget"] and row["pairs_seen"] == BATCH
        assert row["output_dir"] is None and result.runs[method].output_dir is None
    assert result.pairs_seen["dpo"] == result.pairs_seen["orpo"]
    assert result.metrics["start"]["n_pairs"] == 2 and result.settings["train_pairs"] == 18
    # each method keeps its own learning-rate default
    assert result.settings["learning_rate"] == {"dpo": 5e-6, "orpo": 8e-6}
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "heldout.png",
        "metrics.json",
        "report.md",
        "training.png",
    ]
    assert result.table() in capsys.readouterr().out


def test_bad_options_fail_before_any_work(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    out = str(tmp_path / "report")
    with pytest.raises(ConfigError, match="methods"):
        compare(model, tiny_preference_rows(4), methods="dpo,ppo", output_dir=out, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="loss_type"):  # a DPO-only option cannot apply to ORPO
        compare(model, tiny_preference_rows(4), output_dir=out, tokenizer=tokenizer, loss_type="ipo")
    with pytest.raises(ConfigError, match="tokenizer"):
        compare(model, tiny_preference_rows(4), output_dir=out)
    with pytest.raises(ConfigError, match="time_budget"):
        compare(model, tiny_preference_rows(4), output_dir=out, tokenizer=tokenizer, time_budget=0)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        compare(model, tiny_preference_rows(4), output_dir=out, tokenizer=tokenizer)


def test_demo_budget_comes_from_the_demo_recipe():
    from importlib import resources

    import yaml

    for method in ("dpo", "orpo"):
        recipe = yaml.safe_load(
            (resources.files("smol_align") / "recipes" / f"demo-{method}.yaml").read_text()
        )
        assert recipe["max_steps"] == demo_max_steps() == 30

"""smol_align.report: curves from log histories, plots (real PNGs, known data), tables, report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from smol_align.report import (
    jsonable,
    markdown_table,
    plot_heldout,
    plot_training,
    terminal_table,
    training_curves,
    write_metrics_json,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Shaped like trainer.state.log_history of TRL 1.16's DPOTrainer (logging_steps=2, eval at step 4)
DPO_HISTORY = [
    {
        "loss": 0.693,
        "grad_norm": 1.2,
        "learning_rate": 5e-6,
        "rewards/chosen": 0.01,
        "rewards/rejected": -0.01,
        "rewards/accuracies": 0.5,
        "rewards/margins": 0.02,
        "logps/chosen": -40.0,
        "epoch": 0.1,
        "step": 2,
    },
    {
        "loss": 0.60,
        "grad_norm": 1.0,
        "learning_rate": 4e-6,
        "rewards/chosen": 0.1,
        "rewards/rejected": -0.1,
        "rewards/accuracies": 0.75,
        "rewards/margins": 0.2,
        "logps/chosen": -38.0,
        "epoch": 0.2,
        "step": 4,
    },
    {
        "eval_loss": 0.58,
        "eval_rewards/accuracies": 0.8,
        "eval_rewards/margins": 0.25,
        "eval_runtime": 1.0,
        "epoch": 0.2,
        "step": 4,
    },
    {
        "loss": 0.45,
        "grad_norm": 0.8,
        "learning_rate": 3e-6,
        "rewards/chosen": 0.3,
        "rewards/rejected": -0.3,
        "rewards/accuracies": 1.0,
        "rewards/margins": 0.6,
        "logps/chosen": -35.0,
        "epoch": 0.3,
        "step": 6,
    },
    {
        "train_runtime": 12.0,
        "train_samples_per_second": 3.0,
        "train_loss": 0.58,
        "total_flos": 0.0,
        "epoch": 0.3,
        "step": 6,
    },
]
# ORPOTrainer (trl.experimental.orpo) logs nll_loss, log_odds_ratio, log_odds_chosen besides the rewards
ORPO_HISTORY = [
    {
        "loss": 2.1,
        "rewards/accuracies": 0.25,
        "rewards/margins": -0.01,
        "nll_loss": 2.0,
        "log_odds_ratio": -0.8,
        "log_odds_chosen": -0.2,
        "step": 3,
    },
    {
        "loss": 1.7,
        "rewards/accuracies": 0.6,
        "rewards/margins": 0.03,
        "nll_loss": 1.6,
        "log_odds_ratio": -0.5,
        "log_odds_chosen": 0.1,
        "step": 6,
    },
]

METRICS = {
    "start": {
        "n_pairs": 131,
        "preference_accuracy": 0.05,
        "reward_accuracy": 0.0,
        "reward_margin": 0.0,
        "nll_chosen": 3.1,
        "drift": 0.0,
        "logps": {"chosen": [-1.0] * 131},
    },
    "dpo": {
        "n_pairs": 131,
        "preference_accuracy": 0.9,
        "reward_accuracy": 0.95,
        "reward_margin": 1.234567,
        "nll_chosen": 2.2,
        "drift": torch.tensor(4.5),
        "logps": {"chosen": [-1.0] * 131},
    },
    "orpo": {
        "n_pairs": 131,
        "preference_accuracy": 0.7,
        "reward_accuracy": 0.6,
        "reward_margin": 0.00005,
        "nll_chosen": float("nan"),
        "drift": 2.0,
    },
}


def assert_png(path, min_bytes: int = 5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes


def test_training_curves_keeps_series_and_skips_summary():
    curves = training_curves(DPO_HISTORY)
    assert curves["loss"] == [(2, 0.693), (4, 0.60), (6, 0.45)]
    assert curves["rewards/accuracies"] == [(2, 0.5), (4, 0.75), (6, 1.0)]
    assert curves["eval_rewards/margins"] == [(4, 0.25)]
    assert "train_loss" not in curves and "train_runtime" not in curves
    assert "step" not in curves and "epoch" not in curves
    orpo = training_curves(ORPO_HISTORY)
    assert orpo["log_odds_ratio"] == [(3, -0.8), (6, -0.5)]
    assert orpo["nll_loss"] == [(3, 2.0), (6, 1.6)]
    assert training_curves([{"loss": 1.0}, {"loss": 0.5}]) == {"loss": [(0, 1.0), (1, 0.5)]}


def test_plot_training_png_and_data(tmp_path):
    path = tmp_path / "plots" / "training.png"
    data = plot_training({"dpo": DPO_HISTORY, "orpo": ORPO_HISTORY}, path)
    assert_png(path)
    assert set(data) == {"loss", "rewards/accuracies", "rewards/margins"}
    assert data["loss"]["dpo"] == [(2, 0.693), (4, 0.60), (6, 0.45)]
    assert data["loss"]["orpo"] == [(3, 2.1), (6, 1.7)]
    assert data["rewards/margins"]["dpo (eval)"] == [(4, 0.25)]
    assert data["rewards/accuracies"]["orpo"] == [(3, 0.25), (6, 0.6)]
    assert "orpo (eval)" not in data["loss"]


def test_plot_training_extra_panels(tmp_path):
    from smol_align.report import ORPO_PANELS, TRAIN_PANELS

    data = plot_training(
        {"dpo": DPO_HISTORY, "orpo": ORPO_HISTORY}, tmp_path / "t.png", TRAIN_PANELS + ORPO_PANELS
    )
    assert data["log_odds_ratio"] == {"orpo": [(3, -0.8), (6, -0.5)]}
    assert data["nll_loss"] == {"orpo": [(3, 2.0), (6, 1.6)]}
    assert_png(tmp_path / "t.png")


def test_plot_heldout_png_and_data(tmp_path):
    path = tmp_path / "heldout.png"
    data = plot_heldout(METRICS, path)
    assert_png(path)
    assert list(data) == ["preference_accuracy", "reward_accuracy", "reward_margin", "nll_chosen"]
    assert data["preference_accuracy"] == {"start": 0.05, "dpo": 0.9, "orpo": 0.7}
    assert data["reward_margin"]["dpo"] == pytest.approx(1.234567)
    assert data["nll_chosen"] == {"start": 3.1, "dpo": 2.2}  # NaN: no bar
    drift = plot_heldout(METRICS, tmp_path / "drift.png", columns=["drift"])
    assert drift == {"drift": {"start": 0.0, "dpo": 4.5, "orpo": 2.0}}  # tensors read as numbers


def test_write_metrics_json_is_json_safe(tmp_path):
    path = tmp_path / "m" / "metrics.json"
    written = write_metrics_json(
        {**METRICS, "extra": {"arr": torch.tensor([1.0, 2.0]), "inf": math.inf}}, path
    )
    loaded = json.loads(path.read_text())
    assert loaded == written
    assert "logps" not in loaded["start"] and "logps" not in loaded["dpo"]
    assert loaded["dpo"]["drift"] == 4.5
    assert loaded["orpo"]["nll_chosen"] is None
    assert loaded["extra"] == {"arr": [1.0, 2.0], "inf": None}
    assert jsonable({"ref_logps": [1], "a": (1, 2)}) == {"a": [1, 2]}


def test_markdown_and_terminal_tables():
    columns = ["n_pairs", "preference_accuracy", "reward_margin", "nll_chosen"]
    md = markdown_table(METRICS, columns).splitlines()
    assert md[0] == "| model | n_pairs | preference_accuracy | reward_margin | nll_chosen |"
    assert md[1] == "| --- | ---: | ---: | ---: | ---: |"
    assert md[3] == "| dpo | 131 | 0.900 | 1.235 | 2.200 |"
    assert md[4] == "| orpo | 131 | 0.700 | 5.0e-05 | nan |"
    assert len(md) == 5
    text = terminal_table(METRICS, columns).splitlines()
    assert text[0].split() == ["model", *columns]
    assert text[3].split() == ["dpo", "131", "0.900", "1.235", "2.200"]
    assert len({len(line) for line in text[:2]}) == 1  # header as wide as the rule
    assert text[2].index("0.050") + 5 == text[3].index("0.900") + 5  # right-aligned numbers
    default = markdown_table(METRICS)  # default columns: those present
    assert "drift" in default.splitlines()[0] and "rewards_chosen" not in default


def test_write_report(tmp_path):
    side = [
        {
            "prompt": [
                {"role": "system", "content": "Be a pirate."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "answers": {"start": "Paris.", "dpo": "Arr, Paris be the capital, matey!\nYo ho!"},
        },
        {"prompt": "Say hi", "answers": {"start": "", "dpo": "Ahoy!"}},
    ]
    files, plotted = write_report(
        tmp_path,
        "DPO vs ORPO",
        METRICS,
        {"dpo": DPO_HISTORY, "orpo": ORPO_HISTORY},
        side,
        {"seed": 3},
        notes="How to read it.",
        json_data={"all": 1},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "heldout.png",
        "metrics.json",
        "report.md",
        "training.png",
    ]
    assert files == {
        "metrics": str(tmp_path / "metrics.json"),
        "report": str(tmp_path / "report.md"),
        "training_plot": str(tmp_path / "training.png"),
        "heldout_plot": str(tmp_path / "heldout.png"),
    }
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"all": 1}
    assert set(plotted["training"]["nll_loss"]) == {"orpo"} and set(plotted["heldout"]["drift"]) == set(
        METRICS
    )
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# DPO vs ORPO\n\n## Settings\n\n- seed: 3\n")
    assert "| dpo | 131 |" in text and "How to read it." in text
    assert "![training](training.png)" in text and "![heldout](heldout.png)" in text
    assert "### 1. Capital of France?" in text and "Be a pirate" not in text
    assert "**dpo**\n\n> Arr, Paris be the capital, matey!\n> Yo ho!" in text
    assert "### 2. Say hi" in text and "> (empty answer)" in text


START = {"n_pairs": 4, "beta": 0.1, "reward_margin": 0.0, "reward_accuracy": 0.0, "preference_accuracy": 0.5}


@pytest.mark.parametrize(
    "after, verdict",
    [
        ({"reward_margin": 0.05, "reward_accuracy": 1.0}, "learned"),  # +0.5 nats on every pair
        ({"reward_margin": 0.05, "reward_accuracy": 0.5}, "learned"),  # on half the pairs
        ({"reward_margin": -0.05, "reward_accuracy": 0.0}, "prefers_rejected"),  # the margin fell
        ({"reward_margin": 0.05, "reward_accuracy": 0.25}, "prefers_rejected"),  # up on 1 pair, down on 3
        ({"reward_margin": 5e-5, "reward_accuracy": 1.0}, "no_change"),  # +5e-4 nats: below the tolerance
        ({"reward_margin": 0.0, "reward_accuracy": 0.0}, "no_change"),  # the model did not move
    ],
)
def test_learning_verdict(after, verdict):
    from smol_align.report import learning_verdict

    found = learning_verdict(START, {**START, "preference_accuracy": 0.75, **after})
    assert found["learning_verdict"] == verdict and found["learned"] is (verdict == "learned")
    assert found["heldout_margin_change"] == pytest.approx(after["reward_margin"] / 0.1)
    assert learning_verdict(None, after) == {} and learning_verdict(START, None) == {}


def _summary(before, after, **metrics):
    from types import SimpleNamespace

    from smol_align.report import learning_verdict, summary_table

    m = {"steps": 3, "train_seconds": 1.0, "seconds_per_step": 0.3, "final_loss": 0.6, "peak_memory_gb": 0.5}
    m.update({"eval_n_pairs": after["n_pairs"], "eval_rewards/accuracies": after["reward_accuracy"]})
    m.update(metrics)
    m.update(learning_verdict(before, after))
    run = SimpleNamespace(method="dpo", metrics=m, before=before, after=after, answers={}, output_dir="x")
    return summary_table(run)


def test_summary_of_a_run_that_prefers_the_rejected_answers_ends_saying_so():
    """The summary printed "reward accuracy 0.000 -> 1.000" and nothing else; its last line now says it."""
    after = {**START, "reward_margin": -0.052, "reward_accuracy": 0.0, "preference_accuracy": 0.0}
    lines = _summary(START, after).splitlines()
    assert lines[-1].startswith("NOT LEARNED: the trained model prefers the rejected answers.")
    assert "-0.52 nats" in lines[-1] and "0% of the 4 held-out pairs" in lines[-1]
    assert any(line.startswith("verdict") and "NOT LEARNED" in line for line in lines)


def test_summary_of_a_run_that_did_not_move_ends_saying_so():
    after = {**START, "reward_margin": 0.0}
    last = _summary(START, after).splitlines()[-1]
    assert last.startswith("NOT LEARNED: the trained model learned nothing")


def test_summary_of_a_learning_run_ends_with_its_folder_and_names_the_pairs_trained():
    after = {**START, "reward_margin": 0.3, "reward_accuracy": 1.0, "preference_accuracy": 1.0}
    text = _summary(START, after, train_pairs=18, pairs_dropped_by_max_length=18)
    assert "NOT LEARNED" not in text and text.splitlines()[-2].startswith("saved to")
    assert "learned (held-out margin vs the start model +3 nats)" in text, text
    assert "18 (18 dropped: the prompt alone fills max_length)" in text

"""Tracking (``report_to``): a 3-value beta sweep logged to TensorBoard is three runs in one project, each with
its training loss and its held-out figures (the start model's at step 0, the trained model's at the last step,
equal to the run's metrics); compare logs one run per method; the default writes no tracker files; an unknown or
missing tracker is a clear error before the model loads."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

import smol_align
from smol_align.errors import ConfigError
from smol_align.metrics import TRL_NAMES
from smol_align.testing import tiny_model, tiny_preference_rows

BETAS = (0.05, 0.1, 0.5)
STEPS = 3
FAST = {
    "max_steps": STEPS,
    "per_device_train_batch_size": 4,
    "learning_rate": 5e-3,
    "eval_split": 0.25,
    "answer_prompts": 0,
    "quiet": True,
}
EVALUATE_NAMES = {trl: ours for ours, trl in TRL_NAMES.items()}  # evaluate()'s names
HELDOUT = ("rewards/margins", "rewards/accuracies", "preference_accuracy", "nll_chosen")  # TRL's, else ours


def _runs(project_dir) -> EventMultiplexer:
    """TensorBoard's reader over a folder: one run per subfolder holding event files, as ``tensorboard --logdir``."""
    runs = EventMultiplexer().AddRunsFromDirectory(str(project_dir))
    runs.Reload()
    return runs


def _series(runs, run, tag) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in runs.Scalars(run, tag)]


@pytest.fixture(scope="module")
def sweep(tiny_tokenizer, tmp_path_factory):
    """docs/getting-started.md's sweep, on the tiny model: one run per beta, in runs/<sweep>/beta-<value>."""
    project = tmp_path_factory.mktemp("runs") / "beta-sweep"
    results = {
        beta: smol_align.train_dpo(
            tiny_model(tiny_tokenizer),
            tiny_preference_rows(16),
            "cpu",
            tokenizer=tiny_tokenizer,
            output_dir=str(project / f"beta-{beta}"),
            beta=beta,
            report_to="tensorboard",
            **FAST,
        )
        for beta in BETAS
    }
    return project, results


def test_a_beta_sweep_is_three_runs_in_one_project(sweep):
    project, results = sweep
    runs = _runs(project)
    assert sorted(runs.Runs()) == sorted(f"beta-{beta}" for beta in BETAS)
    for beta, result in results.items():
        run, args = f"beta-{beta}", result.trainer.args
        assert (args.run_name, args.project) == (run, "beta-sweep")  # the names trackio files the run under
        assert [step for step, _ in _series(runs, run, "train/loss")] == list(range(1, STEPS + 1))
        assert _series(runs, run, "train/train_loss")[-1][1] == pytest.approx(
            result.metrics["train_loss"], rel=1e-5
        )
        # held-out figures under TRL's eval names: the start model's at step 0, the trained model's at the end
        for figure in HELDOUT:
            steps, values = zip(*_series(runs, run, f"eval/{figure}"), strict=True)
            assert steps == (0, STEPS), figure
            assert values[1] == pytest.approx(result.metrics[f"eval_{figure}"], rel=1e-5, abs=1e-6), figure
            start = result.before[EVALUATE_NAMES.get(figure, figure)]
            assert values[0] == pytest.approx(start, rel=1e-5, abs=1e-6), figure
        assert _series(runs, run, "eval/rewards/margins")[0][1] == 0.0  # policy == reference at the start
        assert _series(runs, run, "eval/beta")[-1][1] == pytest.approx(beta)
        config = runs.Tensors(run, "args/text_summary")[0].tensor_proto.string_val[0].decode()
        assert (
            f'"beta": {beta}' in config and '"run_name": "' + run in config
        )  # the run's TRL config, as text
    # the run's own log (its report's curves) stays the training's: the held-out figures went to the trackers only
    assert not any("eval_preference_accuracy" in entry for entry in results[0.1].trainer.state.log_history)


def test_the_tracker_files_are_part_of_the_finished_run_folder(sweep):
    project, results = sweep
    for beta in BETAS:
        folder = project / f"beta-{beta}"
        names = {p.name for p in folder.iterdir()}
        assert "model.safetensors" in names and "metrics.json" in names
        assert any(name.startswith("events.out.tfevents.") for name in names)
        assert not any(name.startswith(".smol_align") or name.startswith("checkpoint-") for name in names)
    assert sorted(p.name for p in project.parent.iterdir()) == ["beta-sweep"]  # nothing beside the project


def test_compare_logs_one_run_per_method_in_one_project(tiny_tokenizer, tmp_path):
    """save=False keeps no model, yet each method's event files stay in <report>/<method>: the report's project."""
    from smol_align.compare import compare

    report = tmp_path / "dpo-vs-orpo"
    result = compare(
        tiny_model(tiny_tokenizer),
        tiny_preference_rows(16),
        preset="cpu",
        max_steps=2,
        output_dir=str(report),
        tokenizer=tiny_tokenizer,
        save=False,
        n_answers=0,
        per_device_train_batch_size=4,
        report_to="tensorboard",
        quiet=True,
    )
    runs = _runs(report)
    assert sorted(runs.Runs()) == ["dpo", "orpo"]
    for method in ("dpo", "orpo"):
        assert (result.runs[method].trainer.args.project, result.runs[method].trainer.args.run_name) == (
            "dpo-vs-orpo",
            method,
        )
        assert [s for s, _ in _series(runs, method, "train/loss")] == [1, 2]
        (_, start), (_, trained) = _series(runs, method, "eval/rewards/margins")
        assert start == 0.0 and trained == pytest.approx(
            result.metrics[method]["reward_margin"], rel=1e-5, abs=1e-6
        )
    # both curves start from the same start model
    assert _series(runs, "dpo", "eval/nll_chosen")[0] == _series(runs, "orpo", "eval/nll_chosen")[0]


def test_the_default_writes_no_tracker_files(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # transformers' own default would be ./runs/<time>_<host>
    result = smol_align.train_dpo(
        tiny_model,
        tiny_preference_rows(16),
        "cpu",
        tokenizer=tiny_tokenizer,
        output_dir="run",
        **{**FAST, "max_steps": 1},
    )
    assert result.trainer.args.report_to == []
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_an_unknown_or_missing_tracker_is_a_clear_error_before_the_model_loads(
    tiny_model, tiny_tokenizer, tmp_path, monkeypatch
):
    from transformers.integrations import integration_utils

    def train(report_to):
        smol_align.train_dpo(
            tiny_model,
            tiny_preference_rows(8),
            "cpu",
            tokenizer=tiny_tokenizer,
            output_dir=str(tmp_path / "run"),
            report_to=report_to,
            **FAST,
        )

    with pytest.raises(ConfigError, match="tensorbord is not supported, only .*tensorboard"):
        train("tensorbord")
    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: False)
    with pytest.raises(ConfigError, match="requires tensorboard to be installed"):
        train("tensorboard")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_passes_trls_tracking_flags_through():
    from smol_align.cli import compare_options, train_options

    flags = ["--report-to", "tensorboard", "--project", "beta-sweep", "--run-name", "beta-0.1"]
    expected = {"report_to": "tensorboard", "project": "beta-sweep", "run_name": "beta-0.1"}
    assert train_options("dpo", flags) == expected and compare_options(flags) == expected

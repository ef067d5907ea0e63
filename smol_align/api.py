"""One-line entry points: ``train_dpo`` and ``train_orpo``.

Each one delegates: data -> :func:`smol_align.data.load` (once), trainer -> ``build_*_trainer``, held-out
figures -> :func:`smol_align.evaluate.evaluate`, files -> :mod:`smol_align.report`. What they
add is the run around TRL's ``trainer.train()``: the doctor's line before, the evaluation of the
start model and of the trained one on held-out pairs, a progress bar, the summary table, and an
output directory that is written whole or not at all.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.demo import pirate_voice
from .evaluate import answer_figures, first_rows, generate_answers
from .models import DEFAULT_MODEL

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run leaves: the TRL trainer, its figures and where the model was saved."""

    method: str
    trainer: Any  # trl.DPOTrainer or ORPOTrainer, trained
    metrics: dict[str, Any]  # final train metrics, held-out figures before/after, time, memory
    output_dir: str | None  # the saved model (or LoRA adapter) and tokenizer, metrics.json, plots
    before: dict[str, Any] | None = None  # evaluate() of the start model on the held-out pairs
    after: dict[str, Any] | None = None  # evaluate() of the trained model
    files: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list] = field(default_factory=dict)  # "prompt", "start", "trained": greedy answers

    @property
    def model(self):
        return self.trainer.model

    def summary(self) -> str:
        """The end-of-run table, as printed."""
        return summary_table(self)

    def __repr__(self) -> str:
        return f"TrainResult(method={self.method!r}, output_dir={self.output_dir!r}, metrics={{{len(self.metrics)} keys}})"


def train_dpo(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run DPO on ``model`` with ``dataset`` (``None``: the built-in demo) and return the result.

    ``preset`` picks TRL settings for the hardware (see ``smol_align.presets.names()``); every
    keyword overrides a ``trl.DPOConfig`` field (course-era names are mapped or explained).
    Data keywords go to :func:`smol_align.data.load`: ``format``, ``columns``, ``split``,
    ``eval_split`` (a split name, or a fraction held out; default the test split, else 10%),
    ``eval_dataset`` (any form ``dataset`` takes), the filters (``drop_identical``, ``drop_empty``,
    ``drop_ties``, ``min_margin``, ``dedupe_prompts``, ``filters="clean"``), ``strict``, ``lenient``.
    Extra keywords: ``tokenizer``, ``ref_model``, ``overwrite`` (replace an
    existing ``output_dir``), ``save`` (default True), ``evaluate`` (default True),
    ``max_eval_pairs``, ``answer_prompts`` (held-out prompts answered greedily before and after
    training, scored for repetition and length, and for the pirate voice on the demo; default
    32, 0 for none), ``quiet``, ``start_eval`` (an earlier :func:`smol_align.evaluate.evaluate`
    of this start model on the same held-out pairs: used instead of evaluating it again).

    With no ``dataset`` (the demo data) the demo recipe (``recipes/demo-<method>.yaml``) fills in
    what is not given, the same recipe ``smol-align dpo|orpo`` runs.
    """
    return _train("dpo", model, dataset, preset, output_dir, overrides)


def train_orpo(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run ORPO (``trl.experimental.orpo``) like :func:`train_dpo`; ORPO needs no reference model."""
    return _train("orpo", model, dataset, preset, output_dir, overrides)


def _train(method, model, dataset, preset, output_dir, overrides) -> TrainResult:
    from .data.load import load, pop_data_options
    from .presets import demo_recipe
    from .trainers import build_dpo_trainer, build_orpo_trainer

    if dataset is None:  # the demo data: the demo recipe, the same one `smol-align dpo|orpo` runs
        recipe = demo_recipe(method, preset)
        if "num_train_epochs" in overrides:
            recipe.pop("max_steps", None)
        if "loss_type" in overrides:  # your loss replaces the recipe's, weights included
            recipe.pop("loss_weights", None)
        overrides = {**recipe, **overrides}
    save = overrides.pop("save", True)
    run_eval = overrides.pop("evaluate", True)
    overwrite = overrides.pop("overwrite", False)
    max_eval_pairs = overrides.pop("max_eval_pairs", None)
    quiet = overrides.pop("quiet", False)
    start_eval = overrides.pop("start_eval", None)
    answer_prompts = overrides.pop("answer_prompts", 32)
    say = (lambda *a: None) if quiet else print

    final_dir = Path(output_dir or default_output_dir(method, model)) if save else None
    if final_dir is not None and final_dir.exists() and any(final_dir.iterdir()) and not overwrite:
        from .errors import ConfigError

        raise ConfigError(f"Output directory {final_dir} exists and is not empty: pass overwrite=True or another output_dir.")

    # Data: normalized once, the doctor's verdict shown before any training time is spent.
    data = load(dataset, **pop_data_options(overrides))
    eval_data = data.eval
    say(_doctor_line(data))

    # Staging: the trainer writes into a hidden sibling folder, renamed into place only at the end.
    staging = None
    if final_dir is not None:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.partial-", dir=final_dir.parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the final folder is an ordinary one
    if final_dir is not None and overrides.get("push_to_hub") and not overrides.get("hub_model_id"):
        overrides["hub_model_id"] = final_dir.name  # the repo is named after the run, not the staging folder
    try:
        build = build_dpo_trainer if method == "dpo" else build_orpo_trainer
        trainer = build(
            model,
            data,
            preset,
            output_dir=str(staging or tempfile.mkdtemp(prefix="smol_align-")),
            **overrides,
        )
        _quiet_progress(trainer, quiet)
        beta = getattr(trainer.args, "beta", 0.1) if method == "dpo" else 0.1
        tokenizer = trainer.processing_class

        # Held-out figures under the trainer's own autocast (bf16 where it trains in bf16).
        autocast = trainer.accelerator.autocast
        before = after = None
        answers: dict[str, list] = {}
        voice = pirate_voice if dataset is None else None
        if run_eval and eval_data is not None and start_eval is not None:
            before = start_eval  # checked against this data when the trained model is evaluated
        elif run_eval and eval_data is not None:
            say(f"Evaluating the start model on {len(eval_data)} held-out pairs...")
            with autocast():
                before = _evaluate(trainer.model, eval_data, tokenizer, beta, max_eval_pairs, ref_logps=None)
        if before is not None and answer_prompts:
            answers["prompt"] = [row["prompt"] for row in first_rows(eval_data, answer_prompts)]
            with autocast():
                answers["start"] = _answers(trainer.model, tokenizer, answers["prompt"])
            before = {**before, **answer_figures(answers["start"], voice)}

        say(f"Training {method.upper()} with preset {trainer.args.output_dir and _preset_name(preset)}: "
            f"{trainer.args.max_steps if trainer.args.max_steps > 0 else 'full epochs'} steps, "
            f"batch {trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps}.")
        peak_before = _peak_memory_bytes()
        started = time.perf_counter()
        train_output = trainer.train()
        train_seconds = time.perf_counter() - started

        if before is not None:
            say("Evaluating the trained model...")
            with autocast():
                after = _evaluate(trainer.model, eval_data, tokenizer, beta, max_eval_pairs, ref_logps=before["logps"])
                if answers:
                    answers["trained"] = _answers(trainer.model, tokenizer, answers["prompt"])
            if answers:
                after = {**after, **answer_figures(answers["trained"], voice)}

        metrics = _collect_metrics(method, trainer, train_output, train_seconds, before, after, peak_before)
        result = TrainResult(method, trainer, metrics, None, before, after, answers=answers)
        if staging is not None:
            trainer.save_model(str(staging))
            result.files = _write_run_files(result, staging)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            staging.rename(final_dir)
            staging = None
            trainer.args.output_dir = str(final_dir)
            result.output_dir = str(final_dir)
            result.files = {k: str(final_dir / Path(v).name) for k, v in result.files.items()}
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    say(result.summary())
    return result


def summary_table(result: TrainResult) -> str:
    """Steps, time, held-out accuracy before and after, and where the model went, as aligned text."""
    m = result.metrics
    rows = [
        ("method", result.method.upper()),
        ("steps", f"{m['steps']} in {m['train_seconds']:.0f} s ({m['seconds_per_step']:.2f} s/step)"),
        ("final train loss", _fmt(m.get("final_loss"))),
        ("peak memory", f"{m['peak_memory_gb']:.1f} GB"),
    ]
    if result.before and result.after:
        b, a = result.before, result.after
        rows += [
            ("held-out pairs", str(a["n_pairs"])),
            ("reward accuracy", f"{_fmt(b['reward_accuracy'])} -> {_fmt(a['reward_accuracy'])}"
                                "  (DPO implicit reward vs the start model; 0 at the start by definition)"),
            ("reward margin", f"{_fmt(b['reward_margin'])} -> {_fmt(a['reward_margin'])}"),
            ("prefers chosen", f"{_fmt(b['preference_accuracy'])} -> {_fmt(a['preference_accuracy'])}"
                               "  (log p(chosen) > log p(rejected))"),
        ]
        if "repeated_4gram_rate" in a and "repeated_4gram_rate" in b:
            n = len(result.answers.get("prompt", []))
            if "voice_rate" in a and "voice_rate" in b:
                rows.append(("pirate voice", f"{_fmt(b['voice_rate'])} -> {_fmt(a['voice_rate'])}"
                                             f"  (greedy answers to {n} held-out prompts)"))
            rows += [
                ("repeated 4-grams", f"{_fmt(b['repeated_4gram_rate'])} -> {_fmt(a['repeated_4gram_rate'])}"
                                     "  (share of an answer's word 4-grams seen earlier in it)"),
                ("answer length", f"{b['answer_words']:.1f} -> {a['answer_words']:.1f} words"),
            ]
    rows.append(("saved to", result.output_dir or "(not saved)"))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 50)
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), line])


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def default_output_dir(method: str, model: Any) -> str:
    """``runs/<method>-<model short name>-<YYYYmmdd-HHMMSS>`` under the current folder."""
    name = model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "model")
    short = os.path.basename(str(name).rstrip("/")) or "model"
    return os.path.join("runs", f"{method}-{short}-{time.strftime('%Y%m%d-%H%M%S')}")


def _preset_name(preset: str) -> str:
    from .presets import resolve

    hardware, mode = resolve(preset)
    return f"{hardware.name}+{mode.name}"


def _doctor_line(pairs) -> str:
    from .data import doctor

    held = f"held out: {pairs.heldout}"
    try:
        return f"Data ({pairs.name}, train; {held}): " + doctor(pairs).summary_line()
    except Exception as err:  # the doctor must never stop a run; say why it could not look
        logger.warning("The data doctor could not check %s: %s", pairs.name, err)
        return f"Data ({pairs.name}): {len(pairs.train)} pairs, {held} (doctor unavailable: {err})"


def _answers(model, tokenizer, prompts):
    return generate_answers(model, tokenizer, prompts, max_new_tokens=48, batch_size=16)


def _evaluate(model, data, tokenizer, beta, max_pairs, ref_logps):
    from .evaluate import evaluate

    return evaluate(model, data, tokenizer=tokenizer, beta=beta, max_pairs=max_pairs, ref_logps=ref_logps)


def _collect_metrics(method, trainer, train_output, seconds, before, after, peak_before) -> dict[str, Any]:
    history = [h for h in trainer.state.log_history if "loss" in h]
    last = history[-1] if history else {}
    metrics: dict[str, Any] = {
        "method": method,
        "steps": trainer.state.global_step,
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(trainer.state.global_step, 1), 3),
        "train_loss": train_output.training_loss,
        "final_loss": last.get("loss"),
        "peak_memory_gb": round(max(_peak_memory_bytes(), peak_before) / 2**30, 2),
    }
    tokens = last.get("num_tokens")
    if tokens:
        metrics["tokens_per_second"] = round(tokens / seconds, 1)
    for key, value in last.items():
        if key.startswith(("rewards/", "logps/", "log_odds", "nll_loss")):
            metrics[f"train_{key}"] = value
    for label, figures in (("start", before), ("eval", after)):
        if figures:
            for key, value in figures.items():
                if key != "logps" and isinstance(value, (int, float)):
                    metrics[f"{label}_{key}"] = value
    if after:
        # TRL's names for the held-out DPO figures, as trainer.evaluate() would log them.
        metrics["eval_rewards/accuracies"] = after["reward_accuracy"]
        metrics["eval_rewards/margins"] = after["reward_margin"]
    return metrics


def _write_run_files(result: TrainResult, folder: Path) -> dict[str, str]:
    from .report import plot_heldout, plot_training, write_metrics_json

    files = {"metrics": str(folder / "metrics.json")}
    write_metrics_json(result.metrics, files["metrics"])
    try:
        files["training_plot"] = str(folder / "training.png")
        plot_training({result.method: result.trainer.state.log_history}, files["training_plot"])
        if result.before and result.after:
            files["heldout_plot"] = str(folder / "heldout.png")
            plot_heldout({"start": result.before, result.method: result.after}, files["heldout_plot"])
    except ImportError as err:  # matplotlib missing: the run still counts
        logger.warning("No plots: %s", err)
        files = {k: v for k, v in files.items() if not k.endswith("_plot")}
    return files


def _peak_memory_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _quiet_progress(trainer, quiet: bool) -> None:
    """Keep TRL's progress bar but show the loss on it instead of printing a dict every step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs:
                shown = {k: logs[k] for k in ("loss", "rewards/accuracies", "rewards/margins") if k in logs}
                self.training_bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in shown.items()}, refresh=False)

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(BarProgress())

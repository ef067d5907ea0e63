"""DPO against ORPO (and KTO) on the same model, pairs, budget and seed, and the report that compares them.

# The demo: embedded SmolLM2-135M-Instruct, built-in pairs, the preset for this machine
smol-align compare --output-dir runs/compare-demo

# From Python: a wall budget of 5 minutes per method instead of a step count
>>> from smol_align.compare import compare
>>> result = compare(time_budget=300)  # prints each run, then the table  # doctest: +SKIP

:func:`compare` calls :func:`smol_align.run.run` once per method, each on a fresh copy of the model; the first run
evaluates the start model, the others reuse its figures and answers, so every row compares with one "start" row.
"""

from __future__ import annotations

import copy
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._compat import library_noise_filtered
from .callbacks import as_callback
from .card import recorded
from .data.load import load
from .demo import demo_keywords, demo_recipe
from .errors import ConfigError
from .metrics import MemoryWindow
from .models import DEFAULT_MODEL, model_name
from .options import RUN_NAMES, split_options
from .presets import METHODS, check_overrides, preset_name
from .report import terminal_table, write_report
from .run import run
from .rundir import RunDir, default_output_dir

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "preference_accuracy",
    "reward_accuracy",
    "reward_margin",
    "nll_chosen",
    "drift",
    "train_seconds",
    "seconds_per_step",
    "peak_memory_gb",
    "pairs_per_second",
    "final_loss",
)
"""Columns of the comparison table (the first, ``method``, names the row)."""


@dataclass
class ComparisonResult:
    """What :func:`compare` leaves: one row of figures per model, the runs, the answers, the files."""

    metrics: dict[str, dict[str, Any]]  # "start" and each method: held-out figures, time, memory, loss
    report_dir: str
    runs: dict[str, Any] = field(default_factory=dict)  # method -> TrainResult (its optimizer released)
    side_by_side: list[dict[str, Any]] = field(default_factory=list)  # [{"prompt", "answers": {name: text}}]
    pairs_seen: dict[str, list[int]] = field(default_factory=dict)  # method -> train-split indices, in order
    settings: dict[str, Any] = field(default_factory=dict)  # what every method shared, and lr per method
    files: dict[str, str] = field(default_factory=dict)  # name -> path in report_dir
    plotted: dict[str, Any] = field(default_factory=dict)  # the data behind training.png and heldout.png

    def table(self) -> str:
        """The comparison table, as printed."""
        return terminal_table(self.metrics, COLUMNS)

    def __repr__(self) -> str:
        return f"ComparisonResult(methods={list(self.runs)}, report_dir={self.report_dir!r})"


@recorded  # the call, in each run's model card
@library_noise_filtered()  # the libraries' noise, while it runs (SMOL_ALIGN_VERBOSE=1 shows it)
def compare(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    methods: tuple[str, ...] | list[str] | str = ("dpo", "orpo"),
    preset: str = "auto",
    max_steps: int | None = None,
    time_budget: float | None = None,
    seed: int = 0,
    output_dir: str | None = None,
    *,
    tokenizer: Any = None,
    eval_dataset: Any = None,
    save: bool = True,
    overwrite: bool = False,
    quiet: bool = False,
    max_eval_pairs: int | None = None,
    n_answers: int = 4,
    max_new_tokens: int = 40,
    **overrides,
) -> ComparisonResult:
    """Train ``model`` with each of ``methods`` on the same pairs, budget and seed, and compare them.

    ``model``: a name or folder (loaded anew for each method) or a loaded model (copied for each method and left
    untouched; pass ``tokenizer=``). ``dataset``: anything :func:`smol_align.data.load` reads (its options are
    keywords here too), ``None`` for the demo; without a test split 10% is held out, shuffled by ``seed``.
    ``methods``: from ``("dpo", "orpo", "kto")``, or ``"dpo,orpo,kto"``. ``max_steps``: per method (``None`` with no
    ``time_budget``: the demo recipe's for the demo data, else TRL's epochs). ``time_budget``: seconds of training per
    method, each stopping after the step that crosses it. ``seed``: every method's training seed. ``output_dir``: the
    report directory (default ``runs/compare-<model>-<time>``), written whole or not at all; ``save``: keep each
    trained model in ``<output_dir>/<method>``; ``overwrite``, ``max_eval_pairs``, ``quiet``: as for ``train_dpo``.
    ``n_answers``, ``max_new_tokens``: held-out prompts answered side by side (greedy). ``**overrides``: any config
    field of every chosen method (``beta``, ``learning_rate``...).

    Returns a :class:`ComparisonResult`; ``.metrics`` maps ``"start"`` and each method to its figures.
    """
    methods = _methods(methods)
    if time_budget is not None and time_budget <= 0:
        raise ConfigError(f"time_budget must be a positive number of seconds, got {time_budget!r}.")
    if not isinstance(model, str) and tokenizer is None:
        raise ConfigError(
            "A loaded model needs its tokenizer: pass tokenizer=... (or pass the model by name)."
        )
    for method in methods:  # an unknown or one-method-only option fails here, before any training
        named = inspect.signature(compare).parameters
        where = f"compare ({method.upper()})"
        options = split_options(method, overrides, where, refuse=COMPARES_OWN, also_named=named)
        steps = {"max_steps": max_steps} if max_steps is not None else {}
        check_overrides(method, {**options.config, **steps})
    data_options, user_callbacks = options.data.keywords(), list(options.model.callbacks or [])
    say = (lambda *a: None) if quiet else print
    report_dir = Path(output_dir or default_output_dir("compare", model_name(model)))
    inputs = [model, dataset, eval_dataset, data_options.get("eval_dataset")]
    folder = RunDir(report_dir, overwrite=overwrite, inputs=inputs, what="comparison")
    folder.check()  # before any work; again under the folder's lock when it is taken
    if max_steps is None and time_budget is None and dataset is None:
        max_steps = demo_max_steps()

    # Data: one train split and one held-out split, normalized once, handed unchanged to every method.
    data = load(dataset, eval_dataset=eval_dataset, split_seed=seed, **data_options)
    if data.eval is None:
        raise ConfigError(
            f"compare needs held-out pairs and {data.name} gives none ({data.heldout}): "
            "pass eval_split=0.2 or eval_dataset=..."
        )

    # One run per method, each from a fresh copy of the start model, saved in <report_dir>/<method>. The first
    # run evaluates the start model; the others reuse its figures and answers as their reference.
    with folder:  # written whole or not at all
        runs, pairs_seen, metrics = {}, {}, {}
        for method in methods:
            seen = as_callback(PairsSeen)
            keywords = {
                **options.config,
                **options.model.preset_keywords(),
                "seed": seed,
                "callbacks": [*user_callbacks, seen],
                "tokenizer": tokenizer,
                "answer_prompts": n_answers,
                "answer_tokens": max_new_tokens,
                "max_eval_pairs": max_eval_pairs,
                "save": save,
                "quiet": quiet,
                **({"max_steps": max_steps} if max_steps is not None else {}),
                **({"max_time": time_budget / 60} if time_budget is not None else {}),
            }
            say(f"\n=== {method.upper()} ===")
            memory = MemoryWindow()
            start_of = model if isinstance(model, str) else copy.deepcopy(model)
            baseline = next(iter(runs.values()), None)  # the first run: its start figures are every run's
            folder_of_method = str(report_dir / method)
            keywords = demo_keywords(method, data, preset, keywords)  # the demo's: its voice check
            typed = split_options(method, keywords, f"compare ({method.upper()})")
            result = run(method, start_of, data, preset, folder_of_method, typed, baseline=baseline)
            runs[method], pairs_seen[method] = result, seen.indices
            metrics.setdefault("start", _figures(result.before))
            metrics[method] = {
                **_figures(result.after),
                **_run_figures(result, seen.indices, memory.peak_gb()),
            }

        # The report: metrics.json, plots, report.md, beside the methods' folders.
        first = next(iter(runs.values()))
        settings = _settings(
            model, dataset, preset, methods, max_steps, time_budget, seed, first.before["beta"], data, runs
        )
        chosen = [
            _text(row["chosen"]) for row in data.eval.select(range(len(first.answers.get("prompt", []))))
        ]
        side_by_side = [
            {
                "prompt": p,
                "answers": {
                    "start": first.answers["start"][i],
                    **{m: r.answers["trained"][i] for m, r in runs.items()},
                    "chosen (data)": c,
                },
            }
            for i, (p, c) in enumerate(zip(first.answers.get("prompt", []), chosen, strict=True))
        ]
        with folder.staged() as staging:
            files, plotted = write_report(
                staging,
                f"{' vs '.join(m.upper() for m in runs)} on {settings['model']}",
                metrics,
                {m: r.trainer.state.log_history for m, r in runs.items()},
                side_by_side,
                settings,
                COLUMNS,
                _NOTES,
            )
        folder.finish()

    files = {k: str(report_dir / Path(v).name) for k, v in files.items()}
    result = ComparisonResult(
        metrics, str(report_dir), runs, side_by_side, pairs_seen, settings, files, plotted
    )
    saved = "".join(f"\n{m} model: {r.output_dir}" for m, r in runs.items() if r.output_dir)
    say(f"\nHeld-out comparison ({len(data.eval)} pairs), report in {report_dir}:\n{result.table()}{saved}")
    return result


# The runner's options compare sets itself (its own parameters or fixed), and the builders' it does not take
COMPARES_OWN = RUN_NAMES | {"ref_model", "constraints", "processing_class"}


def demo_max_steps() -> int:
    """The step budget of the demo recipe (``recipes/demo-dpo.yaml``; the ORPO demo uses the same)."""
    return int(demo_recipe("dpo")["max_steps"])


# --- The pairs each trainer drew, and the memory each run added ---
class _RecordingSampler:
    """A sampler that yields what ``sampler`` yields and notes it, one list per epoch."""

    def __init__(self, sampler, epochs: list[list[int]]):
        self.sampler, self.epochs = sampler, epochs

    def __iter__(self):
        self.epochs.append(drawn := [])
        for index in self.sampler:
            drawn.append(int(index))
            yield index

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):  # set_epoch, generator...
        return getattr(self.sampler, name)


class PairsSeen:
    """Record the training-split indices a trainer trained on, in order (``.indices``): its dataloader's sampler is
    wrapped when training begins; at the end the batches drawn ahead (the dataloader looks one ahead) are dropped.
    Exact for one process; with gradient accumulation across an epoch's end it may count a partial step's batches."""

    def __init__(self):
        self.epochs: list[list[int]] = []  # what the sampler yielded, per epoch
        self.indices: list[int] = []  # what was trained on

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        holder = getattr(train_dataloader, "batch_sampler", None)
        holder = getattr(holder, "batch_sampler", holder)  # accelerate's BatchSamplerShard wraps it
        if holder is None or not hasattr(holder, "sampler"):
            logger.warning("Could not record the training pairs: no sampler on %r.", train_dataloader)
            return
        holder.sampler = _RecordingSampler(holder.sampler, self.epochs)

    def on_train_end(self, args, state, control, **kwargs):
        size = args.per_device_train_batch_size
        batches = [
            epoch[i : i + size]
            for epoch in self.epochs
            for i in range(0, len(epoch), size)
            if not (args.dataloader_drop_last and len(epoch) - i < size)
        ]
        self.indices = [
            i for batch in batches[: state.global_step * args.gradient_accumulation_steps] for i in batch
        ]


# --- Steps of compare() ---
def _methods(methods) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = methods.split(",")
    chosen = tuple(m.strip().lower() for m in methods if m.strip())
    unknown = [m for m in chosen if m not in METHODS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"methods must name each of {', '.join(METHODS)} at most once (e.g. 'dpo,orpo'), got {methods!r}."
        )
    return chosen


def _figures(evaluation: dict) -> dict[str, Any]:
    """An evaluate() dict without its per-pair lists, ``seconds`` renamed ``eval_seconds``."""
    figures = {k: v for k, v in evaluation.items() if k not in ("logps", "seconds")}
    return (
        {**figures, "eval_seconds": round(evaluation["seconds"], 2)} if "seconds" in evaluation else figures
    )


def _text(completion) -> str:
    return (
        completion
        if isinstance(completion, str)
        else str(completion[-1].get("content", ""))
        if completion
        else ""
    ).strip()


def _run_figures(result, indices, peak_gb) -> dict[str, Any]:
    """One method's time, memory, speed and loss, beside its held-out figures."""
    run = result.metrics
    return {
        **{k: run[k] for k in ("steps", "train_seconds", "seconds_per_step")},
        "peak_memory_gb": peak_gb if peak_gb is not None else run["peak_memory_gb"],
        "process_peak_memory_gb": run["peak_memory_gb"],
        "pairs_seen": len(indices),
        "pairs_per_second": round(len(indices) / run["train_seconds"], 3) if run["train_seconds"] else None,
        **{k: run.get(k) for k in ("final_loss", "train_loss", "learning_rate")},
        "stopped_by_time_budget": run.get("stopped_by_max_time", False),
        "output_dir": result.output_dir,
    }


def _settings(model, dataset, preset, methods, max_steps, time_budget, seed, beta, data, runs) -> dict:
    args = next(iter(runs.values())).trainer.args
    return {
        "model": model_name(model),
        "dataset": "built-in demo (smol_align.data.demo)" if dataset is None else str(dataset)[:200],
        "preset": preset_name(preset),
        "methods": list(methods),
        "max_steps": max_steps,
        "time_budget_seconds": time_budget,
        "seed": seed,
        "batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps,
        "max_length": getattr(args, "max_length", None),
        "train_pairs": len(data.train),
        "heldout_pairs": len(data.eval),
        "beta_for_heldout_rewards": beta,
        "learning_rate": {m: r.trainer.args.learning_rate for m, r in runs.items()},
    }


_NOTES = """How to read it:
- Every method trained on the same pairs, in the same order, with the same seed, batch and steps (or
  wall budget); each kept its own learning rate.
- Held-out figures use one definition for every method: rewards are DPO's implicit reward
  `beta * (log pi - log pi_start)` against the *start model*, `preference_accuracy` is the share of
  held-out pairs where the model finds the chosen answer more likely, `nll_chosen` the per-token NLL
  of the chosen answers, `drift` the mean `log pi - log pi_start` of the chosen answers.
- `final_loss` is each method's own training loss: DPO's sigmoid loss (0.693 at the start) and
  ORPO's NLL plus lambda times its odds-ratio loss, KTO's `1 - sigmoid` value loss (0.5 at the start)
  are different quantities.
- KTO trains on the same pairs split in two: each pair's chosen answer as a desirable row and its
  rejected one as an undesirable row, shuffled; its step holds twice as many rows as the others'
  pairs (the same sequences), and its `pairs_seen` / `pairs_per_second` count those rows.
- In `training.png` the reward curves are each trainer's own logs: DPO's rewards are relative to
  its reference, ORPO's are `beta * mean log pi` (no reference), KTO's are DPO's reward of its
  desirable and undesirable rows (the KL estimate subtracted in its loss is not); compare trends, not values.
- `pairs_per_second` counts the pairs trained on (the same pairs for every method) per second of
  training. `peak_memory_gb` is the peak memory each run added to
  what was already in use (the start model kept for the comparison, earlier runs' trained models);
  `process_peak_memory_gb` in metrics.json is the whole process's peak during the run."""

"""DPO against ORPO on the same model, pairs, budget and seed, and the report that compares them.

# The demo: embedded SmolLM2-135M-Instruct, built-in pairs, the preset for this machine
smol-align compare --output-dir runs/compare-demo

# From Python: a wall budget of 5 minutes per method instead of a step count
>>> from smol_align.compare import compare
>>> result = compare(time_budget=300)                      # doctest: +SKIP
>>> print(result.table())                                  # doctest: +SKIP

:func:`compare` delegates each run to :func:`smol_align.train_dpo` / :func:`smol_align.train_orpo`.
What it adds: the start model is evaluated once (its per-pair log-probs are the reference of every
method's held-out figures, and its answers the "start" column), every method gets a fresh copy of
that model, the same data, steps or wall budget, seed and batch (each keeps its own learning-rate
default), and the pairs each trainer drew are recorded to show they were the same. The report
directory holds ``metrics.json``, ``report.md``, ``training.png``, ``heldout.png`` and, unless
``save=False``, each trained model in ``<method>/``. It is written whole or not at all.
"""

from __future__ import annotations

import copy
import gc
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.demo import pirate_voice
from .evaluate import answer_figures, evaluate, generate_answers
from .models import DEFAULT_MODEL

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
    "tokens_per_second",
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
        from .report import terminal_table

        return terminal_table(self.metrics, COLUMNS, first_column="method")

    def __repr__(self) -> str:
        return f"ComparisonResult(methods={list(self.runs)}, report_dir={self.report_dir!r})"


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
    """Train ``model`` with each of ``methods`` on the same pairs and budget, and compare them.

    Args:
        model: a name or folder (loaded anew for each method) or a loaded model (copied for each
            method and left untouched; pass ``tokenizer=``).
        dataset: anything :func:`smol_align.data.load` reads; ``None`` is the demo data. Without a
            test split, 10% of the pairs (at most ``smol_align.data.load.MAX_HELDOUT``) is held out,
            shuffled by ``seed``; the data options of ``load`` (``format``, ``columns``, ``split``,
            ``eval_split``, the filters) are accepted as keywords.
        methods: ``("dpo", "orpo")``, a subset, or a string ``"dpo,orpo"``.
        preset: as for :func:`smol_align.train_dpo`.
        max_steps: steps per method. ``None`` with no ``time_budget``: the demo recipe's budget for
            the demo data, else TRL's epochs.
        time_budget: seconds of training per method: each stops after the step that crosses it
            (with ``max_steps`` too, whichever comes first).
        seed: the training seed of every method (data order, initialisation of new weights).
        output_dir: the report directory (default ``runs/compare-<model>-<time>``).
        save: keep each trained model in ``<output_dir>/<method>`` (the report is always written).
        overwrite: replace an existing, non-empty ``output_dir``.
        max_eval_pairs: score only the first pairs of the held-out split.
        n_answers, max_new_tokens: held-out prompts answered side by side (greedy) and their length.
        **overrides: any field of both ``DPOConfig`` and ``ORPOConfig`` (``beta``, ``learning_rate``,
            ``per_device_train_batch_size``...), for every method.

    Returns:
        A :class:`ComparisonResult`; ``.metrics`` maps ``"start"`` and each method to its figures.
    """
    from .data.load import load, pop_data_options
    from .errors import ConfigError
    from .presets import check_overrides
    from .run import _cleanup_on_failure, check_output_dir, default_output_dir, run, staged

    methods = _methods(methods)
    data_options = pop_data_options(overrides)
    if time_budget is not None and time_budget <= 0:
        raise ConfigError(f"time_budget must be a positive number of seconds, got {time_budget!r}.")
    if not isinstance(model, str) and tokenizer is None:
        raise ConfigError(
            "A loaded model needs its tokenizer: pass tokenizer=... (or pass the model by name)."
        )
    user_callbacks = list(overrides.pop("callbacks", None) or [])
    for method in methods:  # an unknown or one-method-only option fails here, before any training
        check_overrides(method, dict(overrides))
    say = (lambda *a: None) if quiet else print
    report_dir = Path(output_dir or default_output_dir("compare", model))
    check_output_dir(report_dir, overwrite=overwrite, resume=False)
    if max_steps is None and time_budget is None and dataset is None:
        max_steps = demo_max_steps()

    # Data: one train split and one held-out split, normalized once, handed unchanged to every method.
    data = load(dataset, eval_dataset=eval_dataset, split_seed=seed, **data_options)
    train_data, test_data = data.train, data.eval
    if test_data is None:
        raise ConfigError(f"compare needs held-out pairs and {data.name} gives none ({data.heldout}): "
                          "pass eval_split=0.2 or eval_dataset=...")  # fmt: skip

    # The start model: evaluated once (the reference of every method), its answers kept before training.
    start_model, start_tokenizer, bf16 = _start_model(model, tokenizer, preset, methods[0], overrides)
    autocast = _autocast(start_model, bf16)  # the runs' own precision, so before and after compare
    beta = float(overrides.get("beta", 0.1))  # DPO's implicit reward for every method (TRL's default beta)
    say(f"Evaluating the start model on {len(test_data)} held-out pairs...")
    with autocast():
        start = evaluate(start_model, test_data, tokenizer=start_tokenizer, beta=beta, max_pairs=max_eval_pairs)
    prompts, chosen = _answer_prompts(test_data, n_answers)
    with autocast():
        answers = {"start": generate_answers(start_model, start_tokenizer, prompts, max_new_tokens=max_new_tokens)}
    voice = pirate_voice if dataset is None else None

    # One run per method, each from a fresh copy of the start model, saved in <report_dir>/<method>.
    with _cleanup_on_failure(report_dir, main=True):  # written whole or not at all
        shutil.rmtree(report_dir, ignore_errors=True)
        report_dir.mkdir(parents=True)
        metrics: dict[str, dict[str, Any]] = {
            "start": {**_figures(start), **(answer_figures(answers["start"], voice) if prompts else {})}
        }
        runs, pairs_seen, token_counts = {}, {}, {}
        for method in methods:
            seen = as_callback(PairsSeen)
            budget = as_callback(TimeBudget, time_budget) if time_budget is not None else None
            run_overrides = {
                **overrides,
                "seed": seed,
                "callbacks": [*user_callbacks, seen, *([budget] if budget else [])],
                "tokenizer": tokenizer,
                "start_eval": start,
                "answer_prompts": 0,  # compare answers its own prompts, below
                "max_eval_pairs": max_eval_pairs,
                "save": save,
                "quiet": quiet,
            }
            if max_steps is not None:
                run_overrides["max_steps"] = max_steps
            say(f"\n=== {method.upper()} ===")
            memory = MemoryWindow()
            start_copy = model if isinstance(model, str) else copy.deepcopy(start_model)
            result = run(method, start_copy, data, preset, str(report_dir / method), run_overrides)
            peak_gb = memory.peak_gb()
            _release_training_state(result.trainer)
            runs[method], pairs_seen[method] = result, seen.indices
            with result.trainer.accelerator.autocast():
                answers[method] = generate_answers(result.model, result.trainer.processing_class, prompts, max_new_tokens=max_new_tokens)
            tokens = _tokens(train_data, start_tokenizer, seen.indices, result.trainer.args, token_counts)
            metrics[method] = _run_metrics(result, start, beta, seen.indices, tokens, peak_gb, budget)
            metrics[method].update(answer_figures(answers[method], voice) if prompts else {})
            metrics[method]["output_dir"] = result.output_dir

        # The report: metrics.json, plots, report.md, beside the methods' folders.
        settings = _settings(model, dataset, preset, methods, max_steps, time_budget, seed, beta, train_data,
                             test_data, runs)  # fmt: skip
        side_by_side = [
            {"prompt": p, "answers": {**{name: answers[name][i] for name in answers}, "chosen (data)": c}}
            for i, (p, c) in enumerate(zip(prompts, chosen, strict=True))
        ]
        with staged(report_dir) as staging:
            files, plotted = _write_report(staging, metrics, runs, side_by_side, settings)

    result = ComparisonResult(
        metrics=metrics,
        report_dir=str(report_dir),
        runs=runs,
        side_by_side=side_by_side,
        pairs_seen=pairs_seen,
        settings=settings,
        files={k: str(report_dir / Path(v).name) for k, v in files.items()},
        plotted=plotted,
    )
    saved = "".join(f"\n{m} model: {r.output_dir}" for m, r in runs.items() if r.output_dir)
    say(f"\nHeld-out comparison ({len(test_data)} pairs), report in {report_dir}:\n{result.table()}{saved}")
    return result


def demo_max_steps() -> int:
    """The step budget of the demo recipe (``recipes/demo-dpo.yaml``; the ORPO demo uses the same)."""
    from .presets import demo_recipe

    return int(demo_recipe("dpo")["max_steps"])


# --------------------------------------------------------------------------------------------
# Callbacks: the wall budget, and the pairs each trainer drew
# --------------------------------------------------------------------------------------------


def as_callback(cls, *args):
    """An instance of ``cls`` that is also a ``transformers.TrainerCallback`` (its other events do nothing).

    The callbacks below are plain classes so that importing this module does not import transformers.
    """
    from transformers import TrainerCallback

    return type(cls.__name__, (cls, TrainerCallback), {})(*args)


class TimeBudget:
    """Stop training after the step during which ``seconds`` of training time ran out."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None
        self.stopped = False  # whether the budget, not max_steps, ended the run

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.started >= self.seconds and state.global_step < state.max_steps:
            control.should_training_stop = self.stopped = True
        return control


class _RecordingSampler:
    """A sampler that yields what ``sampler`` yields and notes it, one list per epoch."""

    def __init__(self, sampler, epochs: list[list[int]]):
        self.sampler, self.epochs = sampler, epochs

    def __iter__(self):
        drawn: list[int] = []
        self.epochs.append(drawn)
        for index in self.sampler:
            drawn.append(int(index))
            yield index

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):  # set_epoch, generator...
        return getattr(self.sampler, name)


class PairsSeen:
    """Record the training-split indices of the pairs a trainer trained on, in order (``.indices``).

    The sampler of the trainer's dataloader is wrapped when training begins; at the end the
    batches drawn ahead (the dataloader looks one batch ahead) are dropped. Exact for one process;
    with gradient accumulation across an epoch's end it may count a partial step's batches.
    """

    def __init__(self):
        self.epochs: list[list[int]] = []
        self.indices: list[int] = []

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
        trained = batches[: state.global_step * args.gradient_accumulation_steps]
        self.indices = [index for batch in trained for index in batch]


class MemoryWindow:
    """Peak memory of what runs from now on, above what is already in use (``peak_gb()``).

    CUDA: peak allocated bytes above those allocated at the start. Linux CPU: peak resident set
    above the resident set at the start (freed heap pages are returned to the system first, so
    a later run cannot hide in an earlier run's pages). Elsewhere: None.
    """

    def __init__(self):
        import torch

        gc.collect()
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.empty_cache()
            self.start = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return
        _malloc_trim()
        self.start = _proc_status_bytes("VmRSS")
        try:  # "5" resets the resident-set high-water mark (VmHWM) to the current resident set
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as err:
            logger.info("No per-run peak memory (%s).", err)
            self.start = None

    def peak_gb(self) -> float | None:
        if self.cuda:
            import torch

            return round((torch.cuda.max_memory_allocated() - self.start) / 2**30, 2)
        peak = _proc_status_bytes("VmHWM")
        return None if self.start is None or peak is None else round((peak - self.start) / 2**30, 2)


def _proc_status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _release_training_state(trainer) -> None:
    """Drop the optimizer and scheduler of a finished run (Adam's state is twice the model's size)."""
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.accelerator.free_memory()
    gc.collect()


# --------------------------------------------------------------------------------------------
# Steps of compare()
# --------------------------------------------------------------------------------------------


def _methods(methods) -> tuple[str, ...]:
    from .errors import ConfigError
    from .presets import METHODS

    if isinstance(methods, str):
        methods = methods.split(",")
    chosen = tuple(m.strip().lower() for m in methods if m.strip())
    unknown = [m for m in chosen if m not in METHODS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"methods must name each of {', '.join(METHODS)} at most once (e.g. 'dpo,orpo'), got {methods!r}."
        )
    return chosen


def _start_model(model, tokenizer, preset, method, overrides):
    """The untrained model, its tokenizer (the ones given, or loaded as the runs will load them) and bf16."""
    from .presets import build

    built = build(method, preset, **overrides)
    if not isinstance(model, str):
        return model, tokenizer, built.args.bf16
    from .models import load_model

    loaded, loaded_tokenizer = load_model(
        model, dtype=built.dtype, quantization_config=built.quantization_config
    )
    return loaded, tokenizer or loaded_tokenizer, built.args.bf16


def _autocast(model, bf16: bool):
    """A factory of the bf16 autocast context the runs train under (a no-op context without bf16)."""
    import functools

    import torch

    device = next(model.parameters()).device.type
    return functools.partial(torch.autocast, device, dtype=torch.bfloat16, enabled=bool(bf16))


def _figures(evaluation: dict) -> dict[str, Any]:
    """An evaluate() dict without its per-pair lists, ``seconds`` renamed ``eval_seconds``."""
    figures = {k: v for k, v in evaluation.items() if k not in ("logps", "seconds")}
    if "seconds" in evaluation:
        figures["eval_seconds"] = round(evaluation["seconds"], 2)
    return figures


def _answer_prompts(data, n: int) -> tuple[list, list[str]]:
    """``n`` held-out prompts, one per category in turn when the data has a ``category`` column."""
    from trl.data_utils import extract_prompt

    rows = data.to_list() if hasattr(data, "to_list") else [dict(r) for r in data]
    order = list(range(len(rows)))
    if rows and "category" in rows[0]:
        by_category: dict[Any, list[int]] = {}
        for i, row in enumerate(rows):
            by_category.setdefault(row["category"], []).append(i)
        queues = list(by_category.values())
        order = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]
    picked = [rows[i] if "prompt" in rows[i] else {**rows[i], **extract_prompt(rows[i])} for i in order[:n]]
    return [r["prompt"] for r in picked], [_text(r["chosen"]) for r in picked]


def _text(completion) -> str:
    if isinstance(completion, str):
        return completion.strip()
    return str(completion[-1].get("content", "")).strip() if completion else ""


def _tokens(train_data, tokenizer, indices, args, counts: dict[int, tuple[int, int, int]]) -> int:
    """Tokens of prompt + chosen and prompt + rejected of each pair trained on, cut at ``max_length``.

    Tokenized as TRL's DPOTrainer does for every method, so the rates compare; ``counts`` caches
    (prompt, chosen, rejected) lengths by train-split index across methods.
    """
    from .evaluate import tokenize_pair

    cap = getattr(args, "max_length", None) or float("inf")
    total = 0
    for index in indices:
        if index not in counts:
            pair = tokenize_pair(train_data[index], tokenizer)
            counts[index] = (len(pair["prompt_ids"]), len(pair["chosen_ids"]), len(pair["rejected_ids"]))
        prompt, chosen, rejected = counts[index]
        total += min(prompt + chosen, cap) + min(prompt + rejected, cap)
    return int(total)


def _run_metrics(result, start, beta, indices, tokens, peak_gb, budget) -> dict[str, Any]:
    """One method's row: held-out figures against the start model, then time, memory, speed, loss."""
    from .evaluate import preference_metrics

    run = result.metrics
    row = preference_metrics(result.after["logps"], start["logps"], beta=beta)
    row["eval_seconds"] = round(result.after["seconds"], 2)
    row.update(
        steps=run["steps"],
        train_seconds=run["train_seconds"],
        seconds_per_step=run["seconds_per_step"],
        peak_memory_gb=peak_gb if peak_gb is not None else run["peak_memory_gb"],
        process_peak_memory_gb=run["peak_memory_gb"],
        train_tokens=tokens,
        tokens_per_second=round(tokens / run["train_seconds"], 1) if run["train_seconds"] else None,
        final_loss=run.get("final_loss"),
        train_loss=run.get("train_loss"),
        learning_rate=result.trainer.args.learning_rate,
        pairs_seen=len(indices),
        stopped_by_time_budget=bool(budget and budget.stopped),
    )
    return row


def _settings(model, dataset, preset, methods, max_steps, time_budget, seed, beta, train, test, runs) -> dict:
    from .presets import resolve

    hardware, mode = resolve(preset)
    args = next(iter(runs.values())).trainer.args
    name = (
        model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "model")
    )
    return {
        "model": str(name),
        "dataset": "built-in demo (smol_align.data.demo)" if dataset is None else str(dataset)[:200],
        "preset": f"{hardware.name}+{mode.name}",
        "methods": list(methods),
        "max_steps": max_steps,
        "time_budget_seconds": time_budget,
        "seed": seed,
        "batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps,
        "max_length": getattr(args, "max_length", None),
        "train_pairs": len(train),
        "heldout_pairs": len(test),
        "beta_for_heldout_rewards": beta,
        "learning_rate": {m: r.trainer.args.learning_rate for m, r in runs.items()},
    }


def _write_report(
    folder: Path, metrics, runs, side_by_side, settings
) -> tuple[dict[str, str], dict[str, Any]]:
    """metrics.json, training.png, heldout.png and report.md in ``folder``."""
    from .report import (
        HELDOUT_COLUMNS,
        ORPO_PANELS,
        TRAIN_PANELS,
        markdown_table,
        plot_heldout,
        plot_training,
        side_by_side_markdown,
        write_metrics_json,
    )

    names = {
        "metrics": "metrics.json",
        "report": "report.md",
        "training_plot": "training.png",
        "heldout_plot": "heldout.png",
    }
    files = {key: str(folder / name) for key, name in names.items()}
    write_metrics_json(metrics, files["metrics"])
    panels = TRAIN_PANELS + (ORPO_PANELS if "orpo" in runs else ())
    # An empty "start" history gives each method the colour it has in heldout.png (start is C0).
    histories = {"start": [], **{m: r.trainer.state.log_history for m, r in runs.items()}}
    plotted = {
        "training": plot_training(histories, files["training_plot"], panels),
        "heldout": plot_heldout(metrics, files["heldout_plot"], (*HELDOUT_COLUMNS, "drift")),
    }
    listed = "\n".join(f"- {k}: {v}" for k, v in settings.items())
    sections = [
        f"# {' vs '.join(m.upper() for m in runs)} on {settings['model']}",
        "## Settings\n\nThe same pairs, seed, batch and steps (or wall budget) for every method; "
        f"each method keeps its own learning rate.\n\n{listed}",
        "## Held-out comparison\n\n" + markdown_table(metrics, COLUMNS, first_column="method"),
        _NOTES,
        "## Plots\n\n![training](training.png)\n\n![heldout](heldout.png)",
        "## Side-by-side answers (greedy, held-out prompts)\n\n" + side_by_side_markdown(side_by_side),
    ]
    Path(files["report"]).write_text("\n\n".join(sections) + "\n")
    return files, plotted


_NOTES = """How to read it:
- Held-out figures use one definition for every method: rewards are DPO's implicit reward
  `beta * (log pi - log pi_start)` against the *start model*, `preference_accuracy` is the share of
  held-out pairs where the model finds the chosen answer more likely, `nll_chosen` the per-token NLL
  of the chosen answers, `drift` the mean `log pi - log pi_start` of the chosen answers.
- `final_loss` is each method's own training loss: DPO's sigmoid loss (0.693 at the start) and
  ORPO's NLL plus lambda times its odds-ratio loss are different quantities.
- In `training.png` the reward curves are each trainer's own logs: DPO's rewards are relative to
  its reference, ORPO's are `beta * mean log pi` (no reference); compare their trends, not values.
- `tokens_per_second` counts prompt + chosen and prompt + rejected tokens of the pairs trained on,
  tokenized the same way for every method. `peak_memory_gb` is the peak memory each run added to
  what was already in use (the start model kept for the comparison, earlier runs' trained models);
  `process_peak_memory_gb` in metrics.json is the whole process's peak during the run."""

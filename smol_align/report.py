"""Training curves, held-out figures and a Markdown report: one writer for single runs, compare and iterate.

Inputs are plain data: ``trainer.state.log_history`` and :func:`smol_align.evaluate.evaluate` dicts; each plot also
returns the numbers it drew. TRL 1.16's DPO and ORPO trainers both log ``loss``, ``rewards/{accuracies,margins,chosen,
rejected}``, ``logps/{chosen,rejected}`` (``eval_``-prefixed on evaluation), but DPO's rewards are ``beta * (log pi -
log pi_ref)`` and ORPO's ``beta * mean log pi`` (it adds ``nll_loss``, ``log_odds_ratio``): their reward curves compare
trends, not values. matplotlib through its object API on the Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# (log key, title) panels of plot_training: the default, and the extra ones of ORPO and KTO (its KL estimate)
TRAIN_PANELS = (
    ("loss", "Training loss"),
    ("rewards/accuracies", "Reward accuracy"),
    ("rewards/margins", "Reward margin"),
)
ORPO_PANELS = (("nll_loss", "ORPO NLL loss"), ("log_odds_ratio", "ORPO log-odds ratio"))
KTO_PANELS = (("kl", "KTO KL estimate (batch)"),)
SFT_PANELS = (("mean_token_accuracy", "SFT token accuracy"),)
HELDOUT_COLUMNS = (
    "preference_accuracy",
    "reward_accuracy",
    "reward_margin",
    "nll_chosen",
)  # plot_heldout's bars
TABLE_COLUMNS = (
    "nll",  # SFT's: the held-out targets' NLL per token
    "n_pairs",
    "preference_accuracy",
    "preference_accuracy_normalized",
    "reward_accuracy",
    "reward_margin",
    "rewards_chosen",
    "rewards_rejected",
    "nll_chosen",
    "drift",
)  # the tables' default, those present

_NOT_SERIES = {"step", "epoch"}
_SUMMARY_MARKERS = ("train_runtime", "total_flos")  # the final entry Trainer.train() appends
_BULKY_KEYS = ("logps", "ref_logps")  # per-pair lists: not for JSON summaries nor tables


# --- Data ---
def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def training_curves(log_history: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Every numeric logged key (``eval_`` ones keep their prefix) as ``[(step, value)]``, in logging order; the
    summary ``train()`` appends and ``step``/``epoch`` are left out. An entry without a ``step`` takes its position."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for position, entry in enumerate(log_history):
        if any(marker in entry for marker in _SUMMARY_MARKERS):
            continue
        step = entry.get("step", position)
        for key, value in entry.items():
            if key not in _NOT_SERIES and _is_number(value):
                curves.setdefault(key, []).append((int(step), float(value)))
    return curves


def jsonable(obj):
    """``obj`` with tensors/arrays as numbers or lists, NaN/inf as None, the bulky ``logps`` dropped."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items() if k not in _BULKY_KEYS}
    if isinstance(obj, list | tuple | set):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, str | int):  # bool too
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # torch tensors, numpy arrays and scalars
        return jsonable(obj.tolist())
    return str(obj)


def write_metrics_json(metrics: Mapping[str, Any], path) -> dict:
    """Write ``metrics`` (e.g. ``{model name: evaluate() dict}``) as JSON; return what was written."""
    data = jsonable(metrics)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    logger.debug("Wrote %s", path)  # a staging path while a run saves; the summary names the folder
    return data


# --- Plots ---
def _figure(n_panels: int, width: float = 4.2, height: float = 3.4):
    """A matplotlib Figure on an Agg canvas with ``n_panels`` axes side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, n_panels, squeeze=False)[0])


def _save(fig, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    logger.debug("Wrote %s", path)  # a staging path while a run saves; the summary names the folder


def plot_training(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    path,
    panels: Sequence[tuple[str, str]] = TRAIN_PANELS,
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """PNG of training curves: one panel per ``(log key, title)``, one line per method of ``histories`` (method ->
    ``log_history``), its ``eval_`` points dashed as ``"<method> (eval)"``; a panel with no data says so.
    Returns ``{log key: {line label: [(step, value), ...]}}``: exactly the plotted data."""
    curves = {method: training_curves(history) for method, history in histories.items()}
    fig, axes = _figure(len(panels))
    plotted: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for ax, (key, title) in zip(axes, panels, strict=True):
        plotted[key] = {}
        for i, (method, series) in enumerate(curves.items()):
            for label, points, style in (
                (method, series.get(key), "-"),
                (f"{method} (eval)", series.get(f"eval_{key}"), "--o"),
            ):
                if not points:
                    continue
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, color=f"C{i}", label=label, markersize=3)
                plotted[key][label] = list(points)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if plotted[key]:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, f"no '{key}' logged", ha="center", va="center", transform=ax.transAxes)
    _save(fig, path)
    return plotted


def _value(metrics: Mapping[str, Any], column: str) -> float:
    value = metrics.get(column)
    value = value.item() if hasattr(value, "item") else value
    return float(value) if _is_number(value) else float("nan")


def plot_heldout(
    metrics: Mapping[str, Mapping[str, Any]], path, columns: Sequence[str] = HELDOUT_COLUMNS
) -> dict[str, dict[str, float]]:
    """PNG bar chart of held-out figures (``metrics``: name -> evaluate() dict): one panel per column, one bar per
    name with a number there. Returns ``{column: {model name: value}}``: exactly the plotted bars."""
    fig, axes = _figure(len(columns), width=3.4)
    names = list(metrics)
    plotted: dict[str, dict[str, float]] = {}
    for ax, column in zip(axes, columns, strict=True):
        values = {name: _value(metrics[name], column) for name in names}
        plotted[column] = {name: v for name, v in values.items() if math.isfinite(v)}
        shown = list(plotted[column])
        bars = ax.bar(shown, [plotted[column][n] for n in shown], color=[f"C{names.index(n)}" for n in shown])
        ax.bar_label(bars, fmt="%.3g", fontsize="small")
        ax.set_title(column)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
        if column.endswith(("accuracy", "accuracy_normalized")):
            ax.set_ylim(0.0, 1.05)
    _save(fig, path)
    return plotted


# --- Tables and the Markdown report ---
def _fmt(value) -> str:
    """A cell: ints as they are, floats to 3 decimals (tiny ones in scientific notation), None as ``-``."""
    value = value.item() if hasattr(value, "item") else value
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.1e}" if value != 0 and abs(value) < 1e-3 else f"{value:.3f}"
    return str(value)


def _cells(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str] | None) -> list[list[str]]:
    """The header, then a row per model name: ``columns``, or the :data:`TABLE_COLUMNS` some row has."""
    columns = (
        list(columns)
        if columns is not None
        else [c for c in TABLE_COLUMNS if any(c in m for m in metrics.values())]
    )
    return [
        ["model", *columns],
        *([str(name), *(_fmt(m.get(c)) for c in columns)] for name, m in metrics.items()),
    ]


def markdown_table(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table: one row per model name, one column per figure."""
    header, *rows = _cells(metrics, columns)

    def line(cells):
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join(
        [line(header), "| --- | " + " | ".join("---:" for _ in header[1:]) + " |", *map(line, rows)]
    )


def terminal_table(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """The same table as plain aligned text (names left-aligned, numbers right-aligned)."""
    table = _cells(metrics, columns)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(
            [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        ).rstrip()
        for r in table
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _prompt_text(prompt) -> str:
    """A prompt for display: a string as is; messages as their non-system contents."""
    if isinstance(prompt, str):
        return prompt
    turns = [m for m in prompt if m.get("role") != "system"]
    if len(turns) == 1:
        return str(turns[0].get("content", ""))
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in turns)


def _quote(text: str) -> str:
    text = text.strip() or "(empty answer)"
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def side_by_side_markdown(side_by_side: Sequence[Mapping[str, Any]]) -> str:
    """Markdown of ``[{"prompt": ..., "answers": {name: text}}]``: each prompt, then each answer."""
    parts = []
    for i, item in enumerate(side_by_side, 1):
        parts.append(f"### {i}. {_prompt_text(item['prompt']).strip()}")
        for name, answer in item["answers"].items():
            parts.append(f"**{name}**\n\n{_quote(str(answer))}")
    return "\n\n".join(parts)


def write_report(
    folder,
    title: str,
    metrics: Mapping[str, Mapping[str, Any]],
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    side_by_side: Sequence[Mapping[str, Any]] = (),
    settings: Mapping[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    notes: str = "",
    json_data: Mapping[str, Any] | None = None,
    plot_columns: Sequence[str] = (*HELDOUT_COLUMNS, "drift"),
) -> tuple[dict[str, str], dict[str, Any]]:
    """metrics.json (``json_data``, default ``metrics``), training.png, heldout.png and report.md in ``folder``.

    ``metrics``: ``{"start" and each method: figures}``, the held-out table (``columns``, ``notes`` under it) and
    bars (``plot_columns``); ``histories``: ``{method: log_history}``; ``side_by_side``: ``[{"prompt", "answers":
    {name: text}}]``; ``settings``: listed under "Settings". Returns ``(files, plotted)``: the paths
    (``metrics``, ``report``, ``training_plot``, ``heldout_plot`` if there are held-out figures) and the plots' data."""
    folder = Path(folder)
    files = {"metrics": str(folder / "metrics.json"), "report": str(folder / "report.md")}
    write_metrics_json(metrics if json_data is None else json_data, files["metrics"])
    panels = (
        TRAIN_PANELS
        + (ORPO_PANELS if "orpo" in histories else ())
        + (KTO_PANELS if "kto" in histories else ())
        + (SFT_PANELS if "sft" in histories else ())
    )
    # an empty "start" history gives each method the colour it has in heldout.png (start is C0)
    plotted = {"training": plot_training({"start": [], **histories}, folder / "training.png", panels)}
    files["training_plot"] = str(folder / "training.png")
    if len(metrics) > 1:
        plotted["heldout"] = plot_heldout(metrics, folder / "heldout.png", plot_columns)
        files["heldout_plot"] = str(folder / "heldout.png")
    sections = [f"# {title}"]
    if settings:
        sections.append("## Settings\n\n" + "\n".join(f"- {k}: {v}" for k, v in settings.items()))
    if len(metrics) > 1:
        sections.append(
            "## Held-out evaluation\n\n"
            + markdown_table(metrics, columns)
            + (f"\n\n{notes}" if notes else "")
        )
    plots = [
        f"![{key.removesuffix('_plot')}]({Path(path).name})"
        for key, path in files.items()
        if key.endswith("_plot")
    ]
    if plots:
        sections.append("## Plots\n\n" + "\n\n".join(plots))
    if side_by_side:
        sections.append(
            "## Side-by-side answers (greedy, held-out prompts)\n\n" + side_by_side_markdown(side_by_side)
        )
    Path(files["report"]).write_text("\n\n".join(sections) + "\n")
    return files, plotted


# --- One run: the summary it prints and the files beside its model ---
LEARNED_TOLERANCE = 1e-3
"""Nats of held-out margin change (below) that count as no change: a run moving it less learned nothing."""


def learning_verdict(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """Did the run learn the preferences? From :func:`smol_align.evaluate.evaluate` figures of the start and
    the trained model on the same held-out pairs, the trained one scored against the start one.

    ``heldout_margin_change``: the mean over pairs of ``(log pi - log pi_start)(chosen) - (log pi -
    log pi_start)(rejected)`` in nats, that is ``reward_margin / beta`` (0 for the start model by
    definition): ``beta`` does not scale it. ``reward_accuracy``: the share of pairs where it is positive.

    - ``prefers_rejected`` (``learned`` False): the margin fell by more than :data:`LEARNED_TOLERANCE`, or
      it grew on fewer than half the pairs (``reward_accuracy`` < 0.5): the model moved toward the rejected
      answers;
    - ``no_change`` (``learned`` False): it moved by :data:`LEARNED_TOLERANCE` or less either way;
    - ``learned``: it grew, on at least half the pairs.

    ``preference_accuracy`` (``log p(chosen) > log p(rejected)``, reference-free) is shown beside it but
    does not decide: a run that learns can leave it where the start model's own preferences put it.
    Empty without held-out figures.
    """
    if not before or not after or not after.get("n_pairs"):
        return {}
    beta = after.get("beta") or before.get("beta") or 1.0
    change = (after["reward_margin"] - before["reward_margin"]) / beta
    if not math.isfinite(change):
        return {}
    if abs(change) <= LEARNED_TOLERANCE:
        verdict = "no_change"
    elif change < 0 or after["reward_accuracy"] < 0.5:
        verdict = "prefers_rejected"
    else:
        verdict = "learned"
    return {"learned": verdict == "learned", "learning_verdict": verdict, "heldout_margin_change": change}


def sft_verdict(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """Did an SFT run learn its targets? ``heldout_nll_change``: the held-out NLL per target token after
    minus before (:func:`smol_align.evaluate.evaluate_nll`, or ``nll_chosen`` of held-out pairs).
    ``learned``: it fell by more than :data:`LEARNED_TOLERANCE` nats; ``nll_rose``: it rose by more;
    ``no_change`` otherwise. Empty without held-out figures."""
    if not before or not after or "nll" not in before or "nll" not in after:
        return {}
    change = after["nll"] - before["nll"]
    if not math.isfinite(change):
        return {}
    verdict = "no_change" if abs(change) <= LEARNED_TOLERANCE else "nll_rose" if change > 0 else "learned"
    return {"learned": verdict == "learned", "learning_verdict": verdict, "heldout_nll_change": change}


VERDICTS = {
    "learned": "learned",
    "nll_rose": "NOT LEARNED: the held-out NLL rose",
    "prefers_rejected": "NOT LEARNED: prefers the rejected answers",
    "no_change": "NOT LEARNED: no measurable change",
}


def verdict_line(metrics: Mapping[str, Any]) -> str:
    """The summary's last word on a run that did not learn the preferences (empty for one that did)."""
    verdict, change = metrics.get("learning_verdict"), metrics.get("heldout_margin_change")
    pairs, accuracy = metrics.get("eval_n_pairs"), metrics.get("eval_rewards/accuracies")
    if "heldout_nll_change" in metrics and verdict in ("nll_rose", "no_change"):
        before, after = metrics.get("start_nll"), metrics.get("eval_nll")
        moved = "rose" if verdict == "nll_rose" else "did not fall"
        return (
            f"NOT LEARNED: the held-out NLL of the targets {moved} ({_fmt(before)} -> {_fmt(after)} nats "
            "per token). Check the learning rate (a rate of 0 trains nothing, one too high forgets), train "
            "longer (max_steps), and that the held-out rows are of the kind trained on."
        )
    if verdict == "prefers_rejected":
        return (
            "NOT LEARNED: the trained model prefers the rejected answers. Against the start model its "
            f"held-out margin changed by {change:+.3g} nats, and it rose on {accuracy:.0%} of the {pairs} "
            "held-out pairs. Check that chosen and rejected are not swapped in the data, and the learning "
            "rate."
        )
    if verdict == "no_change":
        return (
            "NOT LEARNED: the trained model learned nothing measurable: its held-out margin against the "
            f"start model moved by {change:+.2g} nats (|change| <= {LEARNED_TOLERANCE:g}). Train longer "
            "(max_steps), or raise the learning rate."
        )
    return ""


def summary_table(result) -> str:
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

        def change(key, note=""):
            return f"{_fmt(b[key])} -> {_fmt(a[key])}" + (f"  ({note})" if note else "")

        if "nll" in a and "nll" in b:  # SFT
            rows.append(("held-out NLL", change("nll", "per target token: lower is better")))
    if result.before and result.after and "n_pairs" in result.after:
        rows += [
            ("held-out pairs", str(a["n_pairs"])),
            (
                "reward accuracy",
                change(
                    "reward_accuracy", "DPO implicit reward vs the start model; 0 at the start by definition"
                ),
            ),
            ("reward margin", change("reward_margin")),
            ("prefers chosen", change("preference_accuracy", "log p(chosen) > log p(rejected)")),
        ]
    if result.before and result.after:
        if "repeated_4gram_rate" in a and "repeated_4gram_rate" in b:
            if "voice_rate" in a and "voice_rate" in b:
                n = len(result.answers.get("prompt", []))
                rows.append(("pirate voice", change("voice_rate", f"greedy answers to {n} held-out prompts")))
            rows += [
                (
                    "repeated 4-grams",
                    change("repeated_4gram_rate", "share of an answer's word 4-grams seen earlier in it"),
                ),
                ("answer length", f"{b['answer_words']:.1f} -> {a['answer_words']:.1f} words"),
            ]
    if m.get("learning_verdict") and "heldout_nll_change" in m:
        said, change = VERDICTS[m["learning_verdict"]], m["heldout_nll_change"]
        rows.append(("verdict", f"{said} (held-out NLL {change:+.3g} nats per token)"))
    elif m.get("learning_verdict"):
        said = VERDICTS[m["learning_verdict"]]
        change = m["heldout_margin_change"]
        rows.append(("verdict", f"{said} (held-out margin vs the start model {change:+.3g} nats)"))
    unit = "rows" if "train_rows" in m else "pairs"
    if f"train_{unit}" in m:
        dropped = m.get(f"{unit}_dropped_by_max_length")
        note = f" ({dropped} dropped: the prompt alone fills max_length)" if dropped else ""
        rows.append((f"{unit} trained", f"{m[f'train_{unit}']}{note}"))
    rows.append(("saved to", result.output_dir or "(not saved)"))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 50)
    warning = verdict_line(m)
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), line, *([warning] if warning else [])])


def write_run_files(result, folder: Path) -> dict[str, str]:
    """:func:`write_report` of one run (a :class:`smol_align.run.TrainResult`) in ``folder``; returns the files."""
    b, a, answers = result.before, result.after, result.answers
    side_by_side = (
        [
            {"prompt": p, "answers": {"start": s, "trained": t}}
            for p, s, t in zip(answers["prompt"], answers["start"], answers["trained"], strict=True)
        ]
        if answers
        else []
    )
    m = result.metrics
    keys = ("model", "preset", "steps", "learning_rate", "batch_size", "learning_verdict")
    settings = {k: m[k] for k in keys if k in m}
    files, _ = write_report(
        folder,
        f"{result.method.upper()} on {m.get('model')}",
        {"start": b, result.method: a} if b and a else {},
        {result.method: result.trainer.state.log_history},
        side_by_side,
        settings,
        json_data=m,
        plot_columns=("nll", *HELDOUT_COLUMNS) if result.method == "sft" else (*HELDOUT_COLUMNS, "drift"),
    )
    return files

"""The course's pipeline: SFT, then DPO (or ORPO, KTO) starting from the SFT model; each stage a run
folder, one report across them.

>>> result = smol_align.pipeline()   # the demo: SFT on its chosen answers, then DPO  # doctest: +SKIP
>>> result.table()                   # held-out NLL, reward accuracy, margin... per stage

``<output_dir>/1-sft``, ``<output_dir>/2-dpo``...: each stage is an ordinary run (:func:`smol_align.run.run`:
its own folder, checks, resume, report); the next stage starts from the previous one's saved model, which
is also its DPO reference. A LoRA stage's adapter is merged into its base for the next stage
(``lora="merge"``, the default: ``<output_dir>/1-sft-merged``), or trained on by it (``lora="continue"``:
the same adapter, its saved copy the reference). ``<output_dir>/report.md`` and ``metrics.json`` hold the
table across the stages. A failed stage stops the pipeline; the finished stages stay, and ``resume=True``
continues from the failed one. The pipeline holds its folder as a run holds its own (:mod:`smol_align.rundir`:
one pipeline per folder, ``overwrite`` empties only smol_align's files); its stages and settings are in the
folder's marker while it runs, in ``metrics.json`` when done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import api
from ._compat import library_noise_filtered
from .errors import ConfigError
from .merge import merge
from .models import DEFAULT_MODEL, load_model, model_name
from .presets import METHODS
from .report import markdown_table, terminal_table, write_metrics_json
from .rundir import MARKER, RunDir, default_output_dir, last_checkpoint, read_json

__all__ = ["PipelineResult", "pipeline", "pipeline_from_recipe"]

LORA_MODES = ("merge", "continue")
COLUMNS = (
    "method",
    "start_nll",
    "nll",
    "reward_accuracy",
    "reward_margin",
    "start_prefers_chosen",
    "prefers_chosen",
    "start_voice_rate",
    "voice_rate",
    "learned",
)
NOTES = (
    "nll: held-out NLL per token of the targets (SFT's completions; the chosen answers of held-out "
    "pairs), before (start_) and after the stage. reward_accuracy, reward_margin: DPO's implicit reward "
    "of the stage's model against the model it started from (its reference). prefers_chosen: "
    "log p(chosen) > log p(rejected)."
)


@dataclass
class PipelineResult:
    """The stages' runs (``TrainResult``; ``None`` for a stage finished before a resume), their figures
    (``metrics``: stage -> row of the table) and the folders."""

    output_dir: str
    stages: dict[str, Any]  # "1-sft" -> TrainResult or None
    metrics: dict[str, dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        return terminal_table(self.metrics, COLUMNS)

    def __repr__(self) -> str:
        return f"PipelineResult(output_dir={self.output_dir!r}, stages={list(self.stages)})"


@library_noise_filtered()  # the libraries' noise, while it runs (SMOL_ALIGN_VERBOSE=1 shows it)
def pipeline(
    model: Any = DEFAULT_MODEL,
    sft_data: Any = None,
    pref_data: Any = None,
    stages=("sft", "dpo"),
    preset: str = "auto",
    output_dir: str | None = None,
    lora: str = "merge",
    resume: bool = False,
    overwrite: bool = False,
    stage_options: dict[str, dict] | None = None,
    quiet: bool = False,
    **common,
) -> PipelineResult:
    """Train ``stages`` one after the other, each from the model the previous one saved.

    Args:
        model: the first stage's model (name, folder, or a run folder).
        sft_data: the SFT stage's rows (any data :func:`smol_align.train_sft` reads); ``None``: the demo's.
        pref_data: the preference stages' pairs; ``None``: the demo's pairs.
        stages: methods in order, from sft, dpo, orpo, kto; each at most once.
        lora: ``"merge"`` (a LoRA stage's adapter merged into its base, the next stage trains that model) or
            ``"continue"`` (the next stage trains the same adapter, its saved copy as the reference).
        resume: continue a pipeline in ``output_dir``: finished stages are kept, an unfinished one
            resumes from its checkpoint, the rest run.
        overwrite: run again in a folder of smol_align's (what it holds is replaced when the pipeline ends).
        stage_options: per method, the keywords of that stage (``{"dpo": {"beta": 0.2}}``), over ``common``.
        **common: keywords of every stage (``max_steps``, ``quiet``...).
    """
    stages, lora = _check_stages(stages), str(lora)
    if lora not in LORA_MODES:
        raise ConfigError(f"lora={lora!r}: pass 'merge' (the adapter merged into its base) or 'continue'.")
    for key in ("resume", "overwrite", "output_dir"):
        if key in common:
            raise ConfigError(f"{key} is the pipeline's own option: pass it to pipeline(), not per stage.")
    stage_options = dict(stage_options or {})
    unknown = sorted(set(stage_options) - set(stages))
    if unknown:
        raise ConfigError(f"stage_options for {unknown}: not among the stages {list(stages)}.")
    say = (lambda *a: None) if quiet else print
    tokenizer = common.pop(
        "tokenizer", None
    )  # the first stage's (a loaded model's); later ones load their own
    plan = []
    for i, method in enumerate(stages, 1):
        data = sft_data if method == "sft" else pref_data
        keywords = {"quiet": quiet, **common, **stage_options.get(method, {})}
        api.options_for(
            method, data, preset, **keywords, **({"tokenizer": tokenizer} if tokenizer else {})
        )  # every stage's keywords checked before any work
        plan.append((f"{i}-{method}", method, data, keywords))
    out = Path(output_dir or default_output_dir("pipeline", model_name(model)))
    names = [name for name, *_ in plan]
    inputs = [model, sft_data, pref_data]  # overwrite never empties a folder holding them
    rundir = RunDir(out, overwrite=overwrite, resume=resume, inputs=inputs, what="pipeline", runs_inside=True)
    rundir.check()  # before any work (a pipeline on the folder now: refused here); again under the lock
    before = read_json(out / MARKER).get("stages")
    if resume and before != names:
        held = f"the stages {before}" if before else "no pipeline's stages"
        raise ConfigError(f"resume=True: the run in {out} has {held}, not {names}; pass another output_dir.")

    results: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    start = model
    with rundir:  # the folder is this pipeline's until it ends; its stages hold their own folders
        rundir.mark(stages=names, model=model_name(model), lora=lora)
        for name, method, data, keywords in plan:
            folder = out / name
            state = _state(folder)
            if resume and state == "finished":
                say(f"\n=== Stage {name}: finished before, kept ({folder}) ===")
                results[name], metrics = None, read_json(folder / "metrics.json")
            else:
                say(f"\n=== Stage {name}: {method.upper()} from {model_name(start)} ===")
                if tokenizer is not None:
                    keywords = {**keywords, "tokenizer": tokenizer}
                # an unfinished stage resumes from its checkpoint; one cut short before its first starts again
                resumes = resume and state == "resumable"
                again = {"resume": True} if resumes else {"overwrite": overwrite or state == "unfinished"}
                try:
                    result = getattr(api, f"train_{method}")(
                        start, data, preset, str(folder), **keywords, **again
                    )
                except Exception:
                    done = list(results)
                    kept = f"the finished stages stay ({', '.join(done)}); " if done else ""
                    say(
                        f"Stage {name} failed: {kept}continue with the same command plus --resume (Python: "
                        f"resume=True, output_dir={str(out)!r})."
                    )
                    raise
                results[name], metrics = result, result.metrics
            rows[name] = _row(method, metrics)
            start, tokenizer = _next_start(out, name, folder, lora, preset, say)

        with rundir.staged() as staging:
            _write_report(staging, rows, stages, lora, model)
        rundir.finish()
    files = {"metrics": str(out / "metrics.json"), "report": str(out / "report.md")}
    result = PipelineResult(str(out), results, rows, files)
    say(f"\nPipeline {' -> '.join(s.upper() for s in stages)}, report in {out}:\n{result.table()}")
    return result


def pipeline_from_recipe(path, **given) -> PipelineResult:
    """:func:`pipeline` with a recipe YAML's settings (``model``, ``preset``, ``stages``, ``lora``,
    ``output_dir``, a section per stage with its ``dataset`` and keywords, other keys for every stage);
    ``given`` wins."""
    import yaml

    try:
        recipe = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"Recipe {path} not found.") from None
    if not isinstance(recipe, dict):
        raise ConfigError(f"Recipe {path}: expected a mapping of settings, got {type(recipe).__name__}.")
    recipe = {**recipe, **{k: v for k, v in given.items() if v is not None}}
    stages = _check_stages(recipe.pop("stages", ("sft", "dpo")))
    sections = {method: recipe.pop(method) for method in METHODS if method in recipe}
    for method, section in sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"Recipe {path}: `{method}:` must be a mapping of that stage's settings.")
    sections = {method: dict(section) for method, section in sections.items()}
    data = {method: section.pop("dataset", None) for method, section in sections.items()}
    named = {k: recipe.pop(k) for k in ("model", "preset", "output_dir", "lora") if k in recipe}
    return pipeline(
        sft_data=data.get("sft"),
        pref_data=next((data[m] for m in stages if m != "sft" and data.get(m) is not None), None),
        stages=stages,
        stage_options=sections,
        **named,
        **recipe,
    )


# --- The stages ---
def _check_stages(stages) -> tuple[str, ...]:
    stages = tuple(s.strip().lower() for s in (stages.split(",") if isinstance(stages, str) else stages))
    wrong = [s for s in stages if s not in METHODS]
    if not stages or wrong or len(set(stages)) != len(stages):
        raise ConfigError(
            f"stages={list(stages)}: each of {', '.join(METHODS)} at most once, in the order they train "
            "(e.g. ('sft', 'dpo'))."
        )
    return stages


def _state(folder: Path) -> str:
    """``finished`` (its report is there), ``resumable`` (a run's marker and a complete checkpoint),
    ``unfinished`` (a marker, nothing to resume from), else ``absent``."""
    if (folder / MARKER).is_file():
        return "resumable" if last_checkpoint(folder)[0] else "unfinished"
    return "finished" if (folder / "metrics.json").is_file() else "absent"


def _next_start(out: Path, name: str, folder: Path, lora: str, preset: str, say):
    """The next stage's model (and tokenizer, for a model passed loaded): the saved folder; a LoRA adapter
    merged into its base, or loaded to train on (``lora="continue"``)."""
    if not (folder / "adapter_config.json").is_file():
        return str(folder), None
    if lora == "merge":
        merged = out / f"{name}-merged"
        if not (merged / "config.json").is_file():
            say(f"Merging the LoRA adapter of {name} into its base: {merged}")
            merge(folder, merged, overwrite=True)  # a merge cut short is redone; a foreign folder refused
        return str(merged), None
    from peft import PeftModel

    from .presets import build

    dtype = build("dpo", preset).dtype  # the dtype a LoRA base loads in on this preset
    loaded, tokenizer = load_model(str(folder), dtype=dtype)
    # peft loads a saved adapter frozen; is_trainable=True trains it on (TRL keeps a copy as "ref")
    return PeftModel.from_pretrained(loaded.unload(), str(folder), is_trainable=True), tokenizer


def _row(method: str, m: dict) -> dict[str, Any]:
    """A stage's row of the table, from its metrics."""
    nll = "nll" if method == "sft" else "nll_chosen"
    return {
        "method": method,
        "model": m.get("model"),
        "start_nll": m.get(f"start_{nll}"),
        "nll": m.get(f"eval_{nll}"),
        "reward_accuracy": m.get("eval_rewards/accuracies"),
        "reward_margin": m.get("eval_rewards/margins"),
        "start_prefers_chosen": m.get("start_preference_accuracy"),
        "prefers_chosen": m.get("eval_preference_accuracy"),
        "start_voice_rate": m.get("start_voice_rate"),
        "voice_rate": m.get("eval_voice_rate"),
        "learned": m.get("learned"),
        "steps": m.get("steps"),
        "train_seconds": m.get("train_seconds"),
    }


# --- The pipeline's report ---
def _write_report(folder: Path, rows: dict, stages, lora: str, model: Any) -> None:
    """``metrics.json`` (the settings and rows) and ``report.md`` (their table) in ``folder`` (the staging
    folder: moved into the pipeline's folder whole)."""
    record = {"stages": list(stages), "model": model_name(model), "lora": lora, "figures": rows}
    write_metrics_json(record, str(folder / "metrics.json"))
    lines = [
        f"# Pipeline: {' -> '.join(s.upper() for s in stages)}",
        "Each stage starts from the model the one before it saved, which is also its reference (a LoRA "
        + ("adapter merged into its base)." if lora == "merge" else "adapter trained on by the next stage).")
        + " Each stage's own report is in its folder.",
        "## Held-out figures per stage\n\n" + markdown_table(rows, COLUMNS) + "\n\n" + NOTES,
        "## Stages\n\n"
        + "\n".join(f"- [{name}]({name}/report.md): from {row['model']}" for name, row in rows.items()),
    ]
    (folder / "report.md").write_text("\n\n".join(lines) + "\n")

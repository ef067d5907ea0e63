"""The model card (``README.md``) of a run folder: what the Hub reads in its front matter, then the run.

The front matter (``huggingface_hub.ModelCardData``): ``base_model`` by its Hub id, never a local path
(:func:`base_model_id`: the embedded SmolLM2 loaded from its converted folder is still
``HuggingFaceTB/SmolLM2-135M-Instruct``; a smol_align run's folder names its own base; a folder with no
known Hub id leaves it out and the card says why), ``library_name`` (``peft`` for a LoRA adapter), the
tags and the dataset when it came from the Hub. The body: method, data, preset and settings, the
held-out figures before and after, the verdict, and the command that reproduces the run. Everything comes
from the run's ``metrics.json`` (:func:`run_facts` adds what the card needs), so a merged folder's card is
written from the run's file. Generic over the method: the table shows every figure held out before and after.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .data.sources import is_hub_id
from .models import EMBEDDED, cache_dir, is_local, is_peft, model_name
from .report import VERDICTS
from .rundir import SECRET, read_json, without_secrets

logger = logging.getLogger(__name__)

METHOD_NAMES = {
    "dpo": "Direct Preference Optimization, Rafailov et al. 2023",
    "orpo": "Odds Ratio Preference Optimization, Hong et al. 2024",
    "kto": "Kahneman-Tversky Optimization, Ethayarajh et al. 2024",
    "sft": "supervised fine-tuning",
    "rft": "rejection-sampling fine-tuning",
}
FIGURES = (  # (metrics key after start_/eval_, label): the table's first rows, those present
    ("rewards/accuracies", "reward accuracy (implicit reward vs the start model)"),
    ("rewards/margins", "reward margin"),
    ("preference_accuracy", "prefers chosen: log p(chosen) > log p(rejected)"),
    ("nll_chosen", "NLL of the chosen answers"),
    ("nll", "NLL of the targets"),
    ("voice_rate", "answers in the demo's voice"),
)
_NOT_FIGURES = (
    "n_pairs",
    "beta",
    "seconds",
    "logps/",
    "drift_rejected",
    "rewards/chosen",
    "rewards/rejected",
)


# --- The base model's Hub id ---
def base_model_id(model: Any) -> tuple[str | None, str]:
    """``(hub id, "")`` of the model a run starts from, or ``(None, why)`` when none is known.

    A Hub id is itself; the embedded model's converted folder is its Hub id; a folder of the Hugging Face
    cache (``models--owner--name/snapshots/...``) is ``owner/name``; a smol_align run's folder (its
    ``metrics.json``) names its own base, and a LoRA folder's ``adapter_config.json`` its base, followed
    in turn. A model object is found by the name or folder it was loaded from (a PEFT model: its base)."""
    if not isinstance(model, (str, os.PathLike)):
        config = getattr(model, "peft_config", None)
        if isinstance(config, Mapping) and config:  # a PeftModel: the base its adapter was put on
            return base_model_id(next(iter(config.values())).base_model_name_or_path or "")
        model = model_name(model)
    name = str(model)
    if not name or name == "model":
        return None, "the model was given as an object that records no name or folder it was loaded from"
    if not is_local(name):
        return name, ""
    return _local_base(Path(name).expanduser(), seen=set())


def _local_base(folder: Path, seen: set) -> tuple[str | None, str]:
    resolved = folder.resolve()
    for hub_id in EMBEDDED:
        if resolved == (cache_dir() / hub_id.replace("/", "--")).resolve():
            return hub_id, ""
    cached = re.search(r"models--([^/]+?)--([^/]+)/snapshots/", resolved.as_posix() + "/")
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}", ""
    if resolved in seen:
        return None, f"{folder} names itself as its base"
    seen.add(resolved)
    metrics = read_json(folder / "metrics.json")
    if metrics.get("base_model"):
        return metrics["base_model"], ""
    if metrics.get("base_model_unknown"):
        return None, metrics["base_model_unknown"]
    adapter = read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    for found in (adapter, metrics.get("model")):
        if found:
            return (found, "") if not is_local(found) else _local_base(Path(found).expanduser(), seen)
    return None, (
        f"the run started from the local folder {folder}, which records no Hugging Face Hub id (it is "
        "not the embedded model, a Hub cache copy, or a smol_align run)"
    )


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if value != 0 and abs(value) < 1e-3 else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def repo_name(folder) -> str:
    """The name a folder goes to the Hub under by default: its own, ``<run>-merged`` for ``<run>/merged``."""
    folder = Path(folder).resolve()
    merged = folder.name == "merged" and (folder.parent / "metrics.json").is_file()
    return f"{folder.parent.name}-merged" if merged else folder.name


# --- The command that reproduces a run ---
_COMMAND: ContextVar[str | None] = ContextVar("smol_align_command", default=None)


@contextmanager
def invoked_as(command: str) -> Iterator[None]:
    """Inside: runs record ``command`` as what reproduces them (the outermost entry point's wins: the CLI's
    over the Python call it makes, compare's over each method's run)."""
    token = _COMMAND.set(command) if _COMMAND.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _COMMAND.reset(token)


def invocation() -> str | None:
    """The command recorded by :func:`invoked_as`, or None."""
    return _COMMAND.get()


def cli_command(argv: list[str]) -> str:
    """``smol-align ARGV`` as a shell line, with any token flag (``--hub_token X``) left out."""
    return shlex.join(["smol-align", *without_secrets(argv)])


def python_call(function: str, arguments: Mapping[str, Any]) -> str:
    """``import smol_align`` and the call of ``function`` with ``arguments`` (None left out, tokens left
    out); a value Python cannot write as a literal (a model object, a dataset) is named in a comment."""
    lines = ["import smol_align", "", f"smol_align.{function}("]
    for key, value in arguments.items():
        if value is None or SECRET.search(key):
            continue
        if _is_literal(value):
            lines.append(f"    {key}={value!r},")
        else:
            lines.append(f"    {key}=...,  # a {type(value).__name__} object: not recordable as text")
    return "\n".join([*lines, ")"])


def recorded(function):
    """Decorator of a one-liner (``train_dpo``, ``compare``, ``iterate``): inside a call, its runs record the
    call (:func:`python_call` of the arguments given) as the command that reproduces them."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def call(*args, **kwargs):
        given: dict[str, Any] = {}
        for name, value in signature.bind(*args, **kwargs).arguments.items():
            kind = signature.parameters[name].kind
            given.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        with invoked_as(python_call(function.__name__, given)):
            return function(*args, **kwargs)

    return call


def _is_literal(value) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


# --- What the card needs, recorded in metrics.json ---
def run_facts(model, dataset, data, trained_model) -> dict[str, Any]:
    """The card's facts of a run, for its ``metrics.json``: the base's Hub id (or why there is none), the
    data's name, Hub id and held-out source, LoRA and 4-bit, and the command that reproduces it."""
    hub_id, why = base_model_id(model)
    facts: dict[str, Any] = {"base_model": hub_id} if hub_id else {"base_model_unknown": why}
    facts["dataset"] = data.name
    if isinstance(dataset, str) and is_hub_id(dataset):
        facts["dataset_hub_id"] = dataset
    facts["heldout_from"] = data.heldout
    facts["lora"] = is_peft(trained_model)
    if getattr(trained_model, "is_loaded_in_4bit", False):
        facts["base_4bit"] = True
    command = invocation()
    if command:
        facts["command"] = command
    return facts


# --- The card ---
def card_text(metrics: Mapping[str, Any], name: str, merged_from: str | None = None) -> str:
    """The card of the run whose ``metrics.json`` is ``metrics`` (``name``: the folder's, the repo's default
    name). ``merged_from``: the card of the LoRA run merged into its base (a whole model, not an adapter)."""
    from huggingface_hub import ModelCardData

    method = str(metrics.get("method", "?"))
    lora = bool(metrics.get("lora")) and merged_from is None
    base = metrics.get("base_model")
    datasets = [metrics["dataset_hub_id"].split("[")[0]] if metrics.get("dataset_hub_id") else None
    tags = ["trl", "smol-align", method, *(["lora"] if metrics.get("lora") else []), "text-generation"]
    data = ModelCardData(
        base_model=base,
        library_name="peft" if lora else "transformers",
        tags=[*tags, *(["merged"] if merged_from else [])],
        datasets=datasets,
        model_name=name,
        pipeline_tag="text-generation",
    )
    what = "a LoRA adapter" if lora else "the whole model"
    base_text = f"[{base}](https://huggingface.co/{base})" if base else f"`{metrics.get('model', '?')}`"
    parts = [
        f"---\n{data.to_yaml()}\n---",
        f"# {name}",
        f"{method.upper()} ({METHOD_NAMES.get(method, method)}) of {base_text}, trained with "
        f"smol_align on [TRL](https://github.com/huggingface/trl); this folder holds "
        f"{what}." + (f" Merged into its base from the LoRA run `{merged_from}`." if merged_from else ""),
    ]
    if not base:
        parts.append(
            f"`base_model` is not set: {metrics.get('base_model_unknown', 'no Hub id is known')}. If the "
            "base is on the Hub, add `base_model: <hub id>` to the front matter above before pushing."
        )
    if metrics.get("base_4bit") and merged_from:
        parts.append(
            "The run trained its adapter on a 4-bit (NF4) copy of the base; it was merged into the base "
            "loaded in full precision (fp32, dequantized), so answers can differ slightly from the 4-bit run's."
        )
    parts += [_training(metrics), _heldout(metrics), _verdict(metrics), _reproduce(metrics, name, lora)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _training(m: Mapping[str, Any]) -> str:
    unit = "rows" if "train_rows" in m else "pairs"
    trained = f", {m[f'train_{unit}']} {unit} trained" if f"train_{unit}" in m else ""
    source = (
        f" ([hub](https://huggingface.co/datasets/{m['dataset_hub_id']}))" if m.get("dataset_hub_id") else ""
    )
    held = m.get("heldout_from", "?")
    scored = f"; {m['eval_n_pairs']} held-out pairs scored before and after" if m.get("eval_n_pairs") else ""
    rows = [
        f"- method: {str(m.get('method', '?')).upper()}" + (" with LoRA" if m.get("lora") else ""),
        f"- data: {m.get('dataset', '?')}{source}{trained}; held out: {held}{scored}",
        f"- preset: {m.get('preset', '?')}" + (" (4-bit NF4 base)" if m.get("base_4bit") else ""),
        *(
            f"- {label}: {_number(m[key])}"
            for key, label in (
                ("steps", "steps"),
                ("learning_rate", "learning rate"),
                ("batch_size", "batch size"),
                ("eval_beta", "beta"),
                ("train_seconds", "training seconds"),
            )
            if m.get(key) is not None
        ),
    ]
    return "## Training\n\n" + "\n".join(rows)


def _heldout(m: Mapping[str, Any]) -> str:
    shared = [k[len("start_") :] for k in m if k.startswith("start_") and f"eval_{k[len('start_') :]}" in m]
    shown = [k for k, _ in FIGURES if k in shared]
    shown += [k for k in shared if k not in shown and not k.startswith(_NOT_FIGURES)]
    if not shown:
        return "## Held-out evaluation\n\nNo held-out figures (the run evaluated nothing before and after)."
    labels = dict(FIGURES)
    lines = ["| figure | start model | trained |", "| --- | ---: | ---: |"]
    lines += [
        f"| {labels.get(k, k)} | {_number(m[f'start_{k}'])} | {_number(m[f'eval_{k}'])} |" for k in shown
    ]
    return "## Held-out evaluation\n\n" + "\n".join(lines)


def _verdict(m: Mapping[str, Any]) -> str:
    verdict = m.get("learning_verdict")
    if not verdict:
        return ""
    change = m.get("heldout_margin_change")
    said = VERDICTS.get(verdict, verdict)
    return (
        "## Verdict\n\n"
        + said
        + (f" (held-out margin vs the start model {change:+.3g} nats)." if change else ".")
    )


def _reproduce(m: Mapping[str, Any], name: str, lora: bool) -> str:
    command = m.get("command")
    if command:
        language = "python" if command.startswith("import ") else "bash"
        how = f"```{language}\n{command}\n```"
    else:
        how = "Not recorded: the run was started neither from `smol-align` nor a `smol_align` one-liner."
    loader = "peft import AutoPeftModelForCausalLM" if lora else "transformers import AutoModelForCausalLM"
    cls = "AutoPeftModelForCausalLM" if lora else "AutoModelForCausalLM"
    use = f'```python\nfrom {loader}\n\nmodel = {cls}.from_pretrained("{name}")\n```'
    merge = (
        f"\n\nA whole model from the adapter: `smol-align merge {name} --output {name}-merged`."
        if lora
        else ""
    )
    return f"## Reproduce\n\n{how}\n\n## Use\n\n{use}{merge}"


def write_card(
    folder, metrics: Mapping[str, Any], merged_from: str | None = None, name: str | None = None
) -> Path:
    """``README.md`` in ``folder`` (over TRL's or PEFT's: call it after ``save_model``); returns its path.
    ``name``: the run's name (default: the folder's; a staging folder is named by its run's)."""
    folder = Path(folder)
    path = folder / "README.md"
    path.write_text(card_text(metrics, name or folder.name, merged_from))
    logger.debug("Wrote %s", path)
    return path

"""A LoRA run merged into its base: a whole model that plain ``transformers`` loads (``smol-align merge``).

peft's ``merge_and_unload()`` adds each adapter's update to its base weight. The base is loaded from the
folder the adapter names (``adapter_config.json``; the embedded model's converted copy offline) in fp32,
whatever the run trained on: a QLoRA run's 4-bit (NF4) base is not read back in 4-bit, whose rounding would
swallow the update, but in full precision (dequantized), and the output says so. The merged folder (safetensors
weights, config, tokenizer and its own model card, ``base_model`` the base's Hub id) is written whole under
the output folder rules of :mod:`smol_align.rundir`: an existing folder is replaced only with ``overwrite`` and
only if smol_align made it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .card import base_model_id, repo_name, write_card
from .errors import ConfigError
from .models import load_model
from .rundir import MERGED, RunDir, read_json

logger = logging.getLogger(__name__)


def merge(run, output_dir=None, *, overwrite: bool = False) -> Path:
    """Merge the LoRA adapter of the run folder ``run`` into its base and save the whole model in
    ``output_dir`` (default ``<run>/merged``); returns that folder. A run folder without an adapter (a full
    run: already a whole model) is a :class:`~smol_align.errors.ConfigError`."""
    run = Path(run)
    if not (run / "adapter_config.json").is_file():
        what = (
            "a full run's folder: it already holds the whole model (model.safetensors), which "
            "AutoModelForCausalLM.from_pretrained loads as it is"
            if (run / "config.json").is_file()
            else "not a LoRA run's folder"
            if run.is_dir()
            else "not a folder"
        )
        raise ConfigError(
            f"Cannot merge {run}: it has no adapter_config.json, so there is no LoRA adapter to merge; it is "
            f"{what}. Pass the output folder of a run trained with a LoRA preset (--preset lora or qlora-4bit)."
        )
    out = Path(output_dir) if output_dir else run / "merged"
    metrics = read_json(run / "metrics.json")
    rundir = RunDir(out, overwrite=overwrite, inputs=[run], what="merge")
    rundir.check()  # before the model loads
    base = json.loads((run / "adapter_config.json").read_text()).get("base_model_name_or_path")
    four_bit = bool(metrics.get("base_4bit"))
    logger.info(
        "Merging the LoRA adapter of %s into its base %s%s",
        run,
        base,
        " (the run's 4-bit base loaded in fp32: dequantized)" if four_bit else "",
    )
    model, tokenizer = load_model(str(run))  # the base in fp32, the adapter on it
    merged = model.merge_and_unload()
    if not metrics.get("base_model") and not metrics.get("base_model_unknown"):  # an adapter not of a run
        hub_id, why = base_model_id(base)
        metrics = {**metrics, **({"base_model": hub_id} if hub_id else {"base_model_unknown": why})}
    with rundir:
        with rundir.staged() as staging:
            merged.save_pretrained(staging)  # safetensors
            tokenizer.save_pretrained(staging)
            record = {"merged_from": str(run.resolve()), "base": base, "dequantized_from_4bit": four_bit}
            (staging / MERGED).write_text(json.dumps(record, indent=2) + "\n")
            write_card(staging, metrics, merged_from=str(run), name=repo_name(out))
        rundir.finish()
    return out


def merged_line(run, out) -> str:
    """What a merge says when it is done."""
    four_bit = bool(read_json(Path(run) / "metrics.json").get("base_4bit"))
    how = (
        "The run trained on a 4-bit (NF4) base; the adapter was merged into the base loaded in fp32 "
        "(dequantized), so its answers can differ slightly from the 4-bit run's. "
        if four_bit
        else ""
    )
    return (
        f"{how}Merged model saved to {out}: load it with AutoModelForCausalLM.from_pretrained({str(out)!r})."
    )

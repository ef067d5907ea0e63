"""The demo's recipes (``smol_align/recipes/demo-<method>.yaml``) and what a run on the demo data adds."""

from __future__ import annotations

from importlib import resources
from typing import Any

from ..presets import RECIPE_KEYS, resolve
from .data import NAME, pirate_voice


def demo_recipe(method: str, preset: str = "auto") -> dict:
    """The config values of the demo (``recipes/demo-<method>.yaml``), used by the CLI and the API alike.

    A ``learning_rate`` given per mode (``{full: 2.0e-5}``) applies to ``preset``'s mode only; the
    other modes keep their own rate.
    """
    import yaml

    recipe = yaml.safe_load((resources.files("smol_align") / "recipes" / f"demo-{method}.yaml").read_text())
    recipe = {k: v for k, v in recipe.items() if k not in RECIPE_KEYS}
    if isinstance(recipe.get("learning_rate"), dict):
        rate = recipe.pop("learning_rate").get(resolve(preset)[1].name)
        if rate is not None:
            recipe["learning_rate"] = float(rate)
    return recipe


def is_demo(dataset: Any) -> bool:
    """Whether ``dataset`` is the demo's: ``None`` (the default data), or pairs or splits with its name."""
    if dataset is None:
        return True
    if isinstance(dataset, dict):  # a DatasetDict: its splits carry the name
        dataset = next(iter(dataset.values()), None)
    name = getattr(dataset, "name", None) or getattr(getattr(dataset, "info", None), "dataset_name", None)
    return isinstance(name, str) and name.startswith(NAME)


def demo_keywords(method: str, dataset: Any, preset: str, overrides: dict) -> dict:
    """``overrides`` as a run on ``dataset`` takes them: with no dataset, the demo recipe under them (yours
    replace its values: ``num_train_epochs`` its ``max_steps``, ``loss_type`` its ``loss_weights``); on the
    demo's pairs, ``voice``: its pirate-voice check of the greedy answers (``voice_rate``), unless given."""
    if dataset is None:
        replaced_by = {"max_steps": "num_train_epochs", "loss_weights": "loss_type"}
        recipe = {k: v for k, v in demo_recipe(method, preset).items() if replaced_by.get(k) not in overrides}
        overrides = {**recipe, **overrides}
    return {"voice": pirate_voice, **overrides} if is_demo(dataset) else dict(overrides)

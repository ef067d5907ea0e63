"""The course demo, apart from the core: "Captain Byte" pairs, their voice check, recipes, reward and prompts.

``train_dpo()`` / ``smol-align dpo`` with no data, ``compare()`` and ``iterate()`` with no prompts run it;
the runner itself never names the demo: the entry points hand it the demo's keywords
(:func:`demo_keywords`: the recipe, ``voice``). :mod:`.data` and :mod:`.prompts` import nothing else from
smol_align (``smol_align.data.load(None)`` reads the pairs); :mod:`.recipes` reads :mod:`smol_align.presets`;
:mod:`.reward` uses :func:`smol_align.metrics.answer_figures`; :mod:`.images` draws the vision-language pairs.
"""

from .data import NAME, demo, demo_rows, pirate_voice
from .images import image_pairs
from .prompts import DEMO_SYSTEM, demo_prompts
from .recipes import demo_keywords, demo_recipe, is_demo
from .reward import demo_reward

__all__ = [
    "DEMO_SYSTEM",
    "NAME",
    "demo",
    "demo_keywords",
    "demo_prompts",
    "demo_recipe",
    "demo_reward",
    "demo_rows",
    "image_pairs",
    "is_demo",
    "pirate_voice",
]

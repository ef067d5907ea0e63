"""Unpaired rows for KTO: ``prompt``, ``completion``, ``label`` (True: desirable, False: undesirable).

Pairs become two rows each (:func:`unpair`); TRL's own unpaired format (``trl-unpaired``) is one of
:data:`~.formats.FORMATS`; held-out figures need pairs again (:func:`pairs_by_prompt`).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from .normalize import output_features


def is_unpaired(data: Any) -> bool:
    """True for rows with ``completion`` and ``label`` columns and no ``chosen``."""
    columns = set(getattr(data, "column_names", None) or [])
    return {"completion", "label"} <= columns and "chosen" not in columns


def unpair(pairs, seed: int = 0):
    """Each pair as two rows, its chosen answer (``label`` True) and its rejected one (False), alternating.

    KTO reads its rows in order and estimates its KL term from each row's batch neighbour's completion
    (TRL's ``unpair_preference_dataset`` puts a thousand chosen rows before their rejected ones: batches of
    one label). Here the pairs are shuffled (``seed``) and row ``2k`` is the chosen answer of the ``k``-th pair,
    row ``2k+1`` the rejected answer of the pair half the data further on: every even batch holds as many
    desirable rows as undesirable ones, and (from 4 pairs on) no row's neighbour answers its own prompt.
    """
    import random

    from datasets import interleave_datasets

    if not hasattr(pairs, "select"):
        raise ConfigError("KTO reads the training pairs whole, not streamed: pass streaming=False.")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    sides = [
        pairs.select(indices)
        .select_columns(["prompt", side])
        .rename_column(side, "completion")
        .add_column("label", [side == "chosen"] * len(order))
        for side, indices in (("chosen", order), ("rejected", order[half:] + order[:half]))
    ]
    return interleave_datasets(sides)


def pairs_by_prompt(rows):
    """Pairs from unpaired rows: each prompt's desirable and undesirable completions, matched in order
    (a prompt with 2 desirable and 1 undesirable gives 1 pair). ``None`` when no prompt has both."""
    import datasets

    sides: dict[str, tuple[list, list, list]] = {}
    for row in rows:
        _, good, bad = sides.setdefault(json.dumps(row["prompt"]), (row["prompt"], [], []))
        (good if row["label"] else bad).append(row["completion"])
    pairs = [
        {"prompt": p, "chosen": c, "rejected": r}
        for p, good, bad in sides.values()
        for c, r in zip(good, bad, strict=False)
    ]
    return datasets.Dataset.from_list(pairs, features=output_features(())) if pairs else None

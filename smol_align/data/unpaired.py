"""Unpaired rows for KTO: ``prompt``, ``completion``, ``label`` (True: desirable, False: undesirable).

Pairs become two rows each (:func:`unpair`); TRL's own unpaired format (``trl-unpaired``) is read
by :func:`normalize`; held-out figures need pairs again (:func:`pairs_by_prompt`).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError, DatasetFormatError
from .formats import FORMATS, UNPAIRED
from .messages import RowSetAside, flag


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
        pairs.select(indices).select_columns(["prompt", side]).rename_column(side, "completion")
        .add_column("label", [side == "chosen"] * len(order))
        for side, indices in (("chosen", order), ("rejected", order[half:] + order[:half]))
    ]  # fmt: skip
    return interleave_datasets(sides)


def normalize(data, name: str, strict: bool = False, filters: dict | None = None):
    """``(rows, report)``: unpaired rows (a list or a ``Dataset``) as conversational rows, each checked.

    A row that does not fit is set aside and counted (``strict=True``: raised), as for pairs; a
    ``label`` that is not true/false (or 1/0) raises ``DatasetFormatError`` at once: a label column
    in another encoding ("good", a 1-5 score) would otherwise train on the wrong side, or on nothing.
    """
    import datasets

    from .normalize import NormalizeReport, SetAside, output_features, row_error

    if isinstance(data, datasets.IterableDataset):
        raise ConfigError(f"{name}: unpaired rows are read whole, not streamed: pass streaming=False.")
    if filters:
        raise ConfigError(f"{name}: the filters ({', '.join(filters)}) apply to pairs, not to unpaired rows.")
    report = NormalizeReport(dataset=name, format=UNPAIRED)
    rows: list[dict] = []
    for index, row in enumerate(data):
        report.rows_in += 1
        try:
            out = FORMATS[UNPAIRED].row(row)
        except RowSetAside as err:
            if strict:
                raise row_error(name, UNPAIRED, index, err) from None
            report.add(SetAside(index, err.reason, err.column, err.detail))
            continue
        label = flag(out["label"])
        if label is None:
            raise DatasetFormatError(
                f"{name}, row {index}, column 'label': got {out['label']!r}. Expected ({UNPAIRED}): "
                f"{FORMATS[UNPAIRED].expected}.",
                dataset=name, row=index, column="label",
            )  # fmt: skip
        rows.append({**out, "label": label})
    if not rows:
        raise DatasetFormatError(f"{name}: none of its {report.rows_in} rows fit format {UNPAIRED!r}", dataset=name)
    message = output_features(())["prompt"]
    features = datasets.Features({"prompt": message, "completion": message, "label": datasets.Value("bool")})
    return datasets.Dataset.from_list(rows, features=features), report


def pairs_by_prompt(rows):
    """Pairs from unpaired rows: each prompt's desirable and undesirable completions, matched in order
    (a prompt with 2 desirable and 1 undesirable gives 1 pair). ``None`` when no prompt has both."""
    import datasets

    from .normalize import output_features

    sides: dict[str, tuple[list, list, list]] = {}
    for row in rows:
        _, good, bad = sides.setdefault(json.dumps(row["prompt"]), (row["prompt"], [], []))
        (good if row["label"] else bad).append(row["completion"])
    pairs = [{"prompt": p, "chosen": c, "rejected": r}
             for p, good, bad in sides.values() for c, r in zip(good, bad, strict=False)]  # fmt: skip
    return datasets.Dataset.from_list(pairs, features=output_features(())) if pairs else None

"""``load()``: what the user has -> TRL-ready train and held-out pairs, every row normalized once.

source (:mod:`.sources`) -> format -> ``columns=`` -> pairs (:mod:`.normalize`) -> train / held-out
split. Every entry point reads its data here with :data:`DATA_OPTIONS` and hands the
:class:`Pairs` on: nothing downstream normalizes again. Held out: ``eval_dataset``, else
``eval_split`` (a split name, or a fraction with ``split_seed``), else the data's test split, else
:data:`HELDOUT_FRACTION` of the pairs, at most :data:`MAX_HELDOUT`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DatasetFormatError
from . import filters, sources
from .formats import FORMATS
from .normalize import NormalizeReport, is_pairs, normalize_split

logger = logging.getLogger(__name__)

TRAIN_SPLITS = ("train", "train_prefs")
EVAL_SPLITS = ("test", "test_prefs", "validation", "valid", "eval")
HELDOUT_FRACTION = 0.1
MAX_HELDOUT = 300  # pairs: enough for a stable accuracy, few enough to evaluate twice on a CPU
_FORMAT_OPTIONS = {key for fmt in FORMATS.values() for key in fmt.options} - {"seed"}  # seed: TRL's
# Not datasets.map's batch_size (load and normalize take it themselves): train_dpo(batch_size=4) means the
# training batch and is refused, naming per_device_train_batch_size.
DATA_OPTIONS = frozenset(
    {
        "format",
        "columns",
        "split",
        "eval_split",
        "eval_dataset",
        "split_seed",
        "strict",
        "lenient",
        "max_rows",
        "streaming",
        "num_proc",
        "filters",
        *filters.FILTERS,
        *_FORMAT_OPTIONS,
    }
)


@dataclass
class Pairs:
    """TRL-ready pairs (or KTO's unpaired rows, format ``trl-unpaired``): ``train``, ``eval`` (``None``: nothing held
    out), and how they were made."""

    train: Any  # datasets.Dataset (IterableDataset when streamed)
    eval: Any | None
    name: str
    format: str
    heldout: str  # where eval came from, in words
    reports: dict[str, NormalizeReport] = field(default_factory=dict)  # "train", "eval"

    def __repr__(self) -> str:
        n = getattr(self.eval, "num_rows", None)
        return f"Pairs({self.name!r}, format={self.format!r}, train={getattr(self.train, 'num_rows', '?')}, eval={n}, {self.heldout})"


def _splits(data: Any, split: str | None, streaming: bool | None):
    """``(source, {split: data}, train split name, test split name or None)``; ``data=None`` is the demo."""
    if data is None:
        from .demo import demo

        data = demo()
    src = sources.read(data, streaming=streaming)
    parts = dict(src.data) if sources.is_split_dict(src.data) else {"train": src.data}
    names = list(parts)
    train = split or next(
        (s for s in (src.train_split, *TRAIN_SPLITS) if s in parts), names[0] if len(names) == 1 else None
    )
    if train not in parts:
        what = (
            f"no split {train!r} to train on; its splits" if train else "which split to train on? Its splits"
        )
        raise DatasetFormatError(f"{src.name}: {what}: {names} (pick one with split=)", dataset=src.name)
    test = next((s for s in (src.test_split, *EVAL_SPLITS) if s in parts and s != train), None)
    return src, parts, train, test


def _pairs_of(src, part, name: str, options: dict, max_rows: int | None):
    """One split, normalized: ``(dataset, report)``. Rows already in the normalized shape go through the
    same row checks (and ``format=``, ``columns=``, ``strict=``) as any other: nothing skips them."""
    import datasets

    if max_rows is not None:
        part = (
            part[:max_rows]
            if isinstance(part, list)
            else (
                part.take(max_rows)
                if isinstance(part, datasets.IterableDataset)
                else part.select(range(min(max_rows, len(part))))
            )
        )
    hint = "trl-conversational" if src.format is None and is_pairs(part) else src.format  # what auto detects
    return normalize_split(part, name, hint, **options)


def load(
    data: Any = None,
    *,
    format: str = "auto",
    columns: dict[str, str] | None = None,
    split: str | None = None,
    eval_split: str | float | None = None,
    eval_dataset: Any = None,
    split_seed: int = 0,
    max_rows: int | None = None,
    streaming: bool | None = None,
    **options: Any,
) -> Pairs:
    """Train and held-out pairs from ``data`` (``None``: the built-in demo), each row normalized once.

    Args:
        data: a hub id (with its splits), a local json/jsonl/parquet/csv/tsv file, a ``Dataset``,
            ``DatasetDict``, list or iterable of dicts, or :class:`Pairs` (returned as is).
        format: as for :func:`~smol_align.data.normalize`.
        columns: as for :func:`~smol_align.data.normalize`.
        split: the split to train on (default ``train``/``train_prefs``, a known hub id's own, or the only one).
        eval_split: a split name, a fraction of the training pairs to hold out (with ``split_seed``),
            or 0 for none; default: the test split, else 10% (at most :data:`MAX_HELDOUT` pairs).
        eval_dataset: held-out pairs in any form ``data`` takes (its test split if it has one).
        max_rows: read only the first rows of each split.
        **options: ``strict``, ``lenient``, the filters (``drop_identical``, ``drop_empty``, ...,
            ``filters="clean"``), the format's options, ``num_proc``, ``batch_size``.
    """
    known = {"strict", "lenient", "num_proc", "batch_size", "seed", *DATA_OPTIONS}
    for key in options:  # unknown keywords: refused here, as already-normalized pairs read only the filters
        if key not in known:
            from ..presets import unknown_option

            raise unknown_option(key, known, "load (smol_align.data.load)")
    if isinstance(data, Pairs):
        return (
            data
            if eval_dataset is None
            else Pairs(
                data.train,
                heldout_pairs(eval_dataset, format=format, columns=columns, **options),
                data.name,
                data.format,
                "eval_dataset",
                data.reports,
            )
        )
    src, parts, train_name, test_name = _splits(data, split, streaming)
    options = {"format": format, "columns": columns, **options}
    name = (
        src.name if len(parts) == 1 and not sources.is_split_dict(src.data) else f"{src.name}[{train_name}]"
    )
    train, report = _pairs_of(src, parts[train_name], name, options, max_rows)
    reports = {"train": report}
    evaluation, heldout = None, "none"
    if eval_dataset is not None:
        evaluation, heldout = heldout_pairs(eval_dataset, max_rows=max_rows, **options), "eval_dataset"
    elif isinstance(eval_split, str) and eval_split != "auto":
        if eval_split not in parts:
            raise DatasetFormatError(
                f"{src.name}: no split {eval_split!r}; its splits: {list(parts)}", dataset=src.name
            )
        test_name = eval_split
    elif eval_split in (0, False):
        test_name = None
    elif eval_split not in (None, "auto"):
        if isinstance(eval_split, bool) or not isinstance(eval_split, (int, float)) or not 0 < eval_split < 1:
            raise ConfigError(
                f"eval_split must be a split name, a fraction between 0 and 1, or 0; got {eval_split!r}"
            )
        test_name = None  # a fraction asked for: held out of the training pairs even beside a test split
    if eval_dataset is None and test_name is not None:
        evaluation, reports["eval"] = _pairs_of(
            src, parts[test_name], f"{src.name}[{test_name}]", options, max_rows
        )
        heldout = f"split {test_name!r}"
    elif eval_dataset is None and eval_split not in (0, False):
        train, evaluation, heldout = _hold_out(train, eval_split or HELDOUT_FRACTION, split_seed)
    unused = set(parts) - {train_name, test_name}
    if unused:
        logger.info(
            "%s: splits %s are not used (train: %r, held out: %s)",
            src.name,
            sorted(unused),
            train_name,
            heldout,
        )
    return Pairs(train, evaluation, name, report.format, heldout, reports)


def _hold_out(train, fraction: float, seed: int):
    import datasets

    if isinstance(train, datasets.IterableDataset):
        logger.warning("Streamed data: nothing held out (pass eval_split=NAME or eval_dataset=)")
        return train, None, "none (streamed)"
    n = min(MAX_HELDOUT, int(len(train) * fraction))
    if n == 0:
        logger.info("%d pairs: too few to hold %.0f%% out; no held-out figures", len(train), 100 * fraction)
        return train, None, "none (too few pairs)"
    parts = train.train_test_split(test_size=n, seed=seed)
    return parts["train"], parts["test"], f"{n} pairs held out ({fraction:.0%}, seed {seed})"


def heldout_pairs(data: Any, **options: Any):
    """One normalized split of ``data`` to evaluate on: its test split if it has one, else all of it."""
    if isinstance(data, Pairs):
        return data.eval if data.eval is not None else data.train
    options.pop("split", None)
    max_rows = options.pop("max_rows", None)
    src, parts, train_name, test_name = _splits(data, None, options.pop("streaming", None))
    chosen = test_name or train_name
    name = f"{src.name}[{chosen}]" if sources.is_split_dict(src.data) else src.name
    return _pairs_of(src, parts[chosen], name, options, max_rows)[0]

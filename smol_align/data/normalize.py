"""``normalize()``: preference data in any supported shape -> TRL conversational pairs, explicit prompt.

The work goes through ``datasets`` (a batched ``map`` with ``num_proc``, or a lazy map over an
``IterableDataset``), so a million-row dataset never has to fit in a Python list. Rows that do
not fit are never dropped silently:

- ``strict=False`` (default): each is set aside and counted by reason in a
  :class:`NormalizeReport` (a warning is logged with the counts). Get the report with
  ``normalize(..., return_report=True)`` -> ``(dataset, report)`` or, after the fact, with
  :func:`last_report`. The report keeps the indices of the invalid rows (so
  ``raw.select(report.invalid_rows)`` shows them) and a few examples per reason.
- ``strict=True``: the first one raises ``DatasetFormatError`` naming the dataset, the row, the
  column and what was expected.

For an ``IterableDataset`` the report fills up as the stream is read (nothing is read ahead).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from ..errors import ConfigError, DatasetFormatError
from . import filters, sources
from .formats.generic import check_mapping
from .messages import InvalidRow, RowSetAside
from .registry import METADATA, PAIR_COLUMNS, Format, detect, get_format, hub_spec

logger = logging.getLogger(__name__)

HELPERS = ("_reason", "_column", "_detail", "_invalid")  # per-row bookkeeping columns, removed at the end
EXAMPLES_PER_REASON = 3

# What a normalizer may raise on odd cells beyond RowSetAside; turned into an "unreadable row".
_ROW_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)


@dataclass
class SetAside:
    """One row that did not reach the output."""

    row: int
    reason: str
    column: str | None = None
    detail: str | None = None
    invalid: bool = True  # False: dropped on purpose (a binarization tie, a filter)


@dataclass
class NormalizeReport:
    """What ``normalize`` did to one dataset (one split): rows in/out, and every row set aside, by reason."""

    dataset: str
    format: str
    rows_in: int = 0
    invalid: Counter = field(default_factory=Counter)  # reason -> rows that do not fit the format
    dropped: Counter = field(default_factory=Counter)  # reason -> rows dropped on purpose (ties, filters)
    invalid_rows: list[int] = field(default_factory=list)  # input indices of the invalid rows
    examples: list[SetAside] = field(default_factory=list)  # the first few rows per reason
    streaming: bool = False  # counts grow while the stream is read

    @property
    def rows_out(self) -> int:
        return self.rows_in - sum(self.invalid.values()) - sum(self.dropped.values())

    def add(self, record: SetAside) -> None:
        counts = self.invalid if record.invalid else self.dropped
        counts[record.reason] += 1
        if record.invalid:
            self.invalid_rows.append(record.row)
        if counts[record.reason] <= EXAMPLES_PER_REASON:
            self.examples.append(record)
        if self.streaming and counts[record.reason] == 1:
            logger.warning(
                "%s: set aside row %d (%s); further rows like it are counted in the report",
                self.dataset,
                record.row,
                record.reason,
            )

    def summary_line(self) -> str:
        """One line: rows in, rows out, and what was set aside."""
        parts = [f"{self.dataset} ({self.format}): {self.rows_in:,} rows in, {self.rows_out:,} pairs out"]
        if self.invalid:
            parts.append(f"{sum(self.invalid.values()):,} invalid set aside ({_counts(self.invalid)})")
        if self.dropped:
            parts.append(f"{sum(self.dropped.values()):,} dropped ({_counts(self.dropped)})")
        return "; ".join(parts)

    def __str__(self) -> str:
        lines = [self.summary_line()]
        for record in self.examples:
            where = f"row {record.row}" + (f", column {record.column!r}" if record.column else "")
            detail = f" ({record.detail})" if record.detail else ""
            lines.append(f"  {where}: {record.reason}{detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "format": self.format,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "invalid": dict(self.invalid),
            "dropped": dict(self.dropped),
            "examples": [vars(record) for record in self.examples],
        }


def _counts(counter: Counter) -> str:
    return ", ".join(f"{reason}: {count:,}" for reason, count in counter.most_common())


_LAST_REPORT: NormalizeReport | dict[str, NormalizeReport] | None = None


def last_report() -> NormalizeReport | dict[str, NormalizeReport] | None:
    """The report of the latest ``normalize`` call in this process (a dict by split for a DatasetDict)."""
    return _LAST_REPORT


# ------------------------------------------------------------------------------------------------
# one row
# ------------------------------------------------------------------------------------------------


def normalize_row(fmt: Format, row: Any, options: dict[str, Any], metadata: tuple[str, ...]) -> dict:
    """The pair (with every metadata column) for one input row, or raise ``RowSetAside``."""
    if not isinstance(row, dict):
        raise InvalidRow("row: expected a dict of columns", None, f"got {type(row).__name__}")
    try:
        result = fmt.normalize_row(row, **options)
    except RowSetAside:
        raise
    except _ROW_ERRORS as exc:  # a cell shaped in a way no rule foresaw: still a counted, named reason
        logger.debug("unreadable row in format %s", fmt.name, exc_info=True)
        raise InvalidRow(f"{fmt.name}: unreadable row", None, f"{type(exc).__name__}: {exc}") from exc
    pair = {"prompt": result["prompt"], "chosen": result["chosen"], "rejected": result["rejected"]}
    for name in metadata:
        pair[name] = METADATA[name][1](result.get(name))
    return pair


def row_error(dataset: str, fmt: Format, index: int, exc: RowSetAside) -> DatasetFormatError:
    where = f"{dataset}, row {index}" + (f", column {exc.column!r}" if exc.column else "")
    return DatasetFormatError(
        f"{where}: {exc}. Expected ({fmt.name}): {fmt.expected}. "
        "With strict=False such rows are set aside and counted instead.",
        dataset=dataset,
        row=index,
        column=exc.column,
    )


def _normalize_batch(
    *args, format_name, columns, options, metadata, strict, dataset, report=None, schema=None
):
    """The ``datasets.map`` function: every row in, every row out, set-aside ones marked in HELPERS.

    With ``schema`` (a ``Dataset`` map) the batch comes back as an Arrow table built column by
    column, which is faster than letting ``datasets`` encode the nested message dicts.
    """
    *cells, indices = args
    fmt = get_format(format_name)
    pairs: list[dict | None] = []
    aside: list[RowSetAside | None] = []
    for index, values in zip(indices, zip(*cells, strict=False), strict=False):
        try:
            pairs.append(normalize_row(fmt, dict(zip(columns, values, strict=False)), options, metadata))
            aside.append(None)
        except RowSetAside as exc:
            if strict and exc.invalid:
                raise row_error(dataset, fmt, index, exc) from None
            pairs.append(None)
            aside.append(exc)
            if report is not None:  # streaming: the report lives in this process
                report.add(SetAside(index, exc.reason, exc.column, exc.detail, exc.invalid))
    if report is not None:
        report.rows_in += len(indices)
    if schema is not None:
        return _arrow_batch(pairs, aside, metadata, schema)
    empty = dict.fromkeys(metadata, None) | {"prompt": [], "chosen": [], "rejected": []}
    out = {name: [(pair or empty)[name] for pair in pairs] for name in (*PAIR_COLUMNS, *metadata)}
    out.update(_helper_columns(aside))
    return out


def _helper_columns(aside: list) -> dict[str, list]:
    return {
        "_reason": [exc and exc.reason for exc in aside],
        "_column": [exc and exc.column for exc in aside],
        "_detail": [exc and exc.detail for exc in aside],
        "_invalid": [exc and exc.invalid for exc in aside],
    }


def _arrow_batch(pairs: list, aside: list, metadata: tuple[str, ...], schema):
    import pyarrow as pa

    arrays = []
    kept = [pair for pair in pairs if pair is not None]
    for column in PAIR_COLUMNS:
        messages = [message for pair in kept for message in pair[column]]
        roles = [message["role"] for message in messages]
        contents = [message["content"] for message in messages]
        offsets = list(accumulate((0 if pair is None else len(pair[column]) for pair in pairs), initial=0))
        struct = pa.StructArray.from_arrays(
            [pa.array(roles, pa.string()), pa.array(contents, pa.string())], names=["role", "content"]
        )
        arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct))
    for name in metadata:
        values = [None if pair is None else pair[name] for pair in pairs]
        arrays.append(pa.array(values, schema.field(name).type))
    for name, values in _helper_columns(aside).items():
        arrays.append(pa.array(values, schema.field(name).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def output_features(metadata: tuple[str, ...], helpers: bool = False):
    from datasets import Features, Value

    message = [{"role": Value("string"), "content": Value("string")}]
    features = {name: message for name in PAIR_COLUMNS}
    features.update({name: Value(METADATA[name][0]) for name in metadata})
    if helpers:
        features.update({"_reason": Value("string"), "_column": Value("string"), "_detail": Value("string")})
        features["_invalid"] = Value("bool")
    return Features(features)


# ------------------------------------------------------------------------------------------------
# one split
# ------------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    fmt: Format
    options: dict[str, Any]
    filters: dict[str, Any]
    strict: bool
    num_proc: int | None
    batch_size: int


def _normalize_list(rows: list, plan: _Plan, report: NormalizeReport, metadata: tuple[str, ...]):
    from datasets import Dataset

    out: dict[str, list] = {name: [] for name in (*PAIR_COLUMNS, *metadata)}
    for index, row in enumerate(rows):
        try:
            pair = normalize_row(plan.fmt, row, plan.options, metadata)
        except RowSetAside as exc:
            if plan.strict and exc.invalid:
                raise row_error(report.dataset, plan.fmt, index, exc) from None
            report.add(SetAside(index, exc.reason, exc.column, exc.detail, exc.invalid))
        else:
            for name, value in pair.items():
                out[name].append(value)
    report.rows_in = len(rows)
    return Dataset.from_dict(out, features=output_features(metadata))


def _normalize_dataset(
    dataset, plan: _Plan, report: NormalizeReport, metadata: tuple[str, ...], columns: list
):
    import numpy as np

    features = output_features(metadata, helpers=True)
    mapped = dataset.map(
        _normalize_batch,
        batched=True,
        batch_size=plan.batch_size,
        with_indices=True,
        input_columns=columns,
        remove_columns=dataset.column_names,
        features=features,
        num_proc=plan.num_proc,
        fn_kwargs={**_batch_kwargs(plan, report, metadata, columns), "schema": features.arrow_schema},
        desc=f"Normalizing ({plan.fmt.name})",
    )
    report.rows_in = len(dataset)
    table = mapped.data
    reasons = table.column("_reason")
    if reasons.null_count < len(mapped):
        valid = reasons.is_null().to_numpy(zero_copy_only=False)
        aside = np.flatnonzero(~valid)
        helpers = [table.column(name).take(aside).to_pylist() for name in HELPERS]
        for index, reason, column, detail, invalid in zip(aside.tolist(), *helpers, strict=False):
            report.add(SetAside(index, reason, column, detail, invalid))
        mapped = mapped.select(np.flatnonzero(valid))
    return mapped.remove_columns(list(HELPERS))


def _normalize_iterable(dataset, plan, report, metadata, columns, column_names):
    report.streaming = True
    mapped = dataset.map(
        _normalize_batch,
        batched=True,
        batch_size=plan.batch_size,
        with_indices=True,
        input_columns=columns,
        remove_columns=list(column_names),
        features=output_features(metadata, helpers=True),
        fn_kwargs={**_batch_kwargs(plan, report, metadata, columns), "report": report},
    )
    kept = mapped.filter(lambda reason: reason is None, input_columns=["_reason"])
    return kept.remove_columns(list(HELPERS))


def _batch_kwargs(plan: _Plan, report: NormalizeReport, metadata, columns) -> dict[str, Any]:
    return {
        "format_name": plan.fmt.name,
        "columns": list(columns),
        "options": plan.options,
        "metadata": metadata,
        "strict": plan.strict,
        "dataset": report.dataset,
    }


def _normalize_split(data, name: str, plan: _Plan, column_names: list):
    """``(normalized split, its report)``."""
    report = NormalizeReport(dataset=name, format=plan.fmt.name)
    metadata = plan.fmt.output_metadata(column_names, plan.options)
    columns = plan.fmt.columns_read(column_names, plan.options)
    filters.check_columns(plan.filters, [*PAIR_COLUMNS, *metadata], plan.fmt.name)

    if isinstance(data, list):
        result = _normalize_list(data, plan, report, metadata)
    else:
        import datasets

        if isinstance(data, datasets.IterableDataset):
            result = _normalize_iterable(data, plan, report, metadata, columns, column_names)
            return filters.apply_streaming(result, plan.filters, report.dropped), report
        result = _normalize_dataset(data, plan, report, metadata, columns)

    if report.rows_in and report.rows_out + sum(report.dropped.values()) == 0:
        first = next(record for record in report.examples if record.invalid)
        raise DatasetFormatError(
            f"{name}: none of its {report.rows_in:,} rows fit format {plan.fmt.name!r} "
            f"({_counts(report.invalid)}); first, row {first.row}: {first.reason}"
            f"{f' ({first.detail})' if first.detail else ''}. Expected: {plan.fmt.expected}",
            dataset=name,
            row=first.row,
            column=first.column,
        )
    result, dropped = filters.apply(result, plan.filters, plan.num_proc, plan.batch_size)
    report.dropped.update(dropped)
    if report.invalid:
        logger.warning(
            "%s: set aside %s of %s rows that do not fit %r: %s. "
            "See normalize(..., return_report=True) or smol_align.data.last_report().",
            name,
            f"{sum(report.invalid.values()):,}",
            f"{report.rows_in:,}",
            plan.fmt.name,
            _counts(report.invalid),
        )
    return result, report


# ------------------------------------------------------------------------------------------------
# the entry point
# ------------------------------------------------------------------------------------------------


def resolve_format(source, columns, hub_format, column_names, rows, dataset, options) -> tuple[Format, dict]:
    """The format to use and its options: ``columns=``, then ``source=``, then a known hub id, then detection."""
    options = dict(options)
    if columns is not None:
        if source not in ("auto", "columns"):
            raise ConfigError(f"pass either source={source!r} or columns=, not both")
        mapping = check_mapping(columns)
        missing = [column for column in mapping.values() if column not in column_names]
        if missing:
            raise DatasetFormatError(
                f"{dataset}: columns= names {missing[0]!r}, but the data has no such column; "
                f"its columns: {sorted(map(str, column_names))}",
                dataset=dataset,
                column=missing[0],
            )
        fmt, options = get_format("columns"), {**options, "columns": mapping}
    elif source == "columns":
        raise ConfigError("source='columns' needs columns={'prompt': ..., 'chosen': ..., 'rejected': ...}")
    elif not isinstance(source, str):
        raise ConfigError(f"source must be 'auto' or a format name, got {source!r}")
    elif source != "auto":
        fmt = get_format(source)
    elif hub_format is not None:
        fmt = get_format(hub_format)
    else:
        fmt = get_format(detect(column_names, rows, dataset))
    missing = [column for column in fmt.required if column not in column_names]
    if missing:
        raise DatasetFormatError(
            f"{dataset}: format {fmt.name!r} needs the column(s) {missing}; the data has "
            f"{sorted(map(str, column_names))}. Expected: {fmt.expected}",
            dataset=dataset,
            column=missing[0],
        )
    return fmt, fmt.check_options(options)


def normalize(
    data: Any,
    source: str = "auto",
    columns: dict[str, str] | None = None,
    split: str | None = None,
    strict: bool = False,
    *,
    return_report: bool = False,
    num_proc: int | None = None,
    batch_size: int = 1000,
    **options: Any,
):
    """Preference data in any supported shape -> TRL conversational pairs with an explicit prompt.

    Args:
        data: a hub id (``"Anthropic/hh-rlhf"``, ``"Anthropic/hh-rlhf/harmless-base"``), a local
            json/jsonl/parquet/csv file (or a ``save_to_disk`` folder), a ``Dataset``,
            ``IterableDataset``, ``DatasetDict`` or a list of dicts.
        source: ``"auto"`` (known hub ids pick their format, else detection), or a name from
            :func:`formats` to force one.
        columns: for other schemas, which column is which: ``{"prompt": ..., "chosen": ...,
            "rejected": ..., "system": ...}`` (plus stable metadata names to keep).
        split: the split to take from a hub id or a ``DatasetDict`` (known hub ids default to
            their usual preference split; otherwise every split is normalized).
        strict: raise ``DatasetFormatError`` on the first row that does not fit, instead of
            setting it aside and counting it.
        return_report: return ``(dataset, report)``; the report is also :func:`last_report`.
        num_proc, batch_size: passed to ``datasets.map``.
        **options: the format's options (raw UltraFeedback: ``strategy``, ``rating``, ``seed``),
            filters (``drop_empty``, ``drop_identical``, ``drop_ties``, ``min_margin``,
            ``argilla_orca``, ``dedupe_prompts``) or a filter ``recipe`` (``"argilla-orca"``,
            ``"clean"``), and ``streaming`` for hub ids and files.

    Returns:
        A ``Dataset`` (an ``IterableDataset`` for one, a ``DatasetDict`` for one) with columns
        ``prompt``, ``chosen``, ``rejected`` (lists of ``{"role", "content"}``) and the format's
        metadata under stable names (``score_chosen``, ``score_rejected``, ``source``, ...).
    """
    global _LAST_REPORT
    filter_options = {
        key: options.pop(key) for key in list(options) if key in filters.FILTERS or key == "recipe"
    }
    active = filters.resolve(**filter_options)
    streaming = options.pop("streaming", None)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")

    src = sources.read(data, split=split, streaming=streaming)
    splits = src.data if _is_dataset_dict(src.data) else {None: src.data}
    if not splits:
        raise DatasetFormatError(f"{src.name}: no splits", dataset=src.name)

    plan = None
    results, reports = {}, {}
    for split_name, part in splits.items():
        name = src.name if split_name is None else f"{src.name}[{split_name}]"
        column_names, rows = sources.columns_and_rows(part)
        if isinstance(part, list) and not part:
            raise DatasetFormatError(f"{name}: no rows", dataset=name)
        if isinstance(part, list) and not rows:
            raise DatasetFormatError(
                f"{name}: expected a list of dicts (one per row), got {type(part[0]).__name__} first",
                dataset=name,
            )
        if plan is None:  # one format for every split, chosen on the first
            fmt, fmt_options = resolve_format(
                source, columns, src.hub_format, column_names, rows, name, options
            )
            plan = _Plan(fmt, fmt_options, active, strict, num_proc, batch_size)
        results[split_name], reports[split_name] = _normalize_split(part, name, plan, column_names)

    if None in results:
        dataset, report = results[None], reports[None]
    else:
        import datasets

        iterable = isinstance(src.data, datasets.IterableDatasetDict)
        dataset = (datasets.IterableDatasetDict if iterable else datasets.DatasetDict)(results)
        report = reports
    _LAST_REPORT = report
    return (dataset, report) if return_report else dataset


def _is_dataset_dict(data: Any) -> bool:
    if isinstance(data, list):
        return False
    import datasets

    return isinstance(data, (datasets.DatasetDict, datasets.IterableDatasetDict))


def detect_format(data: Any, split: str | None = None) -> str:
    """The name of the registered format that fits ``data`` (known hub ids are named without loading)."""
    if isinstance(data, str) and sources.is_hub_id(data):
        known = hub_spec(data).format
        if known is not None:
            return known
    src = sources.read(data, split=split)
    part = next(iter(src.data.values())) if _is_dataset_dict(src.data) else src.data
    column_names, rows = sources.columns_and_rows(part)
    if src.hub_format is not None:
        return src.hub_format
    return detect(column_names, rows, src.name)

"""``normalize()``: preference data in any supported shape -> TRL conversational pairs, explicit prompt.

One batched ``datasets`` map (``num_proc``; lazy over an ``IterableDataset``), so a million rows
never sit in a Python list. No row is dropped silently: with ``strict=False`` each misfit is set
aside and counted by reason in a :class:`NormalizeReport` (``return_report=True``, or
:func:`last_report`; ``raw.select(report.invalid_rows)`` shows them); ``strict=True`` raises
``DatasetFormatError`` at the first; rows smol_align cannot train as they are (tool calls, a KTO label
in another encoding) raise either way. A text column the format does not read is an error that
names it (``lenient=True``: a warning, and the report's ``unused_columns``); other columns it does
not read are named too (a warning, and the report's ``dropped_columns``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DatasetFormatError
from . import filters, sources
from .formats import FORMATS, METADATA, PAIR_COLUMNS, UNPAIRED, Format, detect, get, hub_format
from .images import IMAGE, IMAGES, images_feature
from .messages import InvalidRow, Refused, RowSetAside, is_message_list

logger = logging.getLogger(__name__)

ASIDE = "_aside"  # per-row bookkeeping column, removed at the end: why the row was set aside (JSON), or None
EXAMPLES_PER_REASON = 3

# What a row function may raise on odd cells beyond RowSetAside; turned into an "unreadable row".
_ROW_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)


@dataclass
class SetAside:
    """One row that did not reach the output."""

    row: int
    reason: str
    column: str | None = None
    detail: str | None = None
    invalid: bool = True  # False: dropped on purpose (a binarization tie, a filter)

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


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
    unused_columns: list[str] = field(default_factory=list)  # text columns left out (lenient=True)
    dropped_columns: list[str] = field(default_factory=list)  # other columns not read by the format, left out

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
        parts += (
            [f"{sum(self.invalid.values()):,} invalid set aside ({_counts(self.invalid)})"]
            if self.invalid
            else []
        )
        parts += [f"{sum(self.dropped.values()):,} dropped ({_counts(self.dropped)})"] if self.dropped else []
        left_out = [*self.unused_columns, *self.dropped_columns]
        parts += [f"columns left out: {', '.join(left_out)}"] if left_out else []
        return "; ".join(parts)

    def __str__(self) -> str:
        return "\n".join([self.summary_line(), *(f"  {record}" for record in self.examples)])

    def to_dict(self) -> dict[str, Any]:
        counts = {key: getattr(self, key) for key in ("dataset", "format", "rows_in", "rows_out")}
        return counts | {
            "invalid": dict(self.invalid),
            "dropped": dict(self.dropped),
            "unused_columns": list(self.unused_columns),
            "dropped_columns": list(self.dropped_columns),
            "examples": [vars(record) for record in self.examples],
        }


def _counts(counter: Counter) -> str:
    return ", ".join(f"{reason}: {count:,}" for reason, count in counter.most_common())


_LAST_REPORT: NormalizeReport | dict[str, NormalizeReport] | None = None


def last_report() -> NormalizeReport | dict[str, NormalizeReport] | None:
    """The report of the latest ``normalize`` call in this process (a dict by split for a DatasetDict)."""
    return _LAST_REPORT


def normalize_row(
    name: str, row: Any, options: dict[str, Any], extras: tuple[str, ...] | None = None
) -> dict:
    """The pair (with its ``extras``; default: those whose column ``row`` has) that format ``name``
    makes of one row, or raise ``RowSetAside``."""
    fmt = FORMATS[name]
    if not isinstance(row, dict):
        raise InvalidRow("row: expected a dict of columns", None, f"got {type(row).__name__}")
    try:
        result = fmt.row(row, **options)
    except RowSetAside:
        raise
    except _ROW_ERRORS as exc:  # a cell shaped in a way no rule foresaw: still a counted, named reason
        raise InvalidRow(f"{name}: unreadable row", None, f"{type(exc).__name__}: {exc}") from exc
    pair = {column: result[column] for column in fmt.columns}
    for extra in fmt.extras_in(list(row)) if extras is None else extras:
        column = fmt.extras[extra]
        pair[extra] = METADATA[extra][1](result[extra] if extra in result else row.get(column), column)
    return pair


def row_error(dataset: str, name: str, index: int, exc: RowSetAside) -> DatasetFormatError:
    refused = isinstance(exc, Refused)
    also = "" if refused else " With strict=False such rows are set aside and counted instead."
    where = SetAside(index, exc.reason, exc.column, exc.detail)
    message = f"{dataset}, {where}. Expected ({name}): {FORMATS[name].expected}.{exc.hint}{also}"
    return DatasetFormatError(message, dataset=dataset, row=index, column=exc.column)


def _normalize_rows(rows, indices, name, options, extras, strict, dataset, report=None) -> dict[str, list]:
    """Every row in, every row out: its pair, or (set aside) an empty one with why in ``ASIDE``. A stream
    (read lazily in this process) also counts its rows in ``report`` as they go by."""
    columns = (*FORMATS[name].columns, *extras)
    out: dict[str, list] = {column: [] for column in (*columns, ASIDE)}
    for index, row in zip(indices, rows, strict=True):
        try:
            pair, aside = normalize_row(name, row, options, extras), None
        except RowSetAside as err:
            if (strict and err.invalid) or isinstance(err, Refused):
                raise row_error(dataset, name, index, err) from None
            pair, aside = dict.fromkeys(columns), [err.reason, err.column, err.detail, err.invalid]
            if report is not None:
                report.add(SetAside(index, *aside))
        for column in columns:
            out[column].append(pair[column])
        out[ASIDE].append(aside and json.dumps(aside))
    if report is not None:
        report.rows_in += len(indices)
    return out


def _normalize_batch(*args, columns, **context):
    """The ``datasets.map`` function: the batch's cells (``columns``) as rows."""
    *cells, indices = args
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*cells, strict=True)]
    return _normalize_rows(rows, indices, **context)


def output_features(extras: tuple[str, ...], helpers: bool = False, columns=PAIR_COLUMNS):
    """The features of normalized rows: messages for the TRL columns (a bool ``label``), stable types for the extras."""
    from datasets import Features, Value

    message = [{"role": Value("string"), "content": Value("string")}]
    kinds = {"label": Value("bool"), "text": Value("string")}  # KTO's label, SFT's text; the rest messages
    features = {column: kinds.get(column, message) for column in columns}
    features.update({extra: _feature(METADATA[extra][0]) for extra in extras})
    return Features(features | ({ASIDE: Value("string")} if helpers else {}))


def _feature(dtype: str):
    from datasets import Value

    return images_feature() if dtype == IMAGES else Value(dtype)


def is_pairs(data: Any) -> bool:
    """True for a ``Dataset`` already in the normalized shape (TRL columns as messages, stable extras)."""
    import datasets

    if not isinstance(data, datasets.Dataset) or not set(PAIR_COLUMNS) <= set(data.column_names):
        return False
    extras = tuple(c for c in data.column_names if c not in PAIR_COLUMNS)
    return all(c in METADATA for c in extras) and data.features == output_features(extras)


def normalize_split(
    data,
    name: str,
    hub: str | None = None,
    format: str = "auto",
    columns=None,
    strict=False,
    lenient=False,
    num_proc=None,
    batch_size=1000,
    **options,
):
    """One split (a list of rows, a ``Dataset`` or ``IterableDataset``) -> ``(its pairs, its report)``:
    ``columns=`` renamed, the format resolved (``hub``: a known hub id's), each row normalized once."""
    import datasets
    import numpy as np

    active = filters.take(options)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    column_names, rows = sources.columns_and_rows(data)
    if isinstance(data, list) and not data:
        raise DatasetFormatError(f"{name}: no rows", dataset=name)
    if isinstance(data, list) and not rows:
        raise DatasetFormatError(
            f"{name}: expected a list of dicts (one per row), got {type(data[0]).__name__} first",
            dataset=name,
        )
    if columns is not None:
        data, column_names = rename(data, columns, column_names, name)
        rows = sources.columns_and_rows(data)[1]
    if IMAGE in column_names and IMAGES not in column_names:  # TRL's single image: a one-image list
        data, column_names = rename(data, {IMAGES: IMAGE}, column_names, name)
        rows = sources.columns_and_rows(data)[1]
    format, unused = resolve_format(format, column_names, text_columns(data, rows), rows, name, lenient, hub)
    if format == UNPAIRED and isinstance(data, datasets.IterableDataset):
        raise ConfigError(f"{name}: unpaired rows are read whole, not streamed: pass streaming=False.")
    fmt = FORMATS[format]
    if fmt.columns != PAIR_COLUMNS and active:
        what = "unpaired rows" if format == UNPAIRED else "SFT rows"
        raise ConfigError(f"{name}: the filters ({', '.join(active)}) apply to pairs, not to {what}.")
    options = fmt.check_options(format, options)
    others = [c for c in column_names if c not in fmt.known() and c not in unused]  # numbers, flags, ...
    if others:
        logger.warning(
            "%s: format %r does not read the column(s) %s: left out (columns named %s are kept: rename one "
            "with columns= to keep it)",
            *(name, format, others, ", ".join(fmt.extras)),
        )
    report = NormalizeReport(dataset=name, format=format, unused_columns=unused, dropped_columns=others)
    extras = fmt.extras_in(column_names)
    filters.check_columns(active, [*PAIR_COLUMNS, *extras], format)
    context = {"name": format, "options": options, "extras": extras, "strict": strict, "dataset": name}
    features = output_features(extras, helpers=True, columns=fmt.columns)
    if isinstance(data, list):
        marked = datasets.Dataset.from_dict(
            _normalize_rows(data, range(len(data)), **context), features=features
        )
    else:
        columns = [c for c in column_names if c in fmt.known()]
        report.streaming = isinstance(data, datasets.IterableDataset)
        more = (
            {"fn_kwargs": {**context, "report": report}}
            if report.streaming
            else {"num_proc": num_proc, "desc": f"Normalizing ({format})", "fn_kwargs": context}
        )
        more["fn_kwargs"]["columns"] = columns
        marked = data.map(
            _normalize_batch,
            batched=True,
            batch_size=batch_size,
            with_indices=True,
            input_columns=columns,
            remove_columns=list(column_names),
            features=features,
            **more,
        )
        if report.streaming:  # set-aside rows are counted while the stream is read
            kept = marked.filter(lambda aside: aside is None, input_columns=[ASIDE]).remove_columns(ASIDE)
            return filters.apply(kept, active, report.dropped), report

    report.rows_in = len(marked)
    valid = marked.data.column(ASIDE).is_null().to_numpy(zero_copy_only=False)
    aside = np.flatnonzero(~valid)
    for index, record in zip(aside.tolist(), marked.data.column(ASIDE).take(aside).to_pylist(), strict=True):
        report.add(SetAside(index, *json.loads(record)))
    result = (marked.select(np.flatnonzero(valid)) if len(aside) else marked).remove_columns(ASIDE)
    if report.rows_in and report.rows_out + sum(report.dropped.values()) == 0:
        first = next(record for record in report.examples if record.invalid)
        raise DatasetFormatError(
            f"{name}: none of its {report.rows_in:,} rows fit format {format!r} ({_counts(report.invalid)}); "
            f"first, {first}. Expected: {fmt.expected}",
            dataset=name,
            row=first.row,
            column=first.column,
        )
    result = filters.apply(result, active, report.dropped)
    if report.invalid:
        logger.warning(
            "%s: set aside %s of %s rows that do not fit %r: %s. See normalize(..., return_report=True).",
            name,
            f"{sum(report.invalid.values()):,}",
            f"{report.rows_in:,}",
            format,
            _counts(report.invalid),
        )
    return result, report


def rename(data: Any, columns: Any, column_names: list, dataset: str):
    """``data`` with its columns renamed by ``columns={new name: column in the data}``."""
    if not isinstance(columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
    ):
        raise ConfigError(
            f"columns= must map names to your columns, like {{'prompt': 'question'}}; got {columns!r}"
        )
    twice = [old for old in columns.values() if list(columns.values()).count(old) > 1]
    if twice:
        raise ConfigError(f"columns= names the column {twice[0]!r} twice")
    mapping = {old: new for new, old in columns.items() if old != new}
    for old, new in mapping.items():
        if old not in column_names:
            raise DatasetFormatError(
                f"{dataset}: columns= names {old!r}, but the data has no such column; its "
                f"columns: {sorted(map(str, column_names))}",
                dataset=dataset,
                column=old,
            )
        if new in column_names and new not in mapping:
            raise DatasetFormatError(
                f"{dataset}: columns= renames {old!r} to {new!r}, which the data already has",
                dataset=dataset,
                column=new,
            )
    if not mapping:
        return data, column_names
    renamed = [mapping.get(c, c) for c in column_names]
    if isinstance(data, list):
        return [
            {mapping.get(k, k): v for k, v in row.items()} if isinstance(row, dict) else row for row in data
        ], renamed
    return data.rename_columns(mapping), renamed


def text_columns(data: Any, rows: list[dict]) -> set[str]:
    """The columns that hold text or messages: by a dataset's features, else by every row of a list
    (by the first ``rows`` of a stream without features)."""
    from datasets import Value

    if getattr(data, "features", None) is None:
        rows = data if isinstance(data, list) else rows
        return {
            c
            for row in rows
            if isinstance(row, dict)
            for c, v in row.items()
            if isinstance(v, str) or is_message_list(v) or (isinstance(v, dict) and bool(v))
        }

    def holds_text(f) -> bool:
        if isinstance(f, Value):
            return f.dtype in ("string", "large_string")
        if isinstance(f, (list, tuple)):
            return any(holds_text(x) for x in f)
        if isinstance(f, dict):
            return any(holds_text(x) for x in f.values())
        return holds_text(f.feature) if hasattr(f, "feature") else False

    return {c for c, f in data.features.items() if holds_text(f)}


def resolve_format(
    name: str, column_names: list, texts: set, rows: list[dict], dataset: str, lenient: bool, hub
):
    """The format to use: ``format=``, else a known hub id's, else detection; then its columns are checked."""
    if not isinstance(name, str):
        raise ConfigError(f"format must be 'auto' or a format name, got {name!r}")
    name = hub if name == "auto" and hub is not None else name
    name = detect(column_names, rows, dataset) if name == "auto" else name
    fmt: Format = get(name)
    missing = [c for c in fmt.signature if c not in column_names]
    if missing:
        raise DatasetFormatError(
            f"{dataset}: format {name!r} needs the column(s) {missing}; the data has "
            f"{sorted(map(str, column_names))}. Expected: {fmt.expected}",
            dataset=dataset,
            column=missing[0],
        )
    unused = [c for c in column_names if c not in fmt.known() and c in texts]
    if unused and not lenient:
        example = "" if unused[0] == "prompt" else f", e.g. columns={{'prompt': {unused[0]!r}}}"
        raise DatasetFormatError(
            f"{dataset}: column {unused[0]!r} holds text that format {name!r} does not read "
            f"{f'(nor {unused[1:]}) ' if unused[1:] else ''}"
            f"(it reads {sorted(c for c in fmt.known() if c in column_names)}). Map it with "
            f"columns={example}, pick another format with format=, remove it, or pass lenient=True to leave "
            "it out with a warning.",
            dataset=dataset,
            column=unused[0],
        )
    if unused:
        logger.warning("%s: format %r does not read the text column(s) %s: left out", dataset, name, unused)
    return name, unused


def normalize(
    data: Any,
    format: str = "auto",
    columns: dict[str, str] | None = None,
    split: str | None = None,
    strict: bool = False,
    lenient: bool = False,
    *,
    return_report: bool = False,
    num_proc: int | None = None,
    batch_size: int = 1000,
    **options: Any,
):
    """Preference data in any supported shape -> TRL conversational pairs with an explicit prompt.

    Args:
        data: a hub id (``"Anthropic/hh-rlhf"``, ``"Anthropic/hh-rlhf/harmless-base"``), a local
            json/jsonl/parquet/csv/tsv file or ``save_to_disk`` folder, a ``Dataset``,
            ``IterableDataset``, ``DatasetDict``, or a list (or iterable) of dicts.
        format: ``"auto"`` (a known hub id's, else detected) or a name from :func:`formats`.
        columns: renames your columns first, so that a format fits: ``{"prompt": "question", ...}``.
        split: one split of a hub id or ``DatasetDict`` (default: every split).
        strict: raise ``DatasetFormatError`` at the first row that does not fit, instead of counting it.
        lenient: leave out (with a warning) text columns the format does not read, instead of raising.
        return_report: return ``(dataset, report)``; the report is also :func:`last_report`.
        num_proc: passed to ``datasets.map``.
        batch_size: passed to ``datasets.map``.
        **options: the format's (raw UltraFeedback: ``strategy``, ``rating``, ``seed``), the filters
            (``drop_empty``, ..., ``filters="clean"``), and ``streaming`` for hub ids and files.

    Returns a ``Dataset`` (an ``IterableDataset`` / ``DatasetDict`` for one, or for a hub id) of
    ``prompt``, ``chosen``, ``rejected`` messages and the schema's extras under stable names.
    """
    global _LAST_REPORT
    src = sources.read(data, split=split, streaming=options.pop("streaming", None))
    splits = src.data if sources.is_split_dict(src.data) else {None: src.data}
    if not splits:
        raise DatasetFormatError(f"{src.name}: no splits", dataset=src.name)
    results, reports = {}, {}
    for split_name, part in splits.items():
        name = src.name if split_name is None else f"{src.name}[{split_name}]"
        chosen = next(iter(reports.values())).format if reports else format  # one format for every split
        results[split_name], reports[split_name] = normalize_split(
            part, name, src.format, chosen, columns, strict, lenient, num_proc, batch_size, **options
        )
    dataset, _LAST_REPORT = (
        (results[None], reports[None]) if None in results else (type(src.data)(results), reports)
    )
    return (dataset, _LAST_REPORT) if return_report else dataset


def detect_format(data: Any, split: str | None = None) -> str:
    """The name of the format that fits ``data`` (known hub ids are named without loading)."""
    if isinstance(data, str) and sources.is_hub_id(data) and hub_format(data)[2] is not None:
        return hub_format(data)[2]
    src = sources.read(data, split=split)
    part = next(iter(src.data.values())) if sources.is_split_dict(src.data) else src.data
    column_names, rows = sources.columns_and_rows(part)
    return src.format or detect(column_names, rows, src.name)

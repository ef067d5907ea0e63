"""Reading what the user has: a hub id (with its splits), a local file, a dataset, a list or iterable of rows.

A file that cannot be read says which file, which line and why (bytes that are not UTF-8 included).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..errors import DatasetFormatError
from .formats import hub_format

LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "csv"}
TEXT_BUILDERS = ("json", "csv")  # read as UTF-8 text
_CHUNK = 1 << 20
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(/[\w.-]+)*$")


@dataclass
class Source:
    """What was read: the data (one split, or a dict of splits), a name for messages, the hub's hints."""

    data: Any  # list of dicts, Dataset, IterableDataset, DatasetDict or IterableDatasetDict
    name: str
    format: str | None = None  # the format a known hub id implies
    train_split: str | None = None  # its usual splits
    test_split: str | None = None


def _suffix(path: str) -> str:
    stem = next((path[: -len(e)] for e in _COMPRESSED if path.endswith(e)), path)
    return os.path.splitext(stem)[1].lower()


def is_hub_id(data: str) -> bool:
    """``owner/name`` (optionally ``/sub/folder``) that is neither a local path nor a file name."""
    return bool(_HUB_ID.match(data)) and not os.path.exists(data) and _suffix(data) not in LOCAL_BUILDERS


def read(data: Any, split: str | None = None, streaming: bool | None = None) -> Source:
    """Read ``data`` (every split unless ``split`` is given) without looking at its format."""
    import datasets

    data = os.fspath(data) if isinstance(data, os.PathLike) else data
    if isinstance(data, str) and is_hub_id(data):
        return _read_hub(data, split, streaming)
    if isinstance(data, str) and os.path.exists(data):
        src = Source(_read_local(data, streaming), data)
    elif isinstance(data, str):
        if _suffix(data) in LOCAL_BUILDERS:
            raise DatasetFormatError(f"no such file: {data!r} (from {os.getcwd()})", dataset=data)
        raise DatasetFormatError(
            f"{data!r} is neither a local file nor a hub id (owner/name). "
            f"Local files may be {', '.join(sorted(LOCAL_BUILDERS))}.",
            dataset=data,
        )
    elif is_split_dict(data):
        src = Source(data, _dataset_name(next(iter(data.values()), None)))
    elif isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
        src = Source(data, _dataset_name(data))
    elif isinstance(data, (list, tuple)):
        src = Source(list(data), "<list of rows>")
    elif hasattr(data, "__iter__") and not isinstance(data, (dict, bytes)):
        src = Source(list(data), f"<{type(data).__name__} of rows>")
    else:
        raise DatasetFormatError(
            f"cannot read a {type(data).__name__}: pass a hub id, a local json/jsonl/parquet/csv/tsv path, "
            "a datasets.Dataset / IterableDataset / DatasetDict, or a list (or iterable) of dicts"
        )
    if split is None:
        return src
    if is_split_dict(src.data):  # a named split of a dict, or 'train' of data with one split
        if split not in src.data:
            raise DatasetFormatError(
                f"{src.name}: no split {split!r}; splits: {list(src.data)}", dataset=src.name
            )
        return Source(src.data[split], f"{src.name}[{split}]", src.format)
    if split != "train":
        raise DatasetFormatError(
            f"{src.name}: has one split, 'train' (asked for {split!r})", dataset=src.name
        )
    return src


def is_split_dict(data: Any) -> bool:
    import datasets

    return isinstance(data, (datasets.DatasetDict, datasets.IterableDatasetDict))


def _dataset_name(dataset: Any) -> str:
    info = getattr(dataset, "info", None)
    return getattr(info, "dataset_name", None) or f"<{type(dataset).__name__}>"


def _read_local(path: str, streaming: bool | None):
    import datasets

    if os.path.isdir(path):
        if any(
            os.path.exists(os.path.join(path, f))
            for f in ("dataset_info.json", "dataset_dict.json", "state.json")
        ):
            return datasets.load_from_disk(path)
        raise DatasetFormatError(
            f"{path}: a folder, but not one written by save_to_disk; pass the data file", dataset=path
        )
    builder = LOCAL_BUILDERS.get(_suffix(path))
    if builder is None:
        raise DatasetFormatError(
            f"{path}: cannot tell the file type from its name; use one of {', '.join(sorted(LOCAL_BUILDERS))}",
            dataset=path,
        )
    if os.path.getsize(path) == 0:
        raise DatasetFormatError(f"{path}: the file is empty", dataset=path)
    kwargs = {"delimiter": "\t"} if _suffix(path) == ".tsv" else {}
    if builder in TEXT_BUILDERS:  # arrow's JSON reader keeps bad bytes (failing later), a stream mid-training
        check_utf8(path)
    try:
        loaded = datasets.load_dataset(
            builder, data_files=path, split="train", streaming=bool(streaming), **kwargs
        )
    except Exception as exc:  # pyarrow / json errors: find the line, or read the rows one by one
        if builder == "csv" and len(_lines(path, 2)) < 2:
            raise DatasetFormatError(f"{path}: the file has only a header", dataset=path) from exc
        if builder != "json":
            cause = exc.__cause__ or exc
            raise DatasetFormatError(
                f"{path}: could not read it as {builder} ({type(cause).__name__}: {cause})", dataset=path
            ) from exc
        return _json_rows(path, exc)
    if not streaming and len(loaded) == 0:
        what = "only a header" if builder == "csv" and loaded.column_names else "no rows"
        raise DatasetFormatError(f"{path}: the file has {what}", dataset=path)
    return loaded


def first_non_utf8(path: str) -> tuple[int, int, int, bytes] | None:
    """``(line, column, byte offset, bytes)`` of the first bytes of the (maybe compressed) file that are not
    UTF-8, or ``None``; read a chunk at a time, so a big file is never in memory whole."""
    import fsspec

    offset = lines = line_start = 0  # bytes before ``data``, newlines before it, offset where the line starts
    carry = b""  # a character cut at the end of the last chunk
    with fsspec.open(path, mode="rb", compression="infer") as f:
        while True:
            chunk = f.read(_CHUNK)
            data = carry + chunk
            if not data:
                return None
            try:
                data.decode("utf-8")
                good, bad = len(data), None
            except UnicodeDecodeError as err:
                cut = chunk and err.reason == "unexpected end of data"  # a character split between chunks
                good, bad = err.start, (None if cut else data[err.start : err.end])
            lines += data.count(b"\n", 0, good)
            newline = data.rfind(b"\n", 0, good)
            line_start = offset + newline + 1 if newline >= 0 else line_start
            if bad is not None:
                return lines + 1, offset + good - line_start + 1, offset + good, bad
            offset, carry = offset + good, data[good:]


def check_utf8(path: str) -> None:
    """If the file has bytes that are not UTF-8: ``DatasetFormatError`` naming it, where they are, the fix."""
    found = first_non_utf8(path)
    if found is None:
        return
    line, column, offset, bad = found
    name, compressed = os.path.basename(path), _suffix(path) != os.path.splitext(path)[1].lower()
    name = os.path.splitext(name)[0] if compressed else name
    raise DatasetFormatError(
        f"{path}: not UTF-8 text: line {line}, column {column} (byte offset {offset:,}"
        f"{' once decompressed' if compressed else ''}) holds the byte(s) {bad.hex(' ')}, which UTF-8 cannot "
        "decode (the file was likely saved as Latin-1/cp1252 or UTF-16). Re-save it as UTF-8"
        f'{" (decompressed)" if compressed else ""}: in your editor ("Save with encoding: UTF-8"), with '
        f"`iconv -f cp1252 -t utf-8 {name} > fixed{_suffix(path)}`, or in pandas with to_csv(..., "
        "encoding='utf-8') / to_json(..., force_ascii=False).",
        dataset=path,
    )


def _lines(path: str, most: int) -> list[str]:
    """The first ``most`` non-blank lines of the (maybe compressed) text file."""
    import fsspec

    with fsspec.open(path, mode="rt", compression="infer", encoding="utf-8", errors="replace") as f:
        return list(islice((line for line in f if line.strip()), most))


def _json_rows(path: str, exc: Exception) -> list:
    """The rows of a JSON-lines file that ``datasets`` could not read as one table (mixed types per
    row); ``DatasetFormatError`` with the line number and the JSON error for a broken line."""
    import fsspec

    with fsspec.open(path, mode="rt", compression="infer", encoding="utf-8") as f:
        content = f.read()
    try:
        whole = json.loads(content)  # a .json document (an array of rows, or {"data": rows})
        rows = whole.get("data", whole) if isinstance(whole, dict) else whole
        if isinstance(rows, list):
            return rows
    except ValueError:
        pass
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as err:
            raise DatasetFormatError(
                f"{path}, line {number}: not valid JSON ({err})", dataset=path, row=number - 1
            ) from exc
    if not rows:
        raise DatasetFormatError(f"{path}: the file has no rows", dataset=path)
    return rows


def _read_hub(hub_id: str, split: str | None, streaming: bool | None) -> Source:
    import datasets

    repo, data_dir, fmt, train, test, stream = hub_format(hub_id)
    try:
        loaded = datasets.load_dataset(
            repo, data_dir=data_dir, split=split, streaming=stream if streaming is None else streaming
        )
    except Exception as exc:  # offline, unknown id, private repo, bad split: one clear message
        raise DatasetFormatError(
            f"could not load {hub_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "The hub may be out of reach (offline?) or the id or split may be wrong. Download the "
            "dataset where the hub can be reached (e.g. dataset.to_json('data.jsonl')) and pass the "
            "local file instead.",
            dataset=hub_id,
        ) from exc
    if split is None and fmt is not None and is_split_dict(loaded):  # its preference splits only
        wanted = [s for s in (train, test) if s in loaded]
        loaded = type(loaded)({s: loaded[s] for s in wanted}) if wanted else loaded
    return Source(loaded, hub_id if split is None else f"{hub_id}[{split}]", fmt, train, test)


def columns_and_rows(data: Any, n: int = 5) -> tuple[list, list[dict]]:
    """The column names and the first ``n`` rows (as dicts) of a list, Dataset or IterableDataset."""
    import datasets

    if isinstance(data, list):  # rows may differ in their keys: every key counts
        names = dict.fromkeys(key for row in data if isinstance(row, dict) for key in row)
        return list(names), [row for row in data[:n] if isinstance(row, dict)]
    if isinstance(data, datasets.Dataset):
        return list(data.column_names), data.select(range(min(n, len(data)))).to_list()
    rows = list(islice(iter(data), n))
    names = (
        data.column_names
        if data.column_names is not None
        else list(dict.fromkeys(k for r in rows for k in r))
    )
    return list(names), rows

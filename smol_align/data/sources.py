"""Reading what ``normalize`` and ``doctor`` are given: a hub id, a local file, a dataset or a list of rows."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..errors import DatasetFormatError
from .registry import hub_spec

LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(/[\w.-]+)*$")


@dataclass
class Source:
    """What was read: the data, a name for messages, and the format a known hub id implies."""

    data: Any  # list of dicts, Dataset, IterableDataset, DatasetDict or IterableDatasetDict
    name: str
    hub_format: str | None = None


def _looks_like_a_file(path: str) -> bool:
    stem = next((path[: -len(e)] for e in _COMPRESSED if path.endswith(e)), path)
    return os.path.splitext(stem)[1].lower() in LOCAL_BUILDERS


def is_hub_id(data: str) -> bool:
    """``owner/name`` (optionally ``/sub/folder``) that is neither a local path nor a file name."""
    return bool(_HUB_ID.match(data)) and not os.path.exists(data) and not _looks_like_a_file(data)


def read(data: Any, split: str | None = None, streaming: bool | None = None) -> Source:
    """Read ``data`` into something ``normalize`` can walk through, without detecting its format."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if isinstance(data, str):
        if os.path.exists(data):
            return Source(_read_local(data, split, streaming), data)
        if is_hub_id(data):
            return _read_hub(data, split, streaming)
        if _looks_like_a_file(data):
            raise DatasetFormatError(f"no such file: {data!r} (from {os.getcwd()})", dataset=data)
        raise DatasetFormatError(
            f"{data!r} is neither a local file nor a hub id (owner/name). "
            f"Local files may be {', '.join(sorted(LOCAL_BUILDERS))}.",
            dataset=data,
        )
    if isinstance(data, (list, tuple)):
        return Source(list(data), "<list of rows>")

    import datasets

    if isinstance(data, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        name = _dataset_name(next(iter(data.values()), None))
        if split is None:
            return Source(data, name)
        if split not in data:
            raise DatasetFormatError(f"{name}: no split {split!r}; splits: {list(data)}", dataset=name)
        return Source(data[split], f"{name}[{split}]")
    if isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
        return Source(data, _dataset_name(data))
    raise DatasetFormatError(
        f"cannot read a {type(data).__name__}: pass a hub id, a local json/jsonl/parquet/csv path, "
        "a datasets.Dataset / IterableDataset / DatasetDict, or a list of dicts"
    )


def _dataset_name(dataset: Any) -> str:
    info = getattr(dataset, "info", None)
    name = getattr(info, "dataset_name", None) if info is not None else None
    return name or f"<{type(dataset).__name__}>"


def _read_local(path: str, split: str | None, streaming: bool | None):
    import datasets

    if os.path.isdir(path):
        if any(
            os.path.exists(os.path.join(path, f))
            for f in ("dataset_info.json", "dataset_dict.json", "state.json")
        ):
            loaded = datasets.load_from_disk(path)
            if isinstance(loaded, datasets.DatasetDict) and split is not None:
                return loaded[split]
            return loaded
        raise DatasetFormatError(
            f"{path}: a folder, but not one written by Dataset.save_to_disk; pass the data file itself",
            dataset=path,
        )
    stem = next((path[: -len(e)] for e in _COMPRESSED if path.endswith(e)), path)
    builder = LOCAL_BUILDERS.get(os.path.splitext(stem)[1].lower())
    if builder is None:
        raise DatasetFormatError(
            f"{path}: cannot tell the file type from its name; use one of {', '.join(sorted(LOCAL_BUILDERS))}",
            dataset=path,
        )
    if split not in (None, "train"):
        raise DatasetFormatError(
            f"{path}: a single file has one split, 'train' (asked for {split!r})", dataset=path
        )
    try:
        return datasets.load_dataset(builder, data_files=path, split="train", streaming=bool(streaming))
    except Exception as exc:  # pyarrow / json errors: say which file and why
        raise DatasetFormatError(f"{path}: could not read it as {builder}: {exc}", dataset=path) from exc


def _read_hub(hub_id: str, split: str | None, streaming: bool | None) -> Source:
    import datasets

    spec = hub_spec(hub_id)
    split = split if split is not None else spec.split
    streaming = spec.streaming if streaming is None else streaming
    try:
        loaded = datasets.load_dataset(spec.repo, data_dir=spec.data_dir, split=split, streaming=streaming)
    except Exception as exc:  # offline, unknown id, private repo, bad split: one clear message
        raise DatasetFormatError(
            f"could not load {hub_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "The hub may be out of reach (offline?) or the id or split may be wrong. Download the "
            "dataset where the hub can be reached (e.g. dataset.to_json('data.jsonl')) and pass the "
            "local file instead: normalize('data.jsonl').",
            dataset=hub_id,
        ) from exc
    name = hub_id if split is None else f"{hub_id}[{split}]"
    return Source(loaded, name, spec.format)


def columns_and_rows(data: Any, n: int = 5) -> tuple[list, list[dict]]:
    """The column names and the first ``n`` rows (as dicts) of a list, Dataset or IterableDataset."""
    if isinstance(data, list):
        rows = [row for row in data[:n] if isinstance(row, dict)]
        return list(dict.fromkeys(key for row in rows for key in row)), rows
    import datasets

    if isinstance(data, datasets.Dataset):
        return list(data.column_names), data.select(range(min(n, len(data)))).to_list()
    rows = list(islice(iter(data), n))
    names = (
        data.column_names
        if data.column_names is not None
        else list(dict.fromkeys(k for r in rows for k in r))
    )
    return list(names), rows

"""``columns=``: any dataset whose columns you name, for the schemas no format knows.

``normalize(data, columns={"prompt": "question", "chosen": "good", "rejected": "bad"})``.
Keys: ``chosen`` and ``rejected`` (required), ``prompt`` and ``system`` (optional), and any stable
metadata name (``score_chosen``, ``source``, ...) to keep a column under that name. Each value
may be text or messages (or messages as a JSON string); without ``prompt``, chosen and rejected
must be whole dialogues whose shared leading messages are the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError
from ..messages import make_pair
from ..registry import METADATA, Format, register, take_metadata

PAIR_KEYS = ("prompt", "chosen", "rejected", "system")


def check_mapping(columns: Any) -> dict[str, str]:
    """The ``columns=`` mapping, checked: known keys, column names as text, chosen and rejected given."""
    if not isinstance(columns, Mapping):
        raise ConfigError(
            f"columns= must be a dict like {{'prompt': 'question', ...}}, got {type(columns).__name__}"
        )
    unknown = [key for key in columns if key not in PAIR_KEYS and key not in METADATA]
    if unknown:
        known = ", ".join((*PAIR_KEYS, *METADATA))
        raise ConfigError(f"columns= has an unknown key {unknown[0]!r}; known keys: {known}")
    missing = [key for key in ("chosen", "rejected") if key not in columns]
    if missing:
        raise ConfigError(
            f"columns= must name the {missing[0]!r} column, e.g. columns={{'{missing[0]}': 'my_column'}}"
        )
    bad = [key for key, value in columns.items() if not isinstance(value, str)]
    if bad:
        raise ConfigError(f"columns[{bad[0]!r}] must be a column name (text), got {columns[bad[0]]!r}")
    return dict(columns)


def normalize_row(row: dict, columns: Mapping[str, str]) -> dict:
    def cell(key: str) -> Any:
        return row.get(columns[key]) if key in columns else None

    pair = make_pair(cell("chosen"), cell("rejected"), prompt=cell("prompt"), system=cell("system"))
    return {**pair, **take_metadata(row, {k: v for k, v in columns.items() if k in METADATA})}


def _metadata(column_names: Sequence[str], options: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(key for key in options["columns"] if key in METADATA)


def _reads(options: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(options["columns"].values())


register(
    Format(
        name="columns",
        normalize_row=normalize_row,
        required=(),
        detectable=False,
        description="any schema, with the columns named by columns={...}",
        expected="the columns named in columns=: text or messages each",
        options={"columns": None},
        metadata_fn=_metadata,
        reads_fn=_reads,
    )
)

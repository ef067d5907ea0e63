"""ShareGPT-style preference pairs (LLaMA-Factory's ``dpo_en_demo``).

``conversations`` is the prompt as ``{"from", "value"}`` turns (``human``/``gpt``/``system``),
``chosen`` and ``rejected`` one ``{"from": "gpt", "value": ...}`` turn each. An optional
``system`` column is put first.
"""

from __future__ import annotations

from ..messages import make_pair, messages
from ..registry import Format, column_is, register


def normalize_row(row: dict) -> dict:
    prompt = messages(row.get("conversations"), "conversations")
    return make_pair(row.get("chosen"), row.get("rejected"), prompt=prompt, system=row.get("system"))


register(
    Format(
        name="sharegpt",
        normalize_row=normalize_row,
        required=("conversations", "chosen", "rejected"),
        signature=("system",),
        check=column_is("conversations", "messages"),
        description="ShareGPT-style from/value turns (LLaMA-Factory dpo_en_demo)",
        expected="`conversations`: [{from, value}] turns ending with human; `chosen`/`rejected`: {from: gpt, value}",
    )
)

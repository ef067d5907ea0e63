"""SFT's rows: ``prompt`` and the ``completion`` to learn (or a ``text``), and pairs read as SFT rows.

SFT rows come through :func:`smol_align.data.load` like pairs (formats ``trl-prompt-completion``,
``trl-messages``, ``alpaca-sft``, ``trl-text``: :data:`~.formats.SFT`); pairs train SFT on their chosen
answers (:func:`sft_rows`): the prompt and the chosen answer as ``prompt``/``completion``, so TRL's
``SFTTrainer`` puts the loss on the answer only (its ``completion_only_loss``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .unpaired import is_unpaired


def is_sft_rows(data: Any) -> bool:
    """True for SFT rows: ``prompt``/``completion`` without KTO's ``label``, or ``text``; no ``chosen``."""
    columns = set(getattr(data, "column_names", None) or [])
    if "chosen" in columns or is_unpaired(data):
        return False
    return "completion" in columns or "text" in columns


def sft_rows(data: Any, name: str = "the data"):
    """The rows ``SFTTrainer`` trains on: SFT rows as they are; pairs as ``prompt`` + ``chosen`` ->
    ``prompt``/``completion`` (the rejected answers are not used). KTO's labelled rows are refused."""
    if data is None or is_sft_rows(data):
        return data
    if is_unpaired(data):
        raise ConfigError(
            f"{name} holds KTO's rows (prompt, completion, label), some of them undesirable: SFT would "
            "learn those too. Keep the rows with label true and drop the label column, or train them with "
            "train_kto."
        )
    return data.select_columns(["prompt", "chosen"]).rename_column("chosen", "completion")

"""Pairs as token ids, as TRL's DPOTrainer makes them: the one tokenization that evaluation, the data doctor
and the runner share."""

from __future__ import annotations

import logging

from .._compat import dpo_tokenized

logger = logging.getLogger(__name__)


def tokenize_pairs(
    dataset, tokenizer, max_pairs: int | None = None, max_length: int | None = None
) -> list[dict]:
    """``prompt_ids``, ``chosen_ids``, ``rejected_ids`` of the first ``max_pairs`` pairs, as TRL's DPOTrainer
    makes them.

    Rows that are tokenized already (a DPO trainer's ``eval_dataset``) are taken as they are; others go
    through TRL's own ``DPOTrainer._prepare_dataset`` (``_compat.dpo_tokenized``), which drops the pairs
    whose prompt alone fills ``max_length`` (TRL's default ``truncation_mode="keep_start"``).
    """
    import datasets

    if isinstance(dataset, dict):
        raise TypeError(
            f"Pass one split (a Dataset or a list of rows), not a dict of splits {list(dataset)}."
        )
    dataset = dataset if isinstance(dataset, datasets.Dataset) else datasets.Dataset.from_list(list(dataset))
    if "prompt_ids" not in dataset.column_names:
        n = len(dataset)
        dataset = dpo_tokenized(dataset, tokenizer, max_length)
        if len(dataset) < n:
            dropped = n - len(dataset)
            logger.warning("%d pair(s) dropped: their prompt alone fills max_length=%s.", dropped, max_length)
    n = len(dataset) if max_pairs is None else min(max_pairs, len(dataset))
    return dataset.select(range(n)).select_columns(["prompt_ids", "chosen_ids", "rejected_ids"]).to_list()

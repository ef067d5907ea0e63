"""A finished run folder (or a merged one) pushed to the Hugging Face Hub with its model card.

``huggingface_hub``'s ``create_repo`` + ``upload_folder``, not ``Trainer.push_to_hub``: that one saves the
model again and writes TRL's card over smol_align's before it uploads. What goes: the folder's top-level
files (the model or adapter, tokenizer, ``README.md``, ``metrics.json``, ``report.md``, plots); what stays:
smol_align's bookkeeping, checkpoints and the ``merged/`` subfolder (push it on its own). The token is
``huggingface_hub``'s (``HF_TOKEN``, or ``hf auth login``); it is never written into the folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .card import repo_name
from .errors import ConfigError
from .rundir import MARKER

logger = logging.getLogger(__name__)

LEFT_OUT = [".smol_align*", "**/.smol_align*", "checkpoint-*", "checkpoint-*/**", "merged/**", "runs/**"]
"""``upload_folder``'s ``ignore_patterns``: smol_align's bookkeeping, checkpoints, the merged model, TensorBoard."""


def push_to_hub(
    folder,
    repo_id: str | None = None,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "smol_align: trained model",
) -> str:
    """Push ``folder`` (a finished run's, or a merged model's) to the Hub repo ``repo_id`` (default: the
    folder's name; ``<run>-merged`` for ``<run>/merged``), created if needed; returns the repo's id."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"Cannot push {folder}: no such folder. Pass the output folder of a finished run.")
    if (folder / MARKER).exists():
        raise ConfigError(
            f"Cannot push {folder}: its run has not finished ({MARKER} is there). Finish it with --resume "
            "(resume=True), then push."
        )
    if not (folder / "README.md").is_file():
        raise ConfigError(
            f"Cannot push {folder}: it has no model card (README.md). smol_align writes one in every folder it "
            "saves a model in; train (or merge) with this version, or write a README.md there yourself."
        )
    api = HfApi(token=token)
    repo = api.create_repo(repo_id or repo_name(folder), private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=LEFT_OUT,
        repo_type="model",
    )
    logger.info("Pushed %s to the Hub repo %s", folder, repo.repo_id)
    return repo.repo_id

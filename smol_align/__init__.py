"""smol_align: one-line preference alignment (DPO, ORPO) of small language models, on TRL.

>>> import smol_align
>>> result = smol_align.train_dpo()          # the demo: embedded SmolLM2, built-in pirate pairs
>>> result.trainer                           # the real trl.DPOTrainer, trained
>>> result.metrics["eval_rewards/accuracies"]

Heavy libraries (torch, transformers, trl) are imported inside the functions, so
``import smol_align`` and ``smol-align --help`` stay fast.
"""

import logging

from . import presets
from ._compat import setup_chat_format
from .api import TrainResult, train_dpo, train_orpo
from .errors import ConfigError, DatasetFormatError, SmolAlignError
from .models import DEFAULT_MODEL, load_model
from .trainers import build_dpo_trainer, build_orpo_trainer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "ConfigError",
    "DatasetFormatError",
    "SmolAlignError",
    "TrainResult",
    "__version__",
    "build_dpo_trainer",
    "build_orpo_trainer",
    "evaluate",
    "load_model",
    "presets",
    "setup_chat_format",
    "train_dpo",
    "train_orpo",
]


def evaluate(model, dataset, ref_model=None, tokenizer=None, max_pairs=None, **kwargs):
    """Held-out preference figures of ``model``; see :func:`smol_align.evaluate.evaluate`."""
    from .evaluate import evaluate as _evaluate

    return _evaluate(model, dataset, ref_model=ref_model, tokenizer=tokenizer, max_pairs=max_pairs, **kwargs)


logging.getLogger(__name__).addHandler(logging.NullHandler())

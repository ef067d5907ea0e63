"""smol_align: one-line preference alignment (SFT, DPO, ORPO, KTO) of small language models, on TRL.

>>> import smol_align
>>> result = smol_align.train_dpo()          # the demo: embedded SmolLM2, built-in pirate pairs
>>> result.trainer                           # the real trl.DPOTrainer, trained
>>> result.metrics["eval_rewards/accuracies"]

Heavy libraries (torch, transformers, trl) are imported inside the functions, so
``import smol_align`` and ``smol-align --help`` stay fast.

Layers, top to bottom: an import between smol_align modules (a deferred one inside a function too) points
down or across its layer, never up; no import cycle; no private name imported from another module
(tests/test_structure.py checks all three):

    __init__, __main__, cli  the public names, the command line
    api, compare, iterate, pipeline  the one-liners
    run  the runner
    trainers, soft_dpo, evaluate, estimate, resume, callbacks, testing  what the runner drives
    options, presets, data, report, metrics, demo  the options as types, settings, pairs, figures, the course demo
    models, reference  loading, the papers' losses
    rundir  the output folder's keeper (models stages the embedded model's conversion with it)
    _compat  what differs across library releases, and every library private smol_align touches
    errors  smol_align's exceptions
"""

import logging

from . import presets
from .api import TrainResult, train_dpo, train_kto, train_orpo, train_sft
from .compare import ComparisonResult, compare
from .errors import ConfigError, DatasetFormatError, SmolAlignError
from .estimate import estimate

# The functions, imported eagerly: a lazy wrapper would be replaced by the submodule of the same
# name (smol_align.evaluate) the first time anything imports that submodule.
from .evaluate import evaluate, generate
from .iterate import IterationResult, iterate
from .models import DEFAULT_MODEL, load_model, setup_chat_format
from .pipeline import PipelineResult, pipeline
from .trainers import build_dpo_trainer, build_kto_trainer, build_orpo_trainer, build_sft_trainer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "ComparisonResult",
    "ConfigError",
    "DatasetFormatError",
    "IterationResult",
    "PipelineResult",
    "SmolAlignError",
    "TrainResult",
    "__version__",
    "build_dpo_trainer",
    "build_kto_trainer",
    "build_orpo_trainer",
    "build_sft_trainer",
    "compare",
    "estimate",
    "evaluate",
    "generate",
    "iterate",
    "load_model",
    "pipeline",
    "presets",
    "setup_chat_format",
    "train_dpo",
    "train_kto",
    "train_orpo",
    "train_sft",
]


logging.getLogger(__name__).addHandler(logging.NullHandler())

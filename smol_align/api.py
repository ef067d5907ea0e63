"""One-line entry points: ``train_dpo``, ``train_orpo`` and ``train_kto``. They only delegate, to :func:`smol_align.run.run`."""

from __future__ import annotations

from typing import Any

from .models import DEFAULT_MODEL
from .run import TrainResult, run

__all__ = ["TrainResult", "train_dpo", "train_kto", "train_orpo"]


def train_dpo(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run DPO on ``model`` with ``dataset`` (``None``: the built-in demo) and return the result.

    ``preset`` picks TRL settings for the hardware (see ``smol_align.presets.names()``); every
    keyword overrides a ``trl.DPOConfig`` field (course-era names are mapped or explained).
    Data keywords go to :func:`smol_align.data.load`: ``format``, ``columns``, ``split``,
    ``eval_split`` (a split name, or a fraction held out; default the test split, else 10%),
    ``eval_dataset`` (any form ``dataset`` takes), the filters (``drop_identical``, ``drop_empty``,
    ``drop_ties``, ``min_margin``, ``dedupe_prompts``, ``filters="clean"``), ``strict``, ``lenient``.
    Extra keywords: ``tokenizer``, ``ref_model``, ``overwrite`` (replace an
    existing ``output_dir``), ``resume`` (continue the unfinished run in ``output_dir``, or the
    newest one of this method and model under ``runs/``, from its last checkpoint), ``save`` (default True), ``evaluate`` (default True),
    ``max_eval_pairs``, ``answer_prompts`` (held-out prompts answered greedily before and after
    training, scored for repetition and length, and for the pirate voice on the demo; default
    32, 0 for none), ``quiet``, ``max_time`` (minutes of training: stop after the step that crosses
    it, then evaluate and save).

    ``constraints``: terms added to TRL's DPO loss, each logged as ``constraint/<name>``: ``"dpop[:lam]"``
    (DPO-Positive), ``"length[:alpha]"`` (R-DPO), or your own ``fn(logps, batch) -> scalar tensor``, ``logps`` a
    :class:`smol_align.reference.PairLogps` (README "Constraints")::

        train_dpo(constraints=["dpop", lambda logps, batch: torch.relu(logps.ref_chosen - logps.chosen).mean()])

    With no ``dataset`` (the demo data) the demo recipe (``recipes/demo-<method>.yaml``) fills in
    what is not given, the same recipe ``smol-align dpo|orpo|kto`` runs.
    """
    return run("dpo", model, dataset, preset, output_dir, overrides)


def train_orpo(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run ORPO (``trl.experimental.orpo``) like :func:`train_dpo`; ORPO needs no reference model."""
    return run("orpo", model, dataset, preset, output_dir, overrides)


def train_kto(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run KTO (``trl.KTOTrainer``; Ethayarajh et al. 2024) like :func:`train_dpo`: it learns from single answers
    marked desirable or not, against a frozen reference (the start model).

    ``dataset`` is pairs (each trains as its chosen answer, desirable, and its rejected one, undesirable) or rows of
    TRL's unpaired format (``prompt``, ``completion``, ``label``). Held-out figures are DPO's, on the held-out pairs;
    for unpaired rows, on the pairs their prompts make (a desirable and an undesirable answer to one prompt), and
    none when no held-out prompt has both. Keywords override ``trl.KTOConfig`` fields (``desirable_weight``...).
    """
    return run("kto", model, dataset, preset, output_dir, overrides)

"""One-line entry points: ``train_dpo``, ``train_orpo``, ``train_kto``, ``train_sft``; they only delegate, to
:func:`smol_align.run.run` (on the demo's data with its keywords: :func:`smol_align.demo.demo_keywords`)."""

from __future__ import annotations

from typing import Any

from ._compat import library_noise_filtered
from .card import recorded
from .demo import demo_keywords
from .models import DEFAULT_MODEL
from .options import Options, split_options
from .run import TrainResult, run

__all__ = ["TrainResult", "options_for", "train_dpo", "train_kto", "train_orpo", "train_sft"]


@recorded  # the call, in each run's model card
def train_dpo(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run DPO on ``model`` with ``dataset`` (``None``: the built-in demo with its recipe, ``recipes/demo-dpo.yaml``).

    ``preset`` picks TRL settings for the hardware (``smol_align.presets.names()``); every keyword overrides a
    ``trl.DPOConfig`` field (course-era names are mapped or explained). Also: the options of
    :func:`smol_align.data.load` (``format``, ``columns``, ``split``, ``eval_split``, ``eval_dataset``, the filters,
    ``strict``, ``lenient``), ``tokenizer``, ``ref_model``, ``overwrite``, ``resume`` (continue the unfinished run in
    ``output_dir``, default the newest of this method and model under ``runs/``), ``save``, ``evaluate``,
    ``max_eval_pairs``, ``answer_prompts`` (held-out prompts answered greedily before and after training; default
    32), ``voice`` (``answer -> bool``: the share of those answers it passes is ``voice_rate``; on the demo's
    data, its pirate-voice check), ``quiet`` (none of smol_align's lines, progress bar or summary; otherwise the
    summary table is printed once, at the end, and the libraries' notices that need no action are filtered
    while it runs: ``SMOL_ALIGN_VERBOSE=1`` in the environment shows everything),
    ``max_time`` (minutes of training: stop after the step that crosses it, then evaluate and save),
    and ``constraints``: terms added to the DPO loss, ``"dpop[:lam]"`` (DPO-Positive), ``"length[:alpha]"`` (R-DPO)
    or your own ``fn(logps, batch) -> scalar tensor`` (docs/methods/dpo.md, "Constraints"). The keywords are
    sorted once into :mod:`smol_align.options`' typed objects (:func:`options_for`), which ``smol-align dpo``
    builds too::

        train_dpo(constraints=["dpop", lambda logps, batch: torch.relu(logps.ref_chosen - logps.chosen).mean()])
    """
    return _run("dpo", model, dataset, preset, output_dir, overrides)


@recorded  # the call, in each run's model card
def train_orpo(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Run ORPO (``trl.experimental.orpo``) like :func:`train_dpo`; ORPO needs no reference model."""
    return _run("orpo", model, dataset, preset, output_dir, overrides)


@recorded  # the call, in each run's model card
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
    return _run("kto", model, dataset, preset, output_dir, overrides)


def train_sft(
    model: Any = DEFAULT_MODEL,
    dataset: Any = None,
    preset: str = "auto",
    output_dir: str | None = None,
    **overrides,
) -> TrainResult:
    """Supervised fine-tuning (``trl.SFTTrainer``) like :func:`train_dpo`: the first stage, before DPO.

    ``dataset``: instruction or chat rows (TRL's ``prompt``/``completion``, ``messages``, ``text``;
    alpaca's ``instruction``/``input``/``output``), or preference pairs, which train on their chosen
    answers (prompt + chosen, the loss on the answer only). ``None``: the demo's pairs (their chosen
    answers speak like a pirate; ``recipes/demo-sft.yaml``). Keywords override ``trl.SFTConfig`` fields.
    Held-out figures: the NLL per target token before and after (``nll``; the run learned when it fell),
    and for held-out pairs DPO's figures of the trained model against the start model. Continue with
    ``train_dpo(model=result.output_dir)``.
    """
    return _run("sft", model, dataset, preset, output_dir, overrides)


def options_for(method: str, dataset: Any = None, preset: str = "auto", **keywords) -> Options:
    """The typed options ``train_<method>(model, dataset, preset, output_dir, **keywords)`` runs with: the demo's
    keywords under yours on its data (:func:`smol_align.demo.demo_keywords`), sorted by
    :func:`smol_align.options.split_options`. ``smol-align dpo`` builds its options here too."""
    named = {"model", "dataset", "preset", "output_dir"}
    keywords = demo_keywords(method, dataset, preset, keywords)
    return split_options(method, keywords, f"train_{method}", also_named=named)


@library_noise_filtered()  # the libraries' noise, while it runs (SMOL_ALIGN_VERBOSE=1 shows it)
def _run(method: str, model, dataset, preset: str, output_dir, overrides: dict) -> TrainResult:
    return run(method, model, dataset, preset, output_dir, options_for(method, dataset, preset, **overrides))

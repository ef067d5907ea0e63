"""smol_align's one ``DPOTrainer`` subclass: TRL's loss plus a soft-label correction and/or constraint terms.

Soft labels: a float column (``preference_prob``) holds ``p = P(chosen > rejected)`` per pair (fill it
with :func:`with_preference_prob` from ratings). The soft-label (cDPO) loss is the cross-entropy between
DPO's ``sigma(z)``, ``z = beta * Delta``, and ``p``: ``-p log sigma(z) - (1 - p) log sigma(-z) = -log
sigma(z) + (1 - p) z``, so TRL's sigmoid loss plus ``mean((1 - p) z)`` is exact (``p = 1`` is DPO, a
constant ``1 - eps`` cDPO). Constraints: each ``fn(logps, batch) -> scalar`` gets a
:class:`smol_align.reference.PairLogps` and its value is added to TRL's loss, logged as
``constraint/<name>``. Both reuse the per-token log-probs of TRL's own forward passes (captured by
forward hooks, summed as ``DPOTrainer._compute_loss`` sums them): no extra forward, every TRL metric as
logged. The soft loss needs a plain DPO config (sigmoid loss, no ``label_smoothing``/``ld_alpha``/WPO).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from trl import DPOTrainer

from ._compat import keep_signature_column, trainer_metrics
from .errors import ConfigError, DatasetFormatError
from .reference import PairLogps, as_constraint, constraint_names, preference_prob_from_ratings

SOFT_LOSS_NAME = "soft"
"""The ``loss_type`` name of the soft-label loss in smol_align (TRL has no such loss type)."""

PREFERENCE_PROB_COLUMN = "preference_prob"
"""Default dataset column holding ``P(chosen > rejected)`` per pair, a float in [0, 1]."""


def _column_names(dataset) -> list[str] | None:
    names = getattr(dataset, "column_names", None)
    if names is None:  # IterableDataset with unknown features: look at one row
        names = next(iter(dataset), None)
    return None if names is None else list(names)


def _check_column(dataset, column: str, split: str) -> None:
    names = _column_names(dataset)
    if names is not None and column not in names:
        raise DatasetFormatError(
            f"SoftDPOTrainer needs a {column!r} column in the {split} dataset: the probability, in [0, 1], "
            f"that 'chosen' is preferred to 'rejected'. Found columns: {', '.join(names)}. Add it, for example "
            f"from ratings with smol_align.soft_dpo.with_preference_prob(dataset), or name another column with "
            f"preference_prob_column=...",
            dataset=split,
            column=column,
        )


@dataclass
class PreferenceProbCollator:
    """Wraps a preference collator and adds ``column`` to the batch as a float32 tensor."""

    collator: Any
    column: str = PREFERENCE_PROB_COLUMN

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            probs = torch.tensor([float(example[self.column]) for example in examples], dtype=torch.float32)
        except KeyError:
            raise DatasetFormatError(
                f"A batch reached SoftDPOTrainer without the {self.column!r} column (keys: "
                f"{', '.join(examples[0].keys())}).",
                column=self.column,
            ) from None
        except (TypeError, ValueError):
            raise DatasetFormatError(
                f"Column {self.column!r} must hold numbers in [0, 1]; got "
                f"{[ex[self.column] for ex in examples][:5]}.",
                column=self.column,
            ) from None
        bad = ~((probs >= 0) & (probs <= 1))  # also catches NaN
        if bool(bad.any()):
            raise DatasetFormatError(
                f"Column {self.column!r} must hold probabilities in [0, 1]; this batch has "
                f"{probs[bad].tolist()[:5]}.",
                column=self.column,
            )
        batch = self.collator(examples)
        batch[self.column] = probs
        return batch


@contextmanager
def _log_prob_outputs(*modules):
    """Inside the block, each module's fused-LM-head outputs (those with ``.log_probs``), one list per module."""
    stores: list[list] = [[] for _ in modules]

    def keeper(store):
        return lambda module, args, output: (
            store.append(output) if getattr(output, "log_probs", None) is not None else None
        )

    handles = [
        m.register_forward_hook(keeper(store))
        for m, store in zip(modules, stores, strict=True)
        if m is not None
    ]
    try:
        yield stores
    finally:
        for handle in handles:
            handle.remove()


class SoftDPOTrainer(DPOTrainer):
    """``trl.DPOTrainer`` whose loss uses a per-pair preference probability (soft labels) and/or constraint terms.

    Takes exactly ``DPOTrainer``'s arguments, plus (keyword only) ``preference_prob_column`` (``None``: no soft
    labels) and ``constraints`` (callables or ``"dpop[:lam]"`` / ``"length[:alpha]"``). With a column, the training
    dataset (and evaluation datasets) must have it. See the module docstring for how the loss is changed and which
    configurations are accepted.
    """

    _tag_names = ["trl", "dpo", "smol-align", "soft-dpo"]

    def __init__(
        self, *args, preference_prob_column: str | None = PREFERENCE_PROB_COLUMN, constraints=(), **kwargs
    ):
        self.preference_prob_column = column = preference_prob_column
        self.constraints = [as_constraint(c) for c in constraints]
        self.constraint_names = constraint_names(self.constraints)
        if column is None and not self.constraints:
            raise ConfigError(
                "SoftDPOTrainer with neither soft labels nor constraints is DPOTrainer: use that."
            )
        if column is not None:
            if kwargs.get("args") is not None:
                self._check_config(kwargs["args"])
            evals = kwargs.get("eval_dataset")
            evals = evals.items() if isinstance(evals, dict) else [("eval", evals)]
            for split, dataset in [("train", kwargs.get("train_dataset")), *evals]:
                if dataset is not None:
                    _check_column(dataset, column, split)
        super().__init__(*args, **kwargs)
        # Wrapped after DPOTrainer.__init__: its reference precomputation uses the plain collator.
        if column is not None:
            self.data_collator = PreferenceProbCollator(self.data_collator, column)

    @staticmethod
    def _check_config(args) -> None:
        loss_types = [args.loss_type] if isinstance(args.loss_type, str) else list(args.loss_type)
        if loss_types == [SOFT_LOSS_NAME]:
            # TRL does not know "soft": it runs its sigmoid loss, which _compute_loss corrects.
            args.loss_type = ["sigmoid"]
        elif loss_types != ["sigmoid"]:
            raise ConfigError(
                f"SoftDPOTrainer trains the soft-label loss only; set loss_type='sigmoid' or 'soft' in the "
                f"config (got {loss_types})."
            )
        refused = {
            "loss_weights": (
                args.loss_weights not in (None, [1.0]),
                "leave it unset: the soft loss combines no losses",
            ),
            "label_smoothing": (
                args.label_smoothing != 0.0,
                "set label_smoothing=0: the labels come from the column "
                "(for a constant 1 - eps, fill the column with 1 - eps)",
            ),
            "f_divergence_type": (args.f_divergence_type != "reverse_kl", "it must be 'reverse_kl'"),
            "ld_alpha": (args.ld_alpha is not None, "leave ld_alpha unset"),
            "use_weighting": (args.use_weighting, "WPO weights are not supported"),
        }
        for name, (bad, fix) in refused.items():
            if bad:
                raise ConfigError(f"SoftDPOTrainer does not take {name}={getattr(args, name)!r}: {fix}.")

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.preference_prob_column is not None:
            keep_signature_column(self, self.preference_prob_column)

    def compute_ref_log_probs(self, model, inputs):
        # DPOTrainer forwards every batch key but its own to the model.
        inputs = {k: v for k, v in inputs.items() if k != self.preference_prob_column}
        return super().compute_ref_log_probs(model, inputs)

    def _compute_loss(self, model, inputs, return_outputs):
        column = self.preference_prob_column
        if column is not None and column not in inputs:
            raise DatasetFormatError(
                f"The batch has no {column!r} entry (keys: {', '.join(inputs)}). SoftDPOTrainer's collator adds it; "
                "a custom data_collator must keep it.",
                column=column,
            )
        inputs = dict(inputs)
        probs = inputs.pop(column) if column is not None else None
        mode = "train" if self.model.training else "eval"

        policy = self.accelerator.unwrap_model(model)
        uses_ref_model = not self.precompute_ref_logps and self.ref_model is not None
        with _log_prob_outputs(policy, self.ref_model if uses_ref_model else None) as (
            policy_outputs,
            ref_outputs,
        ):
            result = super()._compute_loss(model, inputs, return_outputs)
        loss, outputs = result if return_outputs else (result, None)

        # Rebuild the sequence log-probabilities exactly as DPOTrainer._compute_loss sums them.
        seq_len = inputs["completion_mask"].size(1) - 1
        tokens = policy_outputs[0].log_probs[:, -seq_len:]
        chosen_logps, rejected_logps = tokens.sum(dim=1).chunk(2, dim=0)
        ref_tokens = None
        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            # Without a reference model (PEFT), the second policy forward is the reference one.
            ref_output = ref_outputs[0] if uses_ref_model else policy_outputs[1]
            ref_tokens = ref_output.log_probs[:, -seq_len:]
            ref_chosen_logps, ref_rejected_logps = ref_tokens.sum(dim=1).chunk(2, dim=0)

        if probs is not None:
            z = self.beta * ((chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps))
            # -p log sigma(z) - (1 - p) log sigma(-z) = -log sigma(z) + (1 - p) z: TRL's sigmoid loss + this.
            probs = probs.to(device=z.device, dtype=z.dtype)
            loss = loss + ((1 - probs) * z).mean()
            logged = self.accelerator.gather(probs).mean().item()
            trainer_metrics(self, mode)["preference_prob"].append(logged)
        if self.constraints:
            masks = inputs["completion_mask"][:, 1:].chunk(2, dim=0)
            ref_split = ref_tokens.chunk(2, dim=0) if ref_tokens is not None else (None, None)
            logps = PairLogps(
                chosen_logps,
                rejected_logps,
                ref_chosen_logps,
                ref_rejected_logps,
                *tokens.chunk(2, dim=0),
                *ref_split,
                *masks,
                beta=self.beta,
                model=policy,
            )
            for name, constraint in zip(self.constraint_names, self.constraints, strict=True):
                term = constraint(logps, inputs)
                if not (isinstance(term, torch.Tensor) and term.dim() == 0):
                    raise ConfigError(
                        f"Constraint {name!r} must return a scalar tensor (0-dim), got {term!r}."
                    )
                loss = loss + term
                logged = self.accelerator.gather(term.detach()).mean().item()
                trainer_metrics(self, mode)[f"constraint/{name}"].append(logged)
        return (loss, outputs) if return_outputs else loss


def with_preference_prob(
    dataset,
    chosen_rating_column: str = "chosen_rating",
    rejected_rating_column: str = "rejected_rating",
    temperature: float = 1.0,
    column: str = PREFERENCE_PROB_COLUMN,
):
    """Return ``dataset`` with ``column`` = ``sigmoid((chosen_rating - rejected_rating) / temperature)``.

    The default column names are those of Argilla's rated preference sets (e.g. ``dpo-mix-7k``).
    """
    names = _column_names(dataset) or []
    for name in (chosen_rating_column, rejected_rating_column):
        if name not in names:
            raise DatasetFormatError(
                f"with_preference_prob needs a {name!r} column; found {', '.join(names)}.", column=name
            )

    def add(batch):
        return {
            column: preference_prob_from_ratings(
                batch[chosen_rating_column], batch[rejected_rating_column], temperature
            ).tolist()
        }

    return dataset.map(add, batched=True)


__all__ = [
    "PREFERENCE_PROB_COLUMN",
    "SOFT_LOSS_NAME",
    "PreferenceProbCollator",
    "SoftDPOTrainer",
    "preference_prob_from_ratings",
    "with_preference_prob",
]

"""DPO with soft preference labels and/or constraint terms: smol_align's one ``DPOTrainer`` subclass (loss only).

Soft labels: one probability ``p = P(chosen > rejected)`` per pair.

Hard-label DPO treats every pair as certain. Ratings say otherwise: an answer rated 9 against one
rated 2 is a surer preference than 6 against 5. The soft-label loss (cDPO with a per-pair label,
see :func:`smol_align.reference.preference_loss`, ``loss_type="soft"``) is the cross-entropy
between DPO's Bradley-Terry probability ``sigma(z)``, ``z = beta * Delta``, and ``p``:

    L = -p log sigma(z) - (1 - p) log sigma(-z)  =  -log sigma(z) + (1 - p) z

``p = 1`` is DPO; a constant ``p = 1 - eps`` is conservative DPO (cDPO).

How it plugs into TRL 1.16, touching only the loss:

* the dataset carries a float column, ``preference_prob`` by default (fill it with
  :func:`preference_prob_from_ratings`, or :func:`with_preference_prob` for a whole dataset);
* ``_set_signature_columns_if_needed`` keeps that column when the trainer drops unused ones, and the
  data collator is wrapped to put it in the batch as a float tensor;
* ``_compute_loss`` removes it from the batch (TRL forwards every other key to the model), lets
  ``DPOTrainer`` compute the ordinary sigmoid loss and all its metrics, and adds the
  exact correction ``mean((1 - p) * z)`` given by the identity above. ``z`` is rebuilt from the
  per-token log-probabilities of the same forward passes (captured with forward hooks), summed the
  way DPOTrainer sums them, so no extra forward pass runs and every TRL metric stays as logged.

The configuration must be a plain DPO one: ``loss_type`` ``"sigmoid"`` (or ``"soft"``, which is
rewritten to ``"sigmoid"``), no ``label_smoothing``, ``f_divergence_type="reverse_kl"``,
``ld_alpha=None``, ``use_weighting=False``. The trainer also logs ``preference_prob``, the batch mean
of ``p``.

Constraints (``constraints=[fn, ...]``; ``train_dpo(..., constraints=...)`` builds this trainer): each
``fn(logps, batch) -> scalar`` gets a :class:`smol_align.reference.PairLogps` (policy and reference
log-probs of chosen and rejected, summed and per token, the completion masks, beta, the policy) and the
batch TRL collated, and its value is added to TRL's loss, whatever TRL's ``loss_type``; each is logged
as ``constraint/<name>``. The log-probs are those of the same forward passes, captured as above, so a
constraint costs no forward pass. ``preference_prob_column=None`` trains hard labels (no column needed);
with a column, the soft correction and the constraints add up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from trl import DPOTrainer

from .errors import ConfigError, DatasetFormatError
from .reference import PairLogps, as_constraint, constraint_names, preference_prob_from_ratings

logger = logging.getLogger(__name__)

SOFT_LOSS_NAME = "soft"
"""The ``loss_type`` name of the soft-label loss in smol_align (TRL has no such loss type)."""

PREFERENCE_PROB_COLUMN = "preference_prob"
"""Default dataset column holding ``P(chosen > rejected)`` per pair, a float in [0, 1]."""


def _column_names(dataset) -> list[str] | None:
    names = getattr(dataset, "column_names", None)
    if names is None:  # IterableDataset with unknown features: look at one row
        try:
            names = list(next(iter(dataset)).keys())
        except StopIteration:
            return None
    return list(names)


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


def _check_probs(probs: torch.Tensor, column: str) -> None:
    bad = ~((probs >= 0) & (probs <= 1))  # also catches NaN
    if bool(bad.any()):
        raise DatasetFormatError(
            f"Column {column!r} must hold probabilities in [0, 1]; this batch has {probs[bad].tolist()[:5]}.",
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
                f"Column {self.column!r} must hold numbers in [0, 1]; got {[ex[self.column] for ex in examples][:5]}.",
                column=self.column,
            ) from None
        _check_probs(probs, self.column)
        batch = self.collator(examples)
        batch[self.column] = probs
        return batch


class _LogProbCapture:
    """Forward hooks keeping the fused-LM-head outputs (``.log_probs``) of the policy and reference."""

    def __init__(self, policy: torch.nn.Module, reference: torch.nn.Module | None):
        self.policy_outputs: list[Any] = []
        self.reference_outputs: list[Any] = []
        self._handles = [policy.register_forward_hook(self._keep(self.policy_outputs))]
        if reference is not None:
            self._handles.append(reference.register_forward_hook(self._keep(self.reference_outputs)))

    @staticmethod
    def _keep(store: list):
        def hook(module, args, output):
            if getattr(output, "log_probs", None) is not None:
                store.append(output)

        return hook

    def remove(self) -> None:
        for handle in self._handles:
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
        self,
        model,
        ref_model=None,
        args=None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        *,
        preference_prob_column: str | None = PREFERENCE_PROB_COLUMN,
        constraints=(),
    ):
        self.preference_prob_column = preference_prob_column
        self.constraints = [as_constraint(c) for c in constraints]
        self.constraint_names = constraint_names(self.constraints)
        if preference_prob_column is None and not self.constraints:
            raise ConfigError("SoftDPOTrainer with neither soft labels nor constraints is DPOTrainer: use that.")
        if args is not None and preference_prob_column is not None:
            self._check_config(args)
        if train_dataset is not None and preference_prob_column is not None:
            _check_column(train_dataset, preference_prob_column, "train")
        if eval_dataset is not None and preference_prob_column is not None:
            evals = eval_dataset.items() if isinstance(eval_dataset, dict) else [("eval", eval_dataset)]
            for name, dataset in evals:
                _check_column(dataset, preference_prob_column, name)
        super().__init__(
            model=model,
            ref_model=ref_model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )
        # Wrapped after DPOTrainer.__init__: the reference log-prob precomputation it may run uses
        # the plain collator, which ignores the column.
        if preference_prob_column is not None:
            self.data_collator = PreferenceProbCollator(self.data_collator, preference_prob_column)

    @staticmethod
    def _check_config(args) -> None:
        loss_types = [args.loss_type] if isinstance(args.loss_type, str) else list(args.loss_type)
        if loss_types == [SOFT_LOSS_NAME]:
            # TRL does not know "soft": it runs its sigmoid loss, which _compute_loss corrects.
            args.loss_type = ["sigmoid"]
        elif loss_types != ["sigmoid"]:
            raise ConfigError(
                f"SoftDPOTrainer trains the soft-label loss only; set loss_type='sigmoid' or 'soft' in the config "
                f"(got {loss_types})."
            )
        if args.loss_weights not in (None, [1.0]):
            raise ConfigError(
                f"SoftDPOTrainer does not combine losses; leave loss_weights unset (got {args.loss_weights})."
            )
        if args.label_smoothing != 0.0:
            raise ConfigError(
                "SoftDPOTrainer takes its labels from the preference-probability column; set label_smoothing=0 "
                f"(got {args.label_smoothing}). For a constant label 1 - eps, fill the column with 1 - eps."
            )
        if args.f_divergence_type != "reverse_kl":
            raise ConfigError(
                f"SoftDPOTrainer needs f_divergence_type='reverse_kl' (got {args.f_divergence_type!r})."
            )
        if args.ld_alpha is not None:
            raise ConfigError(
                f"SoftDPOTrainer does not support ld_alpha (got {args.ld_alpha}); leave it unset."
            )
        if args.use_weighting:
            raise ConfigError("SoftDPOTrainer does not support use_weighting=True (WPO weights).")

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.preference_prob_column is not None and self.preference_prob_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.preference_prob_column]

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
        capture = _LogProbCapture(policy, self.ref_model if uses_ref_model else None)
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            capture.remove()
        loss, outputs = result if return_outputs else (result, None)

        # Rebuild the sequence log-probabilities exactly as DPOTrainer._compute_loss sums them.
        seq_len = inputs["completion_mask"].size(1) - 1
        tokens = capture.policy_outputs[0].log_probs[:, -seq_len:]
        chosen_logps, rejected_logps = tokens.sum(dim=1).chunk(2, dim=0)
        ref_tokens = None
        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            # Without a reference model (PEFT), the second policy forward is the reference one.
            ref_output = capture.reference_outputs[0] if uses_ref_model else capture.policy_outputs[1]
            ref_tokens = ref_output.log_probs[:, -seq_len:]
            ref_chosen_logps, ref_rejected_logps = ref_tokens.sum(dim=1).chunk(2, dim=0)

        if probs is not None:
            z = self.beta * ((chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps))
            # -p log sigma(z) - (1 - p) log sigma(-z) = -log sigma(z) + (1 - p) z: TRL's sigmoid loss + this.
            probs = probs.to(device=z.device, dtype=z.dtype)
            loss = loss + ((1 - probs) * z).mean()
            self._metrics[mode]["preference_prob"].append(self.accelerator.gather(probs).mean().item())
        if self.constraints:
            masks = inputs["completion_mask"][:, 1:].chunk(2, dim=0)
            ref_split = ref_tokens.chunk(2, dim=0) if ref_tokens is not None else (None, None)
            logps = PairLogps(
                chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *tokens.chunk(2, dim=0),
                *ref_split, *masks, beta=self.beta, model=policy,
            )  # fmt: skip
            for name, constraint in zip(self.constraint_names, self.constraints, strict=True):
                term = constraint(logps, inputs)
                if not (isinstance(term, torch.Tensor) and term.dim() == 0):
                    raise ConfigError(f"Constraint {name!r} must return a scalar tensor (0-dim), got {term!r}.")
                loss = loss + term
                self._metrics[mode][f"constraint/{name}"].append(self.accelerator.gather(term.detach()).mean().item())
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
        probs = preference_prob_from_ratings(
            batch[chosen_rating_column], batch[rejected_rating_column], temperature
        )
        return {column: probs.tolist()}

    return dataset.map(add, batched=True)


__all__ = [
    "PREFERENCE_PROB_COLUMN",
    "SOFT_LOSS_NAME",
    "PreferenceProbCollator",
    "SoftDPOTrainer",
    "preference_prob_from_ratings",
    "with_preference_prob",
]

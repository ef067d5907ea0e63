"""Check, number for number, that the installed TRL computes what smol_align.reference computes.

Run (from the repository root; CPU, about half a minute):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python tests/trl_parity.py
    python tests/trl_parity.py --loss-types sigmoid ipo orpo --tolerance 1e-5

For each loss type that both TRL's ``DPOTrainer`` and :func:`smol_align.reference.preference_loss`
implement, plus smol_align's soft-label ``SoftDPOTrainer`` and TRL's ``ORPOTrainer``, it builds a
tiny Llama whose policy differs from its reference (at initialisation every log-ratio is 0, which
would prove nothing), runs one ``compute_loss`` + ``backward`` of the trainer on a fixed batch, then
recomputes loss, logged metrics and gradients from plain ``model(...).logits`` of the same batch with
``smol_align.reference``. It prints one row per loss type and a per-metric table, and exits with
status 1 if any difference exceeds the tolerance (absolute, plus the same relative part, as
``torch.testing.assert_close(atol=tol, rtol=tol)``).

``tests/test_trl_parity.py`` runs the same functions (this file is its harness; pytest collects
only ``test_*.py``, so nothing runs twice).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "WANDB_DISABLED": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TQDM_DISABLE": "1",
}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402

try:
    import smol_align  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smol_align.reference import (  # noqa: E402
    IGNORE_INDEX,
    orpo_log_odds_ratio,
    orpo_loss,
    preference_loss,
    preference_metrics,
    sequence_logps,
)

logger = logging.getLogger("trl_parity")

DEFAULT_TOLERANCE = 1e-5
DEFAULT_BETA = 0.5

# Every DPOTrainer loss type that smol_align.reference also implements, with the label smoothing
# each needs (TRL requires eps > 0 for exo_pair; robust and aot use it when given).
DPO_LOSS_TYPES: dict[str, float] = {
    "sigmoid": 0.0,
    "hinge": 0.0,
    "ipo": 0.0,
    "robust": 0.1,
    "bco_pair": 0.0,
    "exo_pair": 1e-2,
    "nca_pair": 0.0,
    "apo_zero": 0.0,
    "apo_down": 0.0,
    "sppo_hard": 0.0,
    "aot": 0.1,
    "aot_unpaired": 0.1,
    "discopop": 0.0,
    "sigmoid_norm": 0.0,
}
SOFT = "soft"
ORPO = "orpo"
ALL_CHECKS = (*DPO_LOSS_TYPES, SOFT, ORPO)


# ------------------------------------------------------------------------------------------
# Data and models
# ------------------------------------------------------------------------------------------


def parity_rows() -> list[dict]:
    """Six conversational preference pairs with prompts and answers of different lengths.

    Different lengths make the batch padded, so a shift or mask mistake shows up. ``preference_prob``
    (used by the soft-label check only) spans certain, likely, even and reversed preferences.
    """
    pairs = [
        ("What is 2 plus 2?", "Arr, it be 4, matey!", "The answer is 4."),
        ("Hello there.", "Hi! How can I help you today?", "Hi."),
        (
            "What is the capital of France?",
            "The capital of France is Paris.",
            "Paris, I think, or maybe Lyon?",
        ),
        ("Count to three.", "1 2 3", "One, two, three, four, five, six, seven!"),
        ("Please answer in one short sentence: what is 9 plus 9?", "Sure, it is 18.", "It be 81, savvy?"),
        ("Say something.", "The quick brown fox jumps over the lazy dog.", "No."),
    ]
    probs = [1.0, 0.9, 0.75, 0.5, 0.2, 0.0]
    return [
        {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "preference_prob": prob,
        }
        for (prompt, chosen, rejected), prob in zip(pairs, probs, strict=True)
    ]


def perturbed(model: torch.nn.Module, scale: float = 0.05, seed: int = 1234) -> torch.nn.Module:
    """A copy of ``model`` with Gaussian noise (std ``scale`` times each tensor's own std, or
    ``scale`` for constant tensors such as norms) added to every parameter, from a fixed seed.

    Used as the policy, ``model`` itself as the reference: their log-ratios are then far from 0.
    """
    policy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            std = param.float().std().item() if param.numel() > 1 else 0.0
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.add_((noise * scale * (std if std > 0 else 1.0)).to(param.dtype))
    return policy


def warmed_up(model: torch.nn.Module, tokenizer, rows: list[dict], steps: int = 40, lr: float = 1e-2):
    """Train ``model`` in place for a few steps of next-token prediction on the rows' texts.

    A freshly initialised tiny model is near uniform over its vocabulary (about -5.8 per token, so
    a completion scores around -150); after this it scores the texts like a real model (about
    -1 per token) and its distributions are peaked, which is what the parity checks should see.
    """
    texts = [
        tokenizer.apply_chat_template(row["prompt"] + row[key], tokenize=False)
        for row in rows
        for key in ("chosen", "rejected")
    ]
    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, IGNORE_INDEX)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**encoded, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model


def tiny_setup(tokenizer=None):
    """``(policy, reference, tokenizer)``: smol_align.testing's tiny Llama, warmed up on
    :func:`parity_rows`, as the reference; a perturbed copy of it as the policy."""
    from smol_align.testing import tiny_model, tiny_tokenizer

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    reference = warmed_up(tiny_model(tokenizer, seed=0), tokenizer, parity_rows())
    return perturbed(reference, scale=0.2), reference, tokenizer


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


@dataclass
class ParityResult:
    """One trainer step against the reference. Differences are absolute; checks use
    ``|TRL - ref| <= tol + tol * |ref|`` (``torch.testing.assert_close`` with atol = rtol = tol)."""

    name: str
    trl_loss: float
    ref_loss: float
    trl_metrics: dict[str, float]
    ref_metrics: dict[str, float]
    grad_max_abs_diff: float  # checked: reference loss evaluated at TRL's sequence log-probs
    grad_scaled_diff: float  # max |diff| / (1 + |ref|) over every gradient entry
    grad_max_abs: float
    grad_worst: str = ""
    own_grad_max_abs_diff: float | None = None  # informative: reference loss at its own log-probs
    logp_max_abs_diff: float | None = None  # per-sequence log-probs, TRL's LM head vs plain logits
    logp_scaled_diff: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def loss_diff(self) -> float:
        return abs(self.trl_loss - self.ref_loss)

    @property
    def metric_diffs(self) -> dict[str, float]:
        return {
            key: abs(self.trl_metrics[key] - value) if key in self.trl_metrics else math.inf
            for key, value in self.ref_metrics.items()
        }

    @property
    def unchecked_metrics(self) -> list[str]:
        """Metrics TRL logged that the reference does not recompute (should stay empty)."""
        return sorted(set(self.trl_metrics) - set(self.ref_metrics))

    def failures(self, tol: float = DEFAULT_TOLERANCE) -> list[str]:
        out = []
        if not _close(self.trl_loss, self.ref_loss, tol):
            out.append(f"loss: TRL {self.trl_loss!r} vs reference {self.ref_loss!r}")
        for key, ref_value in self.ref_metrics.items():
            if key not in self.trl_metrics:
                out.append(f"metric {key}: not logged by TRL")
            elif not _close(self.trl_metrics[key], ref_value, tol):
                out.append(f"metric {key}: TRL {self.trl_metrics[key]!r} vs reference {ref_value!r}")
        for key in self.unchecked_metrics:
            out.append(f"metric {key}: logged by TRL, not recomputed by the reference")
        if not self.grad_scaled_diff <= tol:
            out.append(f"gradients: max |diff| {self.grad_max_abs_diff:.3g} (worst at {self.grad_worst})")
        if self.logp_scaled_diff is not None and not self.logp_scaled_diff <= tol:
            out.append(f"sequence log-probs: max |diff| {self.logp_max_abs_diff:.3g}")
        return out


def _close(a: float, b: float, tol: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol + tol * abs(b)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: (param.grad.detach().clone() if param.grad is not None else torch.zeros_like(param))
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def _compare(trl: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """``(max |trl - ref|, max |trl - ref| / (1 + |ref|))``; NaN anywhere gives inf."""
    trl, ref = trl.detach().double(), ref.detach().double()
    diff = (trl - ref).abs()
    if not bool(torch.isfinite(diff).all()):
        return math.inf, math.inf
    return diff.max().item(), (diff / (1 + ref.abs())).max().item()


def _compare_grads(trl_grads, ref_grads) -> tuple[float, float, float, str]:
    worst_abs, worst_scaled, largest, worst_name = 0.0, 0.0, 0.0, ""
    for name, trl_grad in trl_grads.items():
        abs_diff, scaled = _compare(trl_grad, ref_grads[name])
        largest = max(largest, ref_grads[name].abs().max().item())
        if scaled >= worst_scaled:
            worst_scaled, worst_name = scaled, name
        worst_abs = max(worst_abs, abs_diff)
    return worst_abs, worst_scaled, largest, worst_name


def _last_values(metrics: dict) -> dict[str, float]:
    return {key: float(values[-1]) for key, values in metrics.items() if len(values)}


class _FusedLogProbs:
    """Forward hook keeping the per-token log-probs of the fused-LM-head calls TRL makes."""

    def __init__(self, module: torch.nn.Module):
        self.log_probs: list[torch.Tensor] = []
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        if getattr(output, "log_probs", None) is not None:
            self.log_probs.append(output.log_probs.detach())

    def sequence_logps(self, seq_len: int) -> torch.Tensor:
        # DPOTrainer._compute_loss: log_probs[:, -seq_len:].sum(dim=1) (masked positions are 0)
        return self.log_probs[0][:, -seq_len:].sum(dim=1)

    def remove(self) -> None:
        self._handle.remove()


# ------------------------------------------------------------------------------------------
# DPO
# ------------------------------------------------------------------------------------------


def _dpo_config(output_dir: str, loss_type: str, beta: float, label_smoothing: float, batch_size: int):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=output_dir,
        loss_type=loss_type,
        beta=beta,
        label_smoothing=label_smoothing,
        per_device_train_batch_size=batch_size,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )


def _token_metrics(
    logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor
) -> dict[str, float]:
    """The per-token metrics DPOTrainer logs, from full logits: mean entropy over all completion
    tokens; mean logit (over the vocabulary, then over completion tokens) of chosen and rejected;
    fraction of chosen completion tokens that are the argmax; number of attended tokens."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    mean_logits = logits.mean(-1)
    is_top1 = logits.argmax(-1) == targets
    n = logits.size(0) // 2
    chosen, rejected = mask[:n], mask[n:]
    return {
        "entropy": (entropy[mask].sum() / mask.sum()).item(),
        "logits/chosen": (mean_logits[:n][chosen].sum() / chosen.sum()).item(),
        "logits/rejected": (mean_logits[n:][rejected].sum() / rejected.sum()).item(),
        "mean_token_accuracy": (is_top1[:n][chosen].float().sum() / chosen.sum()).item(),
        "num_tokens": float(attention_mask.sum().item()),
    }


def dpo_parity(
    loss_type: str,
    policy: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer,
    rows: list[dict] | None = None,
    beta: float = DEFAULT_BETA,
    label_smoothing: float | None = None,
    copy_models: bool = True,
    own_grads: bool = True,
) -> ParityResult:
    """One DPOTrainer (or, for ``"soft"``, SoftDPOTrainer) loss + backward against the reference.

    ``policy`` and ``reference`` are copied first (the trainer patches the model it is given and
    the step leaves gradients in it); ``copy_models=False`` uses them as they are (large models).
    ``own_grads=False`` skips the informative gradient (b) below, one backward pass less.

    The reference runs the models' ordinary forward (full logits), :func:`sequence_logps` and
    :func:`preference_loss`. Its loss and metrics are compared as they are. Its gradient is
    compared twice: (a) checked, with the loss evaluated at TRL's per-sequence log-probs (values
    swapped in, ``logps + (trl_logps - logps).detach()``, gradient path still the plain forward),
    and (b) for information, at its own log-probs. TRL's chunked LM head and the full-logits
    forward round the logits differently (different matmul shapes): sequence log-probs can differ
    by a few ulps (2e-6 on SmolLM2; exactly 0 on the tiny model). A loss with large curvature in
    the log-probs (discopop, whose weight is a sigmoid of slope 1/tau = 20, or sppo_hard near its
    optimum) can turn that into gradient differences above 1e-5 with identical math: with a
    near-uniform random tiny model (sums around -150) discopop's (b) differed by 7e-5. (a)
    compares the math; the log-probs themselves are compared separately (policy and reference,
    every sequence).
    """
    from datasets import Dataset

    rows = parity_rows() if rows is None else rows
    if label_smoothing is None:
        label_smoothing = DPO_LOSS_TYPES.get(loss_type, 0.0)
    if copy_models:
        policy, reference = copy.deepcopy(policy), copy.deepcopy(reference)
    policy.train()
    reference.eval()
    if loss_type == SOFT:
        from smol_align.soft_dpo import SoftDPOTrainer as trainer_cls

        dataset_rows = rows
    else:
        from trl import DPOTrainer as trainer_cls

        dataset_rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in rows]

    with tempfile.TemporaryDirectory() as output_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = _dpo_config(output_dir, loss_type, beta, label_smoothing, len(rows))
        trainer = trainer_cls(
            model=policy,
            ref_model=reference,
            args=args,
            train_dataset=Dataset.from_list(dataset_rows),
            processing_class=tokenizer,
        )
        batch = next(iter(trainer.get_train_dataloader()))

        # TRL: its fused LM head, its loss, its metrics.
        policy.zero_grad(set_to_none=True)
        trainer._metrics["train"].clear()
        policy_hook, reference_hook = _FusedLogProbs(policy), _FusedLogProbs(reference)
        try:
            trl_loss = trainer.compute_loss(policy, batch)
        finally:
            policy_hook.remove()
            reference_hook.remove()
        trl_loss.backward()
        trl_grads = _grads(policy)
        trl_metrics = _last_values(trainer._metrics["train"])

    # Reference: plain logits of the same models on the same batch.
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    completion_mask = batch["completion_mask"]
    labels = input_ids.masked_fill(completion_mask == 0, IGNORE_INDEX)
    logits = policy(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logps = sequence_logps(logits, labels)
    with torch.no_grad():
        ref_logits = reference(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        ref_logps = sequence_logps(ref_logits, labels)
    seq_len = completion_mask.size(1) - 1
    trl_logps, trl_ref_logps = policy_hook.sequence_logps(seq_len), reference_hook.sequence_logps(seq_len)
    logp_abs, logp_scaled = _compare(torch.cat([trl_logps, trl_ref_logps]), torch.cat([logps, ref_logps]))

    chosen_lengths, rejected_lengths = completion_mask.sum(dim=1).chunk(2)
    kwargs = {
        "label_smoothing": label_smoothing,
        "chosen_lengths": chosen_lengths,
        "rejected_lengths": rejected_lengths,
    }
    if loss_type == SOFT:
        kwargs["preference_probs"] = batch["preference_prob"]
    elif loss_type == "discopop":
        kwargs["discopop_tau"] = args.discopop_tau

    def reference_loss(policy_logps, reference_logps):
        return preference_loss(
            *policy_logps.chunk(2), *reference_logps.chunk(2), beta=beta, loss_type=loss_type, **kwargs
        )

    # (b) at its own log-probs: the loss and metrics, and the informative gradient
    losses, chosen_rewards, rejected_rewards = reference_loss(logps, ref_logps)
    ref_loss = losses.mean()
    own_abs = None
    if own_grads:
        policy.zero_grad(set_to_none=True)
        ref_loss.backward(retain_graph=True)
        own_abs = _compare_grads(trl_grads, _grads(policy))[0]
    # (a) at TRL's log-probs: the checked gradient
    policy.zero_grad(set_to_none=True)
    snapped = logps + (trl_logps - logps).detach()
    reference_loss(snapped, trl_ref_logps)[0].mean().backward()
    ref_grads = _grads(policy)

    chosen_logps, rejected_logps = logps.chunk(2)
    ref_metrics = preference_metrics(chosen_rewards, rejected_rewards, chosen_logps, rejected_logps)
    ref_metrics.update(_token_metrics(logits.detach(), labels, attention_mask))
    if loss_type == SOFT:
        ref_metrics["preference_prob"] = batch["preference_prob"].mean().item()
    grad_abs, grad_scaled, grad_max, grad_worst = _compare_grads(trl_grads, ref_grads)
    z = (chosen_rewards - rejected_rewards).detach()
    return ParityResult(
        name=loss_type,
        trl_loss=trl_loss.item(),
        ref_loss=ref_loss.item(),
        trl_metrics=trl_metrics,
        ref_metrics=ref_metrics,
        grad_max_abs_diff=grad_abs,
        grad_scaled_diff=grad_scaled,
        grad_max_abs=grad_max,
        grad_worst=grad_worst,
        own_grad_max_abs_diff=own_abs,
        logp_max_abs_diff=logp_abs,
        logp_scaled_diff=logp_scaled,
        extra={"min beta*Delta": z.min().item(), "max beta*Delta": z.max().item()},
    )


# ------------------------------------------------------------------------------------------
# ORPO
# ------------------------------------------------------------------------------------------


def orpo_parity(
    policy: torch.nn.Module,
    tokenizer,
    rows: list[dict] | None = None,
    beta: float = DEFAULT_BETA,
    copy_model: bool = True,
) -> ParityResult:
    """One ORPOTrainer loss + backward against :func:`smol_align.reference.orpo_loss`.

    ORPOTrainer takes log-probs from full logits, as the reference does, so there is nothing to
    swap in: loss, metrics and gradients are compared directly. The reference forward
    concatenates chosen and rejected padded to one length, as TRL does, because TRL's
    ``logits/*`` metrics average over every position of that padded batch, padding included.
    """
    from datasets import Dataset

    from smol_align._compat import import_orpo

    ORPOConfig, ORPOTrainer = import_orpo()
    rows = parity_rows() if rows is None else rows
    rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in rows]
    if copy_model:
        policy = copy.deepcopy(policy)
    policy.train()

    with tempfile.TemporaryDirectory() as output_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = ORPOConfig(
            output_dir=output_dir,
            beta=beta,
            max_length=512,
            per_device_train_batch_size=len(rows),
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            seed=0,
            remove_unused_columns=False,
            dataloader_num_workers=0,
        )
        trainer = ORPOTrainer(
            model=policy, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )
        batch = next(iter(trainer.get_train_dataloader()))

        policy.zero_grad(set_to_none=True)
        trainer._stored_metrics["train"].clear()
        trl_loss = trainer.compute_loss(policy, batch)
        trl_loss.backward()
        trl_grads = _grads(policy)
        trl_metrics = _last_values(trainer._stored_metrics["train"])
        pad_id = trainer.padding_value

    policy.zero_grad(set_to_none=True)
    n = batch["chosen_input_ids"].size(0)
    length = max(batch["chosen_input_ids"].size(1), batch["rejected_input_ids"].size(1))

    def padded(key: str, value: int) -> torch.Tensor:
        parts = [batch[f"chosen_{key}"], batch[f"rejected_{key}"]]
        return torch.cat([torch.nn.functional.pad(t, (0, length - t.size(1)), value=value) for t in parts])

    input_ids, attention_mask = padded("input_ids", pad_id), padded("attention_mask", 0)
    labels = padded("labels", IGNORE_INDEX)  # completion tokens only
    logits = policy(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    # L_SFT as TRL computes it: token-mean NLL of the chosen sequences, prompt tokens included,
    # through F.cross_entropy (log_softmax) as TRL's nn.CrossEntropyLoss does. In float32 on CPU
    # torch's log_softmax is less precise than the logsumexp route of sequence_logps (up to ~4e-5
    # per token with a 49k vocabulary): with sequence_logps here, SmolLM2's gradients differ from
    # TRL's by up to ~3e-4, a rounding difference, not a different formula.
    nll_labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)[:n]
    chosen_nll = torch.nn.functional.cross_entropy(
        logits[:n, :-1].flatten(0, 1), nll_labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
    )
    avg_logps = sequence_logps(logits, labels, average=True)
    chosen_logps, rejected_logps = avg_logps[:n], avg_logps[n:]
    ref_loss, or_losses = orpo_loss(chosen_nll, chosen_logps, rejected_logps, beta)
    ref_loss.backward()
    ref_grads = _grads(policy)

    with torch.no_grad():
        log_odds = orpo_log_odds_ratio(chosen_logps, rejected_logps)
        ref_metrics = preference_metrics(
            beta * chosen_logps, beta * rejected_logps, chosen_logps, rejected_logps
        )
        ref_metrics.update(
            {
                "logits/chosen": logits[:n, :-1].mean().item(),
                "logits/rejected": logits[n:, :-1].mean().item(),
                "nll_loss": chosen_nll.item(),
                "log_odds_ratio": (-or_losses).mean().item(),
                "log_odds_chosen": log_odds.mean().item(),
            }
        )
    grad_abs, grad_scaled, grad_max, grad_worst = _compare_grads(trl_grads, ref_grads)
    return ParityResult(
        name=ORPO,
        trl_loss=trl_loss.item(),
        ref_loss=ref_loss.item(),
        trl_metrics=trl_metrics,
        ref_metrics=ref_metrics,
        grad_max_abs_diff=grad_abs,
        grad_scaled_diff=grad_scaled,
        grad_max_abs=grad_max,
        grad_worst=grad_worst,
        own_grad_max_abs_diff=grad_abs,
        extra={"min log OR": log_odds.min().item(), "max log OR": log_odds.max().item()},
    )


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------

_SHORT = {
    "rewards/chosen": "rew/ch",
    "rewards/rejected": "rew/rej",
    "rewards/accuracies": "rew/acc",
    "rewards/margins": "rew/marg",
    "logps/chosen": "logp/ch",
    "logps/rejected": "logp/rej",
    "logits/chosen": "logit/ch",
    "logits/rejected": "logit/rej",
    "entropy": "entropy",
    "mean_token_accuracy": "tok_acc",
    "num_tokens": "n_tok",
    "preference_prob": "pref_p",
    "nll_loss": "nll",
    "log_odds_ratio": "log_OR_sig",
    "log_odds_chosen": "log_OR",
}


def _fmt(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def format_table(results: list[ParityResult], tol: float = DEFAULT_TOLERANCE) -> str:
    header = [
        "loss type",
        "TRL loss",
        "ref loss",
        "|d loss|",
        "max |d metric|",
        "max |d seq logp|",
        "max |d grad|",
        "(own logps)",
        "max |grad|",
        "ok",
    ]
    rows = []
    for r in results:
        diffs = r.metric_diffs
        worst_key = max(diffs, key=diffs.get) if diffs else ""
        rows.append(
            [
                r.name,
                f"{r.trl_loss:.6f}",
                f"{r.ref_loss:.6f}",
                _fmt(r.loss_diff),
                f"{_fmt(diffs[worst_key])} ({_SHORT.get(worst_key, worst_key)})" if worst_key else "-",
                _fmt(r.logp_max_abs_diff) if r.logp_max_abs_diff is not None else "-",
                _fmt(r.grad_max_abs_diff),
                _fmt(r.own_grad_max_abs_diff) if r.own_grad_max_abs_diff is not None else "-",
                f"{r.grad_max_abs:.2g}",
                "yes" if not r.failures(tol) else "NO",
            ]
        )
    lines = [_render(header, rows)]

    keys = [k for k in _SHORT if any(k in r.ref_metrics for r in results)]
    metric_rows = [
        [r.name] + [_fmt(r.metric_diffs[k]) if k in r.ref_metrics else "" for k in keys] for r in results
    ]
    lines.append("")
    lines.append("|TRL - reference| per logged metric:")
    lines.append(_render(["loss type"] + [_SHORT[k] for k in keys], metric_rows))
    return "\n".join(lines)


def _render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def run_checks(names=ALL_CHECKS, setup=tiny_setup, beta: float = DEFAULT_BETA) -> list[ParityResult]:
    policy, reference, tokenizer = setup()
    results = []
    for name in names:
        if name == ORPO:
            results.append(orpo_parity(policy, tokenizer, beta=beta))
        else:
            results.append(dpo_parity(name, policy, reference, tokenizer, beta=beta))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--loss-types", nargs="+", default=list(ALL_CHECKS), choices=ALL_CHECKS, metavar="NAME"
    )
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA)
    options = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    for noisy in ("transformers", "trl", "datasets", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    torch.manual_seed(0)

    import trl

    results = run_checks(options.loss_types, beta=options.beta)
    print(
        f"TRL {trl.__version__}, torch {torch.__version__}, fp32 CPU, tiny Llama, beta={options.beta}, tolerance {options.tolerance:g}"
    )
    print(format_table(results, options.tolerance))
    failures = [f"{r.name}: {f}" for r in results for f in r.failures(options.tolerance)]
    if failures:
        print("\nDIFFERENCES ABOVE TOLERANCE:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nAll {len(results)} checks agree within {options.tolerance:g}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

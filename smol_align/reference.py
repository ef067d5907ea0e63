"""Clean-room reference implementations of the preference losses, written from the papers.

This module is what the course's formulas look like in code: tensors in, tensors out, torch only
(no TRL import). ``tests/test_trl_parity.py`` and ``tests/trl_parity.py`` check, number
for number, that the installed TRL computes the same losses, logged metrics and gradients.

Notation used in every docstring (one row per preference pair ``(x, y_w, y_l)``):

* ``log pi(y|x)``: the *sum* of the completion's token log-probabilities under the policy,
  ``log pi_ref(y|x)`` the same under the frozen reference model (see :func:`sequence_logps`);
* ``r_w = log pi(y_w|x) - log pi_ref(y_w|x)`` and ``r_l`` likewise: the log-ratios;
* ``Delta = r_w - r_l``, the quantity DPO pushes up;
* ``sigma`` is the logistic sigmoid and ``log sigma(z) = -softplus(-z)`` (computed stably);
* the implicit rewards TRL logs are ``beta * r_w`` and ``beta * r_l`` for every loss type.

Shapes: every ``*_logps`` argument is a 1-D tensor with one entry per pair. Each loss function
returns ``(losses, chosen_rewards, rejected_rewards)``, all of that shape; ``losses.mean()`` is
what a trainer backpropagates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label value of tokens that carry no loss (prompt and padding), as in transformers and TRL."""

_LN2 = math.log(2.0)

LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "bco_pair",
    "exo_pair",
    "nca_pair",
    "apo_zero",
    "apo_down",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "discopop",
    "sigmoid_norm",
    "soft",
)
"""Loss types :func:`preference_loss` implements. All but ``"soft"`` have a TRL 1.16 twin."""

_USES_LABEL_SMOOTHING = ("robust", "exo_pair", "aot", "aot_unpaired", "soft")
_USES_LENGTHS = ("ipo", "sigmoid_norm")


# --- Log-probabilities of completions ---


def sequence_logps(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, average: bool = False
) -> torch.Tensor:
    """Per-sequence sum (or mean) of the token log-probabilities of the labelled tokens.

    A causal LM's logits at position ``t`` score the token at position ``t + 1``, so the sum is

        log pi(y|x) = sum_{t >= 1, labels[t] != -100, mask[t]} log softmax(logits[t - 1])[labels[t]]

    (DPO paper, Rafailov et al. 2023, Sec. 4: ``pi(y|x) = prod_t pi(y_t | x, y_<t)``). ``labels`` is
    aligned with ``input_ids`` (the transformers convention): put ``-100`` on prompt and padding
    tokens, or pass ``mask`` (1 = count the token) aligned the same way; a token counts when both
    allow it. The first position never counts (nothing predicts it).

    Args:
        logits: ``(batch, seq_len, vocab)`` raw model outputs. bf16/fp16 are upcast to float32.
        labels: ``(batch, seq_len)`` token ids, ``-100`` where no loss is wanted.
        mask: optional ``(batch, seq_len)`` 0/1 tensor aligned with ``labels``.
        average: return the mean over counted tokens instead of the sum (ORPO, SimPO); a
            sequence with no counted token gives 0.

    Returns:
        ``(batch,)`` tensor, float32 (float64 for float64 logits).

    Example (worked in ``tests/test_reference.py``): vocabulary of 4, ``labels = [-100, 1, 3]``,
    logits ``[0, ln 3, 0, 0]`` at position 0 (so ``p(1) = 3/6``) and zeros at position 1
    (``p(3) = 1/4``): the sum is ``ln(1/2) + ln(1/4) = ln(1/8) = -2.0794``, the mean ``-1.0397``.
    """
    if logits.dim() != 3:
        raise ValueError(f"`logits` must be (batch, seq_len, vocab); got shape {tuple(logits.shape)}.")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"`labels` must be (batch, seq_len) = {tuple(logits.shape[:2])}, aligned with the inputs; "
            f"got {tuple(labels.shape)}."
        )
    if mask is not None and mask.shape != labels.shape:
        raise ValueError(
            f"`mask` must have the shape of `labels` {tuple(labels.shape)}; got {tuple(mask.shape)}."
        )

    # Shift: logits at t predict the token at t + 1.
    shift_logits = logits[:, :-1, :].to(torch.promote_types(logits.dtype, torch.float32))
    shift_labels = labels[:, 1:]
    counted = shift_labels != IGNORE_INDEX
    if mask is not None:
        counted = counted & mask[:, 1:].bool()
    safe_labels = shift_labels.masked_fill(~counted, 0)  # any valid index; zeroed below
    # log softmax(l)[y] = l[y] - logsumexp(l). Not torch.log_softmax: on CPU in float32 it loses
    # ~4e-5 per token over a 49k vocabulary, logsumexp ~2e-6 (SmolLM2, measured against float64).
    label_logits = shift_logits.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    token_logps = label_logits - torch.logsumexp(shift_logits, dim=-1)
    total = torch.where(counted, token_logps, torch.zeros_like(token_logps)).sum(dim=-1)
    return total / counted.sum(dim=-1).clamp(min=1) if average else total


# --- DPO, as printed in the paper ---


def dpo_loss(
    pi_logps: torch.Tensor, ref_logps: torch.Tensor, yw_idxs: torch.Tensor, yl_idxs: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The DPO loss with the signature of the paper's own listing (Rafailov et al. 2023, App. B).

    Eq. 7 of the paper:

        L_DPO = -E[ log sigma( beta * log(pi(y_w|x)/pi_ref(y_w|x)) - beta * log(pi(y_l|x)/pi_ref(y_l|x)) ) ]

    Args:
        pi_logps: ``(B,)`` policy log-probabilities of ``B`` completions.
        ref_logps: ``(B,)`` reference log-probabilities of the same completions.
        yw_idxs: ``(T,)`` indices in ``[0, B)`` of the preferred completion of each of ``T`` pairs.
        yl_idxs: ``(T,)`` indices of the dispreferred completion of each pair.
        beta: strength of the KL penalty towards the reference.

    Returns:
        ``(losses, rewards)``: ``(T,)`` per-pair losses and ``(B,)`` implicit rewards
        ``beta * (log pi - log pi_ref)`` (detached), as in the listing.

    Example: ``pi_logps = [-1, -3]``, ``ref_logps = [-2, -2]``, pair ``(0, 1)``, ``beta = 0.5``:
    log-ratios ``+1`` and ``-1``, ``beta * Delta = 1``, loss ``-log sigma(1) = log(1 + e^-1) = 0.3133``,
    rewards ``[0.5, -0.5]``.
    """
    if pi_logps.shape != ref_logps.shape:
        raise ValueError(
            f"`pi_logps` and `ref_logps` must have the same shape; got {tuple(pi_logps.shape)} and "
            f"{tuple(ref_logps.shape)}."
        )
    if yw_idxs.shape != yl_idxs.shape:
        raise ValueError("`yw_idxs` and `yl_idxs` must have the same shape (one entry per pair).")
    pi_yw_logps, pi_yl_logps = pi_logps[yw_idxs], pi_logps[yl_idxs]
    ref_yw_logps, ref_yl_logps = ref_logps[yw_idxs], ref_logps[yl_idxs]
    pi_logratios = pi_yw_logps - pi_yl_logps
    ref_logratios = ref_yw_logps - ref_yl_logps
    losses = -F.logsigmoid(beta * (pi_logratios - ref_logratios))
    rewards = beta * (pi_logps - ref_logps).detach()
    return losses, rewards


# --- DPO and its variants, in TRL's calling convention ---


def _as_like(value, like: torch.Tensor, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if tensor.shape != like.shape:
        raise ValueError(
            f"`{name}` must have one entry per pair, shape {tuple(like.shape)}; got {tuple(tensor.shape)}."
        )
    return tensor


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: torch.Tensor | Sequence[int] | None = None,
    rejected_lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    preference_probs: torch.Tensor | Sequence[float] | None = None,
    discopop_tau: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair preference loss of ``loss_type``, with TRL's implicit rewards.

    With ``r_w``, ``r_l``, ``Delta = r_w - r_l`` and ``z = beta * Delta`` (see the module docstring):

    ``"sigmoid"``: DPO, Rafailov et al. 2023, eq. 7: ``L = -log sigma(z)``
    ``"soft"``: DPO with a soft label ``p = P(y_w > y_l)`` per pair: the cross-entropy between the
        Bradley-Terry probability ``sigma(z)`` (DPO eq. 1 with the implicit reward) and ``p``.
        ``L = -p log sigma(z) - (1 - p) log sigma(-z)``. With one ``p = 1 - eps`` for every pair it is
        conservative DPO, cDPO (Mitchell 2023, "A note on DPO with noisy preferences"): pass
        ``preference_probs`` (per pair) or ``label_smoothing = eps``, not both. ``p = 1`` is DPO.
        Since ``log sigma(z) - log sigma(-z) = z``, ``L = -log sigma(z) + (1 - p) z``.
    ``"hinge"``: the SLiC hinge (Zhao et al. 2023) on DPO's log-ratios, as in RSO (Liu et al. 2024),
        margin 1: ``L = max(0, 1 - z)``
    ``"ipo"``: IPO, Azar et al. 2023, eq. 17, with ``tau = beta``, on per-token log-ratios (TRL
        divides each log-ratio by the completion's token count; the IPO authors confirmed this is
        the form behind their results): ``L = (r_w / |y_w| - r_l / |y_l| - 1 / (2 beta))^2``.
        Needs ``chosen_lengths`` and ``rejected_lengths`` (completion token counts, >= 1).
    ``"robust"``: robust DPO (rDPO), Chowdhury et al. 2024, ``eps = label_smoothing`` in ``[0, 0.5)``
        the label-flip rate: ``L = ((1 - eps) (-log sigma(z)) - eps (-log sigma(-z))) / (1 - 2 eps)``.
    ``"bco_pair"``: BCO on pairs, Jung et al. 2024, with the reward shift ``delta = 0`` (TRL
        1.16 dropped the paper's running-mean shift): ``L = -log sigma(beta r_w) - log sigma(-beta r_l)``.
    ``"exo_pair"``: EXO, Ji et al. 2024, eq. 16 for K = 2: ``KL(q || p_eps)`` with
        ``q = (sigma(z), sigma(-z))`` and target ``p_eps = (1 - eps, eps)``, ``eps = label_smoothing``
        in ``(0, 1)`` (the paper suggests 1e-3):
        ``L = sigma(z) (log sigma(z) - log(1 - eps)) + sigma(-z) (log sigma(-z) - log eps)``.
    ``"nca_pair"``: NCA, Chen et al. 2024, pairwise (K = 2) form:
        ``L = -log sigma(beta r_w) - 1/2 log sigma(-beta r_w) - 1/2 log sigma(-beta r_l)``.
    ``"apo_zero"``: APO-zero, D'Oosterlinck et al. 2024, eq. 7, plus the constant 1 TRL adds
        (changes no gradient): ``L = 1 - sigma(beta r_w) + sigma(beta r_l)``.
    ``"apo_down"``: APO-down, eq. 8, plus 1 likewise: ``L = sigma(beta r_w) + 1 - sigma(z)``.
    ``"sppo_hard"``: SPPO, Wu et al. 2024, eq. 4.7 with hard probabilities (1 for y_w, 0 for y_l)
        and ``eta = 1 / beta``: ``L = (r_w - 1/(2 beta))^2 + (r_l + 1/(2 beta))^2``.
    ``"aot"`` / ``"aot_unpaired"``: AOT, Melnyk et al. 2024, paired and unpaired: the logistic loss (with ``eps = label_smoothing``) on the difference of
        *sorted* quantities across the batch. Paired: sort ``log pi(y_w) - log pi(y_l)`` and
        ``log pi_ref(y_w) - log pi_ref(y_l)`` separately. Unpaired: sort ``r_w`` and ``r_l``
        separately. ``L_i = -(1 - eps) log sigma(beta d_i) - eps log sigma(-beta d_i)``.
    ``"discopop"``: DiscoPOP (log-ratio modulated loss), Lu et al. 2024, eq. 5, ``tau = discopop_tau``:
        ``L = (1 - sigma(z / tau)) (-log sigma(z)) + sigma(z / tau) exp(-z)``; the second term is
        computed as ``exp(log sigma(z / tau) - z)``, finite where ``exp(-z)`` alone overflows.
    ``"sigmoid_norm"``: DPO on per-token log-ratios (TRL's length-normalised DPO):
        ``L = -log sigma(beta (r_w / |y_w| - r_l / |y_l|))``. Needs the lengths, like ``"ipo"``.

    Rewards, for every loss type, are TRL's: ``beta * r_w`` and ``beta * r_l``, detached.

    Worked example (``tests/test_reference.py`` checks every loss on it): ``beta = 0.5``,
    ``log pi(y_w) = -1``, ``log pi(y_l) = -3``, ``log pi_ref = -2`` for both, so ``r_w = 1``,
    ``r_l = -1``, ``z = 1``: sigmoid ``log(1 + e^-1) = 0.31326``; hinge ``max(0, 1 - 1) = 0``;
    robust (eps = 0.1) ``0.31326 - 0.1 * 1 / 0.8 = 0.18826``; soft (p = 0.75)
    ``0.31326 + 0.25 = 0.56326``.

    Args:
        policy_chosen_logps: ``(batch,)`` sequence log-probabilities (sums over completion tokens) of the
            chosen answers under the policy.
        policy_rejected_logps: the same, rejected answers under the policy.
        ref_chosen_logps: the same, chosen answers under the reference.
        ref_rejected_logps: the same, rejected answers under the reference.
        beta: the KL strength (``tau`` of IPO), > 0.
        loss_type: one of :data:`LOSS_TYPES`.
        label_smoothing: ``eps`` of ``robust``, ``exo_pair``, ``aot*`` and constant-``p`` ``soft``; it
            must stay 0 for the other losses (TRL 1.16 silently ignores it there, e.g. for
            ``sigmoid``, which used to mean cDPO; use ``"soft"`` for that).
        chosen_lengths: completion token counts of the chosen answers, for ``ipo`` and ``sigmoid_norm``.
        rejected_lengths: the same, rejected answers.
        preference_probs: ``(batch,)`` values of ``p`` in ``[0, 1]``, for ``soft``.
        discopop_tau: ``tau`` of ``discopop``.
    """
    like = policy_chosen_logps
    others = {
        "policy_rejected_logps": policy_rejected_logps,
        "ref_chosen_logps": ref_chosen_logps,
        "ref_rejected_logps": ref_rejected_logps,
    }
    for name, tensor in others.items():
        if tensor.shape != like.shape:
            raise ValueError(
                f"`{name}` must have the shape of `policy_chosen_logps` {tuple(like.shape)}; "
                f"got {tuple(tensor.shape)}."
            )
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"Unknown loss_type {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}.")
    if not (isinstance(beta, (int, float)) and beta > 0 and math.isfinite(beta)):
        raise ValueError(f"`beta` must be a finite number > 0; got {beta!r}.")
    if label_smoothing != 0.0 and loss_type not in _USES_LABEL_SMOOTHING:
        raise ValueError(
            f"`label_smoothing` is not used by loss_type {loss_type!r} (only by {', '.join(_USES_LABEL_SMOOTHING)}). "
            "For conservative DPO (cDPO) use loss_type='soft'."
        )
    if preference_probs is not None and loss_type != "soft":
        raise ValueError(f"`preference_probs` is only used by loss_type='soft', not {loss_type!r}.")

    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    z, eps = beta * (chosen_logratios - rejected_logratios), label_smoothing

    if loss_type in _USES_LENGTHS:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError(f"loss_type {loss_type!r} needs `chosen_lengths` and `rejected_lengths`.")
        # TRL clamps at 1 so an empty completion does not divide by zero.
        chosen_len = _as_like(chosen_lengths, like, "chosen_lengths").clamp(min=1.0)
        rejected_len = _as_like(rejected_lengths, like, "rejected_lengths").clamp(min=1.0)
        per_token_delta = chosen_logratios / chosen_len - rejected_logratios / rejected_len

    if loss_type == "sigmoid":
        losses = -F.logsigmoid(z)
    elif loss_type == "soft":
        if preference_probs is None:
            if not 0.0 <= eps <= 1.0:
                raise ValueError(f"`label_smoothing` must lie in [0, 1] for loss_type='soft'; got {eps}.")
            p = torch.full_like(z, 1.0 - eps)
        else:
            if eps != 0.0:
                raise ValueError(
                    "Pass either `preference_probs` (per pair) or `label_smoothing` (constant), not both."
                )
            p = _as_like(preference_probs, like, "preference_probs")
            if not bool(((p >= 0) & (p <= 1)).all()):
                raise ValueError(
                    f"`preference_probs` must lie in [0, 1]; got min {p.min().item()}, max {p.max().item()}."
                )
        losses = -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))
    elif loss_type == "hinge":
        losses = torch.relu(1 - z)
    elif loss_type == "ipo":
        losses = (per_token_delta - 1 / (2 * beta)) ** 2
    elif loss_type == "robust":
        if not 0.0 <= eps < 0.5:
            raise ValueError(
                f"`label_smoothing` (the flip rate) must lie in [0, 0.5) for 'robust'; got {eps}."
            )
        losses = ((1 - eps) * -F.logsigmoid(z) - eps * -F.logsigmoid(-z)) / (1 - 2 * eps)
    elif loss_type == "bco_pair":
        losses = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    elif loss_type == "exo_pair":
        if not 0.0 < eps < 1.0:
            raise ValueError(
                f"`label_smoothing` must lie in (0, 1) for 'exo_pair' (the paper uses 1e-3); got {eps}."
            )
        losses = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-eps)) + torch.sigmoid(-z) * (
            F.logsigmoid(-z) - math.log(eps)
        )
    elif loss_type == "nca_pair":
        rw, rl = beta * chosen_logratios, beta * rejected_logratios
        losses = -F.logsigmoid(rw) - 0.5 * F.logsigmoid(-rw) - 0.5 * F.logsigmoid(-rl)
    elif loss_type == "apo_zero":
        losses = 1 - torch.sigmoid(beta * chosen_logratios) + torch.sigmoid(beta * rejected_logratios)
    elif loss_type == "apo_down":
        losses = torch.sigmoid(beta * chosen_logratios) + 1 - torch.sigmoid(z)
    elif loss_type == "sppo_hard":
        losses = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    elif loss_type in ("aot", "aot_unpaired"):
        if loss_type == "aot":  # sort the policy's and the reference's log-ratio gaps separately
            a, b = policy_chosen_logps - policy_rejected_logps, ref_chosen_logps - ref_rejected_logps
        else:  # sort r_w and r_l separately
            a, b = chosen_logratios, rejected_logratios
        d = torch.sort(a, dim=0).values - torch.sort(b, dim=0).values
        losses = -(1 - eps) * F.logsigmoid(beta * d) - eps * F.logsigmoid(-beta * d)
    elif loss_type == "discopop":
        if not discopop_tau > 0:
            raise ValueError(f"`discopop_tau` must be > 0; got {discopop_tau}.")
        modulation = torch.sigmoid(z / discopop_tau)
        logistic = -F.logsigmoid(z)
        exponential = torch.exp(F.logsigmoid(z / discopop_tau) - z)  # = sigma(z / tau) * exp(-z)
        losses = logistic * (1 - modulation) + exponential
    else:  # "sigmoid_norm"; the list is closed by the LOSS_TYPES check above
        losses = -F.logsigmoid(beta * per_token_delta)

    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def preference_prob_from_ratings(chosen_rating, rejected_rating, temperature: float = 1.0):
    """Probability that the chosen answer is preferred, from two scalar ratings (Bradley-Terry).

    The Bradley-Terry model (Bradley & Terry 1952; DPO eq. 1) gives
    ``P(y_w > y_l) = sigma((s_w - s_l) / T)`` for scores ``s``; here the scores are ratings (for
    example Argilla's 1-10 ``chosen_rating`` / ``rejected_rating``) and ``T = temperature`` sets how
    much a one-point gap counts: with ``T = 1`` a gap of 2 gives ``sigma(2) = 0.881``, equal ratings
    0.5. Use it to fill the ``preference_prob`` column that ``loss_type="soft"`` trains on.

    Accepts numbers (returns a float), sequences or tensors (returns a float32 tensor).
    """
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"`temperature` must be a finite number > 0; got {temperature!r}.")
    scalar = isinstance(chosen_rating, (int, float)) and isinstance(rejected_rating, (int, float))
    dtype = torch.float64 if scalar else torch.float32
    gap = (
        torch.as_tensor(chosen_rating, dtype=dtype) - torch.as_tensor(rejected_rating, dtype=dtype)
    ) / temperature
    if not bool(torch.isfinite(gap).all()):
        raise ValueError(f"Ratings must be finite numbers; got {chosen_rating!r} and {rejected_rating!r}.")
    return torch.sigmoid(gap).item() if scalar else torch.sigmoid(gap)


# --- ORPO ---


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, without cancellation (Maechler 2012, "Accurately
    Computing log(1 - exp(-|a|))"): ``log(-expm1(x))`` near 0, ``log1p(-exp(x))`` below ``-ln 2``.

    Each branch only sees inputs where it is accurate, so no NaN leaks into the gradient through
    the branch ``torch.where`` discards. ``x = 0`` gives ``-inf`` (the odds of a certain event).
    """
    near_zero = x >= -_LN2
    x_far = torch.where(near_zero, torch.full_like(x, -1.0), x)
    x_near = torch.where(near_zero, x, torch.full_like(x, -0.5))
    return torch.where(near_zero, torch.log(-torch.expm1(x_near)), torch.log1p(-torch.exp(x_far)))


def orpo_log_odds_ratio(
    policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor
) -> torch.Tensor:
    """Log odds ratio of ORPO (Hong et al. 2024), per pair.

    With length-averaged log-probabilities ``l = (1/|y|) log pi(y|x)`` (ORPO takes ``P(y|x)`` as
    the geometric mean of the token probabilities) and ``odds(y|x) = P / (1 - P)``:

        log OR = log odds(y_w|x) - log odds(y_l|x) = (l_w - l_l) - (log(1 - e^{l_w}) - log(1 - e^{l_l}))

    ``log(1 - e^l)`` is :func:`log1mexp`. Inputs must be <= 0 (they are log-probabilities).
    """
    if policy_chosen_logps.shape != policy_rejected_logps.shape:
        raise ValueError("`policy_chosen_logps` and `policy_rejected_logps` must have the same shape.")
    for name, tensor in (
        ("policy_chosen_logps", policy_chosen_logps),
        ("policy_rejected_logps", policy_rejected_logps),
    ):
        if bool((tensor > 0).any()):
            raise ValueError(f"`{name}` must be log-probabilities (<= 0); got max {tensor.max().item()}.")
    return (policy_chosen_logps - policy_rejected_logps) - (
        log1mexp(policy_chosen_logps) - log1mexp(policy_rejected_logps)
    )


def orpo_loss(
    chosen_nll: torch.Tensor,
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ORPO's objective (Hong et al. 2024, eqs. 6-7).

        L_ORPO = L_SFT + lambda * L_OR,    L_OR = -log sigma(log OR)                 (eq. 6, eq. 7)

    with ``log OR`` from :func:`orpo_log_odds_ratio` on *length-averaged* log-probabilities and
    ``lambda = beta`` (TRL's name). ``L_SFT`` is the negative log-likelihood of the chosen answer,
    computed by the caller (its mean over tokens): ``chosen_nll``, a scalar or one value per pair
    (then averaged).

    Returns:
        ``(loss, or_losses)``: the scalar total, batch-averaged, and the ``(batch,)`` odds-ratio
        terms ``L_OR`` (positive; TRL logs their negation's mean as ``log_odds_ratio``). The rewards
        TRL logs are ``beta * policy_*_logps``.

    Example: ``l_w = ln(1/2)``, ``l_l = ln(1/4)``: ``odds = 1`` and ``1/3``, ``log OR = ln 3``,
    ``L_OR = -ln(3/4) = 0.28768``; with ``chosen_nll = 2`` and ``beta = 0.1`` the loss is ``2.028768``.
    """
    or_losses = -F.logsigmoid(orpo_log_odds_ratio(policy_chosen_logps, policy_rejected_logps))
    return chosen_nll.mean() + beta * or_losses.mean(), or_losses


# --- What TRL logs ---


def preference_metrics(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    policy_chosen_logps: torch.Tensor | None = None,
    policy_rejected_logps: torch.Tensor | None = None,
) -> dict[str, float]:
    """Batch means of the reward metrics, with the keys TRL logs them under.

    ``rewards/chosen`` and ``rewards/rejected`` are the means of the implicit rewards
    (``beta * r_w``, ``beta * r_l`` for DPO; ``beta * l_w``, ``beta * l_l`` for ORPO);
    ``rewards/margins`` the mean of ``chosen - rejected``; ``rewards/accuracies`` the fraction of
    pairs whose chosen reward is strictly larger (ties count as wrong); ``logps/chosen`` and
    ``logps/rejected`` the means of the policy's sequence log-probabilities, when given.

    Example: chosen rewards ``[0.5, -0.5]``, rejected ``[-0.5, 0.0]``: ``rewards/chosen = 0``,
    ``rewards/rejected = -0.25``, ``rewards/margins = mean(1, -0.5) = 0.25``,
    ``rewards/accuracies = 0.5``.
    """
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError("`chosen_rewards` and `rejected_rewards` must have the same shape.")
    chosen, rejected = chosen_rewards.detach().float(), rejected_rewards.detach().float()
    means = {
        "rewards/chosen": chosen,
        "rewards/rejected": rejected,
        "rewards/accuracies": (chosen > rejected).float(),
        "rewards/margins": chosen - rejected,
        "logps/chosen": policy_chosen_logps,
        "logps/rejected": policy_rejected_logps,
    }
    return {key: t.detach().float().mean().item() for key, t in means.items() if t is not None}


# --- Constraint terms added to the DPO loss (``train_dpo(..., constraints=[...])``) ---


@dataclass(frozen=True)
class PairLogps:
    """What a constraint receives: the log-probabilities of one batch, one row per pair.

    ``chosen``, ``rejected``: ``log pi(y|x)``, the policy's token log-probs summed over the completion
    (as DPOTrainer sums them without ``ld_alpha``), shape ``(B,)``, with gradient; ``ref_chosen``,
    ``ref_rejected``: the same under the reference (no gradient). ``*_tokens``: the per-token
    log-probs, shape ``(B, T)``, zero outside the completion; the reference's are ``None`` when they
    were precomputed (``precompute_ref_log_probs=True``: only their sums are kept). ``chosen_mask``,
    ``rejected_mask``: 1 on completion tokens, so ``chosen_mask.sum(1)`` is ``|y_w|`` in tokens.
    ``beta``: the trainer's beta; ``model``: the policy (unwrapped).
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    chosen_tokens: torch.Tensor | None = None
    rejected_tokens: torch.Tensor | None = None
    ref_chosen_tokens: torch.Tensor | None = None
    ref_rejected_tokens: torch.Tensor | None = None
    chosen_mask: torch.Tensor | None = None
    rejected_mask: torch.Tensor | None = None
    beta: float = 0.1
    model: object = None


def margin_shift(z: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``-log sigma(z + shift) + log sigma(z)``, per pair: what moving the argument ``z = beta * Delta`` of DPO's
    sigmoid loss by ``shift`` adds to that loss. Added to TRL's sigmoid loss it gives exactly ``-log sigma(z + shift)``."""
    return F.softplus(-(z + shift)) - F.softplus(-z)


def _z(chosen, rejected, ref_chosen, ref_rejected, beta):
    return beta * ((chosen - ref_chosen) - (rejected - ref_rejected))


def dpop_penalty(chosen, rejected, ref_chosen, ref_rejected, beta: float, lam: float) -> torch.Tensor:
    """DPO-Positive (Pal et al. 2024, "Smaug: Fixing Failure Modes of Preference Optimisation with DPO-Positive",
    arXiv 2402.13228), as a term on DPO's sigmoid loss, per pair.

    The paper's loss is ``-log sigma(beta * (r_w - r_l - lam * max(0, log pi_ref(y_w|x) - log pi(y_w|x))))``: the
    penalty sits inside the log-sigmoid, scaled by beta. This returns that loss minus DPO's ``-log sigma(beta * (r_w -
    r_l))`` (:func:`margin_shift` with ``shift = -beta * lam * max(0, -r_w)``), so TRL's sigmoid loss plus its mean is
    the paper's loss exactly, gradients included. It is 0 while the policy keeps ``log pi(y_w|x)`` at or above the
    reference's; below, the gradient on ``log pi(y_w|x)`` grows from ``beta`` to ``beta * (1 + lam)`` times
    ``sigma(-z')``.
    """
    return margin_shift(
        _z(chosen, rejected, ref_chosen, ref_rejected, beta), -beta * lam * torch.relu(ref_chosen - chosen)
    )


def rdpo_length_penalty(
    chosen, rejected, ref_chosen, ref_rejected, chosen_lengths, rejected_lengths, beta: float, alpha: float
) -> torch.Tensor:
    """Length-regularized DPO (R-DPO; Park et al. 2024, "Disentangling Length from Quality in Direct Preference
    Optimization", arXiv 2403.19159), as a term on DPO's sigmoid loss, per pair.

    R-DPO's loss is ``-log sigma(beta * Delta + alpha * (|y_w| - |y_l|))`` (lengths in tokens): a longer chosen answer
    already earns margin from its length, so the policy is not pushed to learn "longer is better". This returns that
    loss minus DPO's (:func:`margin_shift` with ``shift = alpha * (|y_w| - |y_l|)``): negative where the chosen answer is
    the longer one, positive where it is the shorter one. ``alpha`` is on the reward scale (like ``beta * Delta``).
    """
    z = _z(chosen, rejected, ref_chosen, ref_rejected, beta)
    return margin_shift(z, alpha * (chosen_lengths - rejected_lengths).to(z.dtype))


class DPOPositive:
    """Constraint: DPO-Positive's penalty (see :func:`dpop_penalty`), batch mean. Default ``lam=50``, as in the Smaug
    paper's runs: large on purpose, so that a fall below the reference costs far more than the DPO margin gains."""

    name = "dpop"

    def __init__(self, lam: float = 50.0):
        self.lam = float(lam)

    def __call__(self, logps: PairLogps, batch: dict | None = None) -> torch.Tensor:
        return dpop_penalty(
            logps.chosen, logps.rejected, logps.ref_chosen, logps.ref_rejected, logps.beta, self.lam
        ).mean()

    def __repr__(self) -> str:
        return f"DPOPositive(lam={self.lam:g})"


class LengthPenalty:
    """Constraint: R-DPO's length term (see :func:`rdpo_length_penalty`), batch mean; lengths from the completion masks.
    The paper tunes ``alpha`` per dataset; the default 0.01 (0.1 of margin per 10 tokens of difference) is ours."""

    name = "length"

    def __init__(self, alpha: float = 0.01):
        self.alpha = float(alpha)

    def __call__(self, logps: PairLogps, batch: dict | None = None) -> torch.Tensor:
        return rdpo_length_penalty(
            logps.chosen,
            logps.rejected,
            logps.ref_chosen,
            logps.ref_rejected,
            logps.chosen_mask.sum(dim=1),
            logps.rejected_mask.sum(dim=1),
            logps.beta,
            self.alpha,
        ).mean()

    def __repr__(self) -> str:
        return f"LengthPenalty(alpha={self.alpha:g})"


CONSTRAINTS = {"dpop": DPOPositive, "length": LengthPenalty}
"""Shipped constraints by name: ``"dpop[:lam]"``, ``"length[:alpha]"`` (strings are read by :func:`as_constraint`)."""


def seed_style(fn: Callable) -> Callable:
    """Adapt a constraint written for the course's ``ConstitutionalDPOTrainer``,
    ``fn(model, pi_logps, ref_logps, yw_idxs, yl_idxs) -> scalar``, where ``pi_logps`` and ``ref_logps`` hold the summed
    log-probs of the chosen rows then the rejected rows, and ``yw_idxs`` / ``yl_idxs`` index them. That is the order of
    TRL's batch, so: ``pi_logps = cat([chosen, rejected])``, ``yw_idxs = 0..B-1``, ``yl_idxs = B..2B-1``."""

    def constraint(logps: PairLogps, batch: dict | None = None) -> torch.Tensor:
        n = logps.chosen.shape[0]
        idxs = torch.arange(2 * n, device=logps.chosen.device)
        pi, ref = torch.cat([logps.chosen, logps.rejected]), torch.cat([logps.ref_chosen, logps.ref_rejected])
        return fn(logps.model, pi, ref, idxs[:n], idxs[n:])

    constraint.name = getattr(fn, "name", getattr(fn, "__name__", "constraint"))
    return constraint


def as_constraint(spec) -> Callable:
    """A constraint from a callable (kept as is) or a string ``"name[:value]"`` of :data:`CONSTRAINTS`."""
    if callable(spec):
        return spec
    name, _, value = str(spec).partition(":")
    if name not in CONSTRAINTS:
        raise ValueError(
            f"Unknown constraint {spec!r}: expected one of {', '.join(CONSTRAINTS)} (as 'name' or "
            f"'name:value', e.g. 'dpop:50', 'length:0.01') or a callable."
        )
    try:
        return CONSTRAINTS[name](float(value)) if value else CONSTRAINTS[name]()
    except ValueError:
        raise ValueError(
            f"Constraint {spec!r}: the value after ':' must be a number, got {value!r}."
        ) from None


def constraint_names(constraints) -> list[str]:
    """The metric name of each constraint (``constraint/<name>``): its ``name`` attribute, else its function or class
    name; repeated names get ``_2``, ``_3``..."""
    names: list[str] = []
    for fn in constraints:
        base = getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


__all__ = [
    "CONSTRAINTS",
    "IGNORE_INDEX",
    "LOSS_TYPES",
    "DPOPositive",
    "LengthPenalty",
    "PairLogps",
    "as_constraint",
    "constraint_names",
    "dpo_loss",
    "dpop_penalty",
    "log1mexp",
    "margin_shift",
    "orpo_log_odds_ratio",
    "orpo_loss",
    "preference_loss",
    "preference_metrics",
    "preference_prob_from_ratings",
    "rdpo_length_penalty",
    "seed_style",
    "sequence_logps",
]

"""smol_align.reference against numbers worked by hand, and its properties (hypothesis).

The hand-worked example shared by most loss tests is two preference pairs, ``beta = 0.5``:

    pair A: log pi(y_w) = -1, log pi(y_l) = -3, log pi_ref = -2 for both -> r_w = +1, r_l = -1,
            Delta = 2, z = beta * Delta = +1; completion lengths |y_w| = 2, |y_l| = 4
    pair B: log pi(y_w) = -4, log pi(y_l) = -2, log pi_ref = -3 for both -> r_w = -1, r_l = +1,
            Delta = -2, z = -1; same lengths

with ``log sigma(1) = -0.3132617`` and ``log sigma(-1) = -1.3132617``, ``sigma(0.5) = 0.6224593``,
``log sigma(0.5) = -0.4740770``, ``log sigma(-0.5) = -0.9740770``. Every test states its arithmetic.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from smol_align import reference
from smol_align.reference import (
    LOSS_TYPES,
    dpo_loss,
    log1mexp,
    orpo_log_odds_ratio,
    orpo_loss,
    preference_loss,
    preference_metrics,
    preference_prob_from_ratings,
    sequence_logps,
)

F64 = torch.float64
BETA = 0.5
LOG_SIG_1 = -0.31326168751822286  # log sigma(1)
LOG_SIG_M1 = -1.3132616875182228  # log sigma(-1)


def t(*values, dtype=F64):
    return torch.tensor(values, dtype=dtype)


def example(**kwargs):
    """The two pairs of the module docstring through ``preference_loss``."""
    kwargs.setdefault("beta", BETA)
    return preference_loss(t(-1.0, -4.0), t(-3.0, -2.0), t(-2.0, -3.0), t(-2.0, -3.0), **kwargs)


def close(actual, expected, atol=1e-7, rtol=1e-7):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=rtol)


# ---------------------------------------------------------------------------------------------
# sequence_logps
# ---------------------------------------------------------------------------------------------


def _logits_example():
    # vocab 4; position 0 -> [0, ln 3, 0, 0] (p(1) = 3/6); position 1 -> zeros (p(.) = 1/4);
    # position 2 -> anything (it predicts past the end, never counted)
    return t(0.0, math.log(3), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 1.0, 2.0, 3.0).view(1, 3, 4)


def test_sequence_logps_hand_worked():
    """labels [-100, 1, 3]: token 1 is scored by position 0 (ln 1/2), token 3 by position 1
    (ln 1/4): sum ln(1/8) = -2.0794415, mean -1.0397208."""
    logits, labels = _logits_example(), torch.tensor([[-100, 1, 3]])
    close(sequence_logps(logits, labels), [math.log(1 / 8)])
    close(sequence_logps(logits, labels, average=True), [math.log(1 / 8) / 2])


def test_sequence_logps_mask_and_ignore_index_agree():
    """mask [1, 1, 0] drops the last token: ln(1/2) = -0.6931472; the same as label -100 there."""
    logits = _logits_example()
    masked = sequence_logps(logits, torch.tensor([[0, 1, 3]]), mask=torch.tensor([[0, 1, 0]]))
    ignored = sequence_logps(logits, torch.tensor([[-100, 1, -100]]))
    close(masked, [math.log(0.5)])
    close(ignored, [math.log(0.5)])


def test_sequence_logps_first_label_never_counts():
    """Position 0 has no predecessor: a label there changes nothing."""
    logits = _logits_example()
    close(sequence_logps(logits, torch.tensor([[2, 1, 3]])), [math.log(1 / 8)])


def test_sequence_logps_empty_completion_is_zero_sum_and_mean():
    logits = _logits_example()
    labels = torch.full((1, 3), -100)
    close(sequence_logps(logits, labels), [0.0])
    close(sequence_logps(logits, labels, average=True), [0.0])


def test_sequence_logps_matches_a_loop():
    """Against the definition, token by token, on random logits with padding."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=gen, dtype=F64)
    labels = torch.randint(0, 11, (3, 7), generator=gen)
    labels[0, :3] = -100
    labels[2, 5:] = -100
    expected = torch.zeros(3, dtype=F64)
    for b in range(3):
        for pos in range(1, 7):
            if labels[b, pos] != -100:
                expected[b] += torch.log_softmax(logits[b, pos - 1], -1)[labels[b, pos]]
    close(sequence_logps(logits, labels), expected, atol=1e-12, rtol=1e-12)


def test_sequence_logps_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="labels"):
        sequence_logps(torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        sequence_logps(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="mask"):
        sequence_logps(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), mask=torch.ones(2, 4))


# ---------------------------------------------------------------------------------------------
# dpo_loss: the paper's listing
# ---------------------------------------------------------------------------------------------


def test_dpo_loss_hand_worked():
    """pi_logps = [-1, -3, -4, -2], ref = [-2, -2, -3, -3], pairs (0, 1) and (2, 3), beta 0.5:
    z = +1 and -1, losses log(1 + e^-1) = 0.3132617 and log(1 + e) = 1.3132617;
    rewards 0.5 * (pi - ref) = [0.5, -0.5, -0.5, 0.5]."""
    losses, rewards = dpo_loss(
        t(-1.0, -3.0, -4.0, -2.0), t(-2.0, -2.0, -3.0, -3.0), torch.tensor([0, 2]), torch.tensor([1, 3]), BETA
    )
    close(losses, [-LOG_SIG_1, -LOG_SIG_M1])
    close(rewards, [0.5, -0.5, -0.5, 0.5])


@settings(max_examples=50, deadline=None)
@given(
    logps=st.lists(st.floats(-200, 0), min_size=8, max_size=8),
    beta=st.floats(0.01, 5),
)
def test_dpo_loss_is_preference_loss_sigmoid(logps, beta):
    """The paper's indexing form and the (chosen, rejected) form compute the same thing."""
    pi, ref = t(*logps[:4]), t(*logps[4:])
    yw, yl = torch.tensor([0, 3]), torch.tensor([2, 1])
    losses, rewards = dpo_loss(pi, ref, yw, yl, beta)
    expected, chosen_rewards, rejected_rewards = preference_loss(pi[yw], pi[yl], ref[yw], ref[yl], beta=beta)
    close(losses, expected, atol=1e-12, rtol=1e-12)
    close(rewards[yw], chosen_rewards)
    close(rewards[yl], rejected_rewards)


# ---------------------------------------------------------------------------------------------
# preference_loss: one hand-worked test per loss type
# ---------------------------------------------------------------------------------------------


def test_rewards_are_beta_times_log_ratios():
    """r_w = [1, -1], r_l = [-1, 1]; beta 0.5: chosen rewards [0.5, -0.5], rejected [-0.5, 0.5]."""
    _, chosen, rejected = example()
    close(chosen, [0.5, -0.5])
    close(rejected, [-0.5, 0.5])
    assert not chosen.requires_grad


def test_sigmoid():
    """-log sigma(z): A log(1 + e^-1) = 0.3132617, B log(1 + e) = 1.3132617."""
    close(example(loss_type="sigmoid")[0], [-LOG_SIG_1, -LOG_SIG_M1])


def test_soft_per_pair_probability():
    """p = 0.75: -0.75 log sigma(z) - 0.25 log sigma(-z).
    A: 0.75 * 0.3132617 + 0.25 * 1.3132617 = 0.5632617 (= 0.3132617 + (1 - p) z = + 0.25);
    B: 0.75 * 1.3132617 + 0.25 * 0.3132617 = 1.0632617 (= 1.3132617 - 0.25)."""
    close(example(loss_type="soft", preference_probs=[0.75, 0.75])[0], [0.5632617, 1.0632617])


def test_soft_with_certain_labels_is_sigmoid_and_constant_eps_is_cdpo():
    """p = 1 is DPO; label_smoothing = eps without probabilities is cDPO, p = 1 - eps for every pair."""
    close(example(loss_type="soft", preference_probs=[1.0, 1.0])[0], example(loss_type="sigmoid")[0])
    close(example(loss_type="soft", label_smoothing=0.25)[0], [0.5632617, 1.0632617])
    close(example(loss_type="soft", preference_probs=[0.0, 0.0])[0], [-LOG_SIG_M1, -LOG_SIG_1])


def test_hinge():
    """max(0, 1 - z): A max(0, 0) = 0, B max(0, 2) = 2."""
    close(example(loss_type="hinge")[0], [0.0, 2.0])


def test_ipo():
    """Per-token log-ratios: (r_w/|y_w| - r_l/|y_l| - 1/(2 beta))^2 with |y_w| = 2, |y_l| = 4, 1/(2 beta) = 1:
    A (1/2 + 1/4 - 1)^2 = 0.0625, B (-1/2 - 1/4 - 1)^2 = 3.0625."""
    losses = example(loss_type="ipo", chosen_lengths=[2, 2], rejected_lengths=[4, 4])[0]
    close(losses, [0.0625, 3.0625])


def test_robust():
    """eps = 0.1: ((1-eps) L(z) - eps L(-z)) / (1 - 2 eps), L = -log sigma; as L(-z) = L(z) + z
    this is L(z) - eps z / (1 - 2 eps) = L(z) -+ 0.125: A 0.1882617, B 1.4382617."""
    close(example(loss_type="robust", label_smoothing=0.1)[0], [-LOG_SIG_1 - 0.125, -LOG_SIG_M1 + 0.125])


def test_bco_pair():
    """-log sigma(beta r_w) - log sigma(-beta r_l): A 2 * 0.4740770 = 0.9481540,
    B 2 * 0.9740770 = 1.9481540."""
    close(example(loss_type="bco_pair")[0], [0.9481540, 1.9481540])


def test_exo_pair():
    """eps = 0.1, A: sigma(1) (log sigma(1) - ln 0.9) + sigma(-1) (log sigma(-1) - ln 0.1)
    = 0.7310586 * (-0.3132617 + 0.1053605) + 0.2689414 * (-1.3132617 + 2.3025851)
    = -0.1519881 + 0.2660702 = 0.1140821;
    B: 0.2689414 * (-1.3132617 + 0.1053605) + 0.7310586 * (-0.3132617 + 2.3025851) = 1.1294573."""
    close(example(loss_type="exo_pair", label_smoothing=0.1)[0], [0.1140821, 1.1294573])


def test_nca_pair():
    """-log sigma(beta r_w) - 1/2 log sigma(-beta r_w) - 1/2 log sigma(-beta r_l), beta r = +-0.5:
    A 0.4740770 + 0.4870385 + 0.2370385 = 1.1981540; B 0.9740770 + 0.2370385 + 0.4870385 = 1.6981540."""
    close(example(loss_type="nca_pair")[0], [1.1981540, 1.6981540])


def test_apo_zero():
    """1 - sigma(beta r_w) + sigma(beta r_l): A 1 - 0.6224593 + 0.3775407 = 0.7550814;
    B 1 - 0.3775407 + 0.6224593 = 1.2449186."""
    close(example(loss_type="apo_zero")[0], [0.7550813, 1.2449187])


def test_apo_down():
    """sigma(beta r_w) + 1 - sigma(z): A 0.6224593 + 1 - 0.7310586 = 0.8914007;
    B 0.3775407 + 1 - 0.2689414 = 1.1085993."""
    close(example(loss_type="apo_down")[0], [0.8914008, 1.1085992])


def test_sppo_hard():
    """(r_w - 1/(2 beta))^2 + (r_l + 1/(2 beta))^2, 1/(2 beta) = 1: A 0 + 0 = 0, B 4 + 4 = 8."""
    close(example(loss_type="sppo_hard")[0], [0.0, 8.0])


def test_aot():
    """Paired: policy log pi(y_w) - log pi(y_l) = [2, -2] sorted [-2, 2]; reference [0, 0];
    d = [-2, 2], beta d = [-1, 1]: losses [1.3132617, 0.3132617] (sorted order, eps = 0).
    Unpaired: sorted r_w = [-1, 1] minus sorted r_l = [-1, 1] = 0: both log 2 = 0.6931472."""
    close(example(loss_type="aot")[0], [-LOG_SIG_M1, -LOG_SIG_1])
    close(example(loss_type="aot_unpaired")[0], [math.log(2), math.log(2)])


def test_aot_label_smoothing():
    """eps = 0.1 on beta d = -1: 0.9 * 1.3132617 + 0.1 * 0.3132617 = 1.2132617."""
    close(example(loss_type="aot", label_smoothing=0.1)[0][0], 1.2132617)


def test_discopop():
    """tau = 0.05. A, z = 1: sigma(20) = 1 - 2.1e-9, so (1 - sigma(20)) * 0.3132617 +
    sigma(20) * e^-1 = 0.3678794. B, z = -1: sigma(-20) = 2.1e-9, so ~ 1.3132617 + 2.1e-9 * e."""
    losses = example(loss_type="discopop")[0]
    s20 = 1 / (1 + math.exp(-20))
    close(losses, [(1 - s20) * -LOG_SIG_1 + s20 * math.exp(-1), s20 * -LOG_SIG_M1 + (1 - s20) * math.exp(1)])
    close(losses, [0.3678794, 1.3132617], atol=1e-6, rtol=0)


def test_sigmoid_norm():
    """-log sigma(beta (r_w/|y_w| - r_l/|y_l|)): A beta * 0.75 = 0.375, log(1 + e^-0.375) = 0.5231233;
    B -0.375: 0.8981233."""
    losses = example(loss_type="sigmoid_norm", chosen_lengths=[2, 2], rejected_lengths=[4, 4])[0]
    close(losses, [0.5231233, 0.8981233])


def test_every_loss_type_has_a_hand_worked_test():
    tested = {name[len("test_") :] for name in globals() if name.startswith("test_")}
    tested |= {"aot_unpaired", "soft"}  # in test_aot and test_soft_per_pair_probability
    assert set(LOSS_TYPES) <= tested, set(LOSS_TYPES) - tested


# ---------------------------------------------------------------------------------------------
# Errors a learner can make
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss_type": "dpo"}, "Unknown loss_type 'dpo'"),
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"label_smoothing": 0.1}, "loss_type='soft'"),  # sigmoid ignores it in TRL 1.16: we refuse
        ({"loss_type": "ipo"}, "chosen_lengths"),
        ({"loss_type": "ipo", "chosen_lengths": [2], "rejected_lengths": [4, 4]}, "chosen_lengths"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, r"\[0, 0.5\)"),
        ({"loss_type": "exo_pair"}, r"\(0, 1\)"),
        ({"loss_type": "soft", "preference_probs": [0.5, 1.5]}, r"\[0, 1\]"),
        ({"loss_type": "soft", "preference_probs": [0.5, 0.5], "label_smoothing": 0.1}, "not both"),
        ({"loss_type": "hinge", "preference_probs": [0.5, 0.5]}, "only used by loss_type='soft'"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        example(**kwargs)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="ref_rejected_logps"):
        preference_loss(t(-1.0, -2.0), t(-1.0, -2.0), t(-1.0, -2.0), t(-1.0))


def test_reference_module_imports_torch_only():
    """reference.py must stay a clean room: no TRL (or transformers) import, even indirect."""
    tree = ast.parse(Path(reference.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "collections", "dataclasses", "logging", "math", "torch"}, imported


# ---------------------------------------------------------------------------------------------
# ORPO
# ---------------------------------------------------------------------------------------------


def test_orpo_hand_worked():
    """l_w = ln(1/2), l_l = ln(1/4): odds 1 and (1/4)/(3/4) = 1/3, log OR = ln 3 = 1.0986123,
    L_OR = -log sigma(ln 3) = -ln(3/4) = 0.2876821; nll 2, beta 0.1: loss 2 + 0.02876821."""
    chosen, rejected = t(math.log(0.5)), t(math.log(0.25))
    close(orpo_log_odds_ratio(chosen, rejected), [math.log(3)])
    loss, or_losses = orpo_loss(t(2.0)[0], chosen, rejected, beta=0.1)
    close(or_losses, [math.log(4 / 3)])
    close(loss, 2.0 + 0.1 * math.log(4 / 3))


def test_orpo_averages_per_pair_nll():
    """chosen_nll per pair [1, 3] is averaged to 2: same loss as the scalar 2."""
    chosen, rejected = t(math.log(0.5), math.log(0.5)), t(math.log(0.25), math.log(0.25))
    close(orpo_loss(t(1.0, 3.0), chosen, rejected, 0.1)[0], orpo_loss(t(2.0), chosen, rejected, 0.1)[0])


def test_log1mexp_is_accurate_in_float32_where_the_naive_form_fails():
    """x = -1e-8: 1 - e^x rounds to 0 in float32 (naive log = -inf), but log(1 - e^x) = ln(1e-8)
    = -18.420681; x = -20: e^x = 2.06e-9 is lost next to 1, log1p keeps it: -2.0611536e-9."""
    x = torch.tensor([-1e-8, -20.0], dtype=torch.float32)
    assert torch.isinf(torch.log(1 - torch.exp(x[:1]))).all()
    close(
        log1mexp(x),
        torch.tensor([math.log(1e-8), math.log1p(-math.exp(-20.0))], dtype=torch.float32),
        rtol=1e-6,
    )


def test_orpo_rejects_positive_log_probs():
    with pytest.raises(ValueError, match="<= 0"):
        orpo_log_odds_ratio(t(0.1), t(-1.0))


@settings(max_examples=60, deadline=None)
@given(chosen=st.floats(-1e4, -1e-6), rejected=st.floats(-1e4, -1e-6))
def test_orpo_finite_and_antisymmetric(chosen, rejected):
    """Extreme averages give finite loss and gradients; swapping the pair negates log OR."""
    c = torch.tensor([chosen], dtype=torch.float32, requires_grad=True)
    r = torch.tensor([rejected], dtype=torch.float32, requires_grad=True)
    loss, _ = orpo_loss(torch.tensor(1.0), c, r, beta=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(c.grad).all() and torch.isfinite(r.grad).all()
    c64, r64 = t(chosen), t(rejected)
    close(orpo_log_odds_ratio(c64, r64), -orpo_log_odds_ratio(r64, c64), atol=1e-9, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Metrics and ratings
# ---------------------------------------------------------------------------------------------


def test_preference_metrics_hand_worked():
    """chosen [0.5, -0.5], rejected [-0.5, 0.0]: means 0 and -0.25; margins [1, -0.5] -> 0.25;
    accuracy 1/2; logps [-1, -4] -> -2.5, [-3, -2] -> -2.5."""
    metrics = preference_metrics(t(0.5, -0.5), t(-0.5, 0.0), t(-1.0, -4.0), t(-3.0, -2.0))
    assert metrics == pytest.approx(
        {
            "rewards/chosen": 0.0,
            "rewards/rejected": -0.25,
            "rewards/margins": 0.25,
            "rewards/accuracies": 0.5,
            "logps/chosen": -2.5,
            "logps/rejected": -2.5,
        }
    )


def test_preference_metrics_counts_ties_as_wrong():
    assert preference_metrics(t(0.0, 1.0), t(0.0, 0.0))["rewards/accuracies"] == 0.5


def test_preference_prob_from_ratings():
    """sigma((8 - 6) / 1) = sigma(2) = 0.8807971; equal ratings 0.5; T = 2 halves the gap:
    sigma(1) = 0.7310586; a reversed gap gives 1 - p."""
    assert preference_prob_from_ratings(8, 6) == pytest.approx(0.8807971)
    assert preference_prob_from_ratings(5, 5) == 0.5
    assert preference_prob_from_ratings(8, 6, temperature=2.0) == pytest.approx(0.7310586)
    assert preference_prob_from_ratings(6, 8) == pytest.approx(1 - 0.8807971)
    close(preference_prob_from_ratings([8.0, 5.0], [6.0, 5.0]).double(), [0.8807971, 0.5], atol=1e-6, rtol=0)
    assert preference_prob_from_ratings(1000, 0) == 1.0 and preference_prob_from_ratings(0, 1000) >= 0.0


def test_preference_prob_from_ratings_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        preference_prob_from_ratings(8, 6, temperature=0)
    with pytest.raises(ValueError, match="finite"):
        preference_prob_from_ratings(float("nan"), 6)
    with pytest.raises(ValueError, match="finite"):
        preference_prob_from_ratings([float("inf")], [1.0])


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis)
# ---------------------------------------------------------------------------------------------

logp = st.floats(-1000, 0)
betas = st.floats(1e-3, 10)


def _loss(pc, pr, rc, rr, beta, loss_type="sigmoid", **kwargs):
    return preference_loss(t(pc), t(pr), t(rc), t(rr), beta=beta, loss_type=loss_type, **kwargs)


@settings(max_examples=100, deadline=None)
@given(pc=logp, pr=logp, rc=logp, rr=logp, beta=betas)
def test_swapping_chosen_and_rejected_mirrors_the_sigmoid_loss(pc, pr, rc, rr, beta):
    """Swapping the answers maps z to -z: L(-z) = softplus(z), so L(z) - L(-z) = -z, and the rewards swap."""
    z = beta * ((pc - rc) - (pr - rr))
    loss, chosen, rejected = _loss(pc, pr, rc, rr, beta)
    swapped, swapped_chosen, swapped_rejected = _loss(pr, pc, rr, rc, beta)
    close(swapped, torch.nn.functional.softplus(t(z)), atol=1e-9, rtol=1e-9)
    close(loss - swapped, [-z], atol=1e-9, rtol=1e-9)
    close(swapped_chosen, rejected)
    close(swapped_rejected, chosen)


@settings(max_examples=100, deadline=None)
@given(pc=logp, pr=logp, rc=logp, rr=logp, beta=st.floats(1e-12, 1e-6))
def test_sigmoid_loss_tends_to_log2_as_beta_vanishes(pc, pr, rc, rr, beta):
    """L(z) = -log sigma(z) has slope -sigma(-z), in (-1, 0), so |L(z) - ln 2| <= |z|, and
    z = beta * Delta -> 0 with beta (|Delta| <= 2000 here, so |z| <= 2e-3)."""
    z = beta * ((pc - rc) - (pr - rr))
    loss = _loss(pc, pr, rc, rr, beta)[0].item()
    assert abs(loss - math.log(2)) <= abs(z) + 1e-15
    assert abs(loss - math.log(2)) < 1e-2


@pytest.mark.parametrize(
    "loss_type, strict", [("sigmoid", True), ("robust", True), ("hinge", False), ("soft", True)]
)
@settings(max_examples=60, deadline=None)
@given(rc=logp, rr=logp, base=logp, d1=st.floats(-40, 40), d2=st.floats(-40, 40), beta=st.floats(0.01, 1))
def test_loss_falls_as_the_margin_grows(loss_type, strict, rc, rr, base, d1, d2, beta):
    """Moving the chosen log-prob up by the extra margin (Delta1 < Delta2) never raises the loss,
    and lowers it strictly for the smooth losses (soft with p = 0.9 > 1/2 included while z < logit(0.9))."""
    if d1 == d2:
        return
    d1, d2 = min(d1, d2), max(d1, d2)
    kwargs = {"robust": {"label_smoothing": 0.2}, "soft": {"preference_probs": [0.9]}}.get(loss_type, {})
    if loss_type == "soft" and beta * d2 >= math.log(9):
        return  # the soft loss has its minimum at sigma(z) = p: beyond it, more margin costs
    low = _loss(base + rc + d1, base + rr, base + rc, base + rr, beta, loss_type, **kwargs)[0].item()
    high = _loss(base + rc + d2, base + rr, base + rc, base + rr, beta, loss_type, **kwargs)[0].item()
    assert high <= low + 1e-12
    if strict and beta * (d2 - d1) > 1e-6:
        assert high < low


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-2e4, -5e3) | st.just(0.0) | st.floats(-1, 0), min_size=8, max_size=8))
def test_extreme_log_probs_give_finite_losses_and_gradients(loss_type, values):
    """Log-probabilities around -1e4 (a long, unlikely completion) in float32: every loss and
    every gradient stays finite."""
    tensors = [
        torch.tensor(values[i : i + 2], dtype=torch.float32, requires_grad=True) for i in range(0, 8, 2)
    ]
    kwargs = {
        "robust": {"label_smoothing": 0.1},
        "exo_pair": {"label_smoothing": 1e-3},
        "ipo": {"chosen_lengths": [3, 50], "rejected_lengths": [7, 1]},
        "sigmoid_norm": {"chosen_lengths": [3, 50], "rejected_lengths": [7, 1]},
        "soft": {"preference_probs": [0.3, 1.0]},
    }.get(loss_type, {})
    losses, chosen, rejected = preference_loss(*tensors, beta=0.1, loss_type=loss_type, **kwargs)
    losses.mean().backward()
    assert torch.isfinite(losses).all(), losses
    assert torch.isfinite(chosen).all() and torch.isfinite(rejected).all()
    for tensor in tensors:
        assert torch.isfinite(tensor.grad).all(), (loss_type, tensor.grad)


@pytest.mark.parametrize("loss_type", ["sigmoid", "robust", "bco_pair", "apo_zero", "soft", "hinge"])
@settings(max_examples=60, deadline=None)
@given(pc=logp, pr=logp, rc=logp, rr=logp, beta=st.floats(0.01, 1))
def test_gradient_raises_chosen_and_lowers_rejected(loss_type, pc, pr, rc, rr, beta):
    """A gradient-descent step (minus the gradient) raises log pi(y_w) and lowers log pi(y_l):
    dL/d log pi(y_w) < 0 < dL/d log pi(y_l), wherever the loss is not saturated in float64."""
    z = beta * ((pc - rc) - (pr - rr))
    if loss_type == "hinge" and z >= 1:
        return  # hinge is flat (zero gradient) once the margin is met
    if loss_type in ("bco_pair", "apo_zero") and max(abs(beta * (pc - rc)), abs(beta * (pr - rr))) > 30:
        return  # sigmoids saturate: the gradient underflows to 0 (finite, right sign or zero)
    if abs(z) > 30:
        return
    kwargs = {"robust": {"label_smoothing": 0.2}, "soft": {"preference_probs": [1.0]}}.get(loss_type, {})
    chosen = t(pc).requires_grad_()
    rejected = t(pr).requires_grad_()
    losses, _, _ = preference_loss(
        chosen.view(1), rejected.view(1), t(rc), t(rr), beta=beta, loss_type=loss_type, **kwargs
    )
    losses.sum().backward()
    assert chosen.grad < 0 < rejected.grad


@settings(max_examples=100, deadline=None)
@given(delta=st.floats(-50, 50), p=st.floats(0, 1), beta=st.floats(0.01, 1))
def test_soft_loss_gradient_moves_the_model_probability_towards_p(delta, p, beta):
    """dL/dDelta = beta (sigma(z) - p): descent raises sigma(z) when it is below p, lowers it above."""
    d = t(delta).requires_grad_()
    z = beta * delta
    losses, _, _ = preference_loss(
        d.view(1), t(0.0), t(0.0), t(0.0), beta=beta, loss_type="soft", preference_probs=[p]
    )
    losses.sum().backward()
    close(d.grad, beta * (torch.sigmoid(t(z)) - p), atol=1e-12, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Constraint terms: DPO-Positive and R-DPO's length term, as additions to DPO's sigmoid loss
# ---------------------------------------------------------------------------------------------


def _pairs_with_grad():
    """The module's two pairs, the policy log-probs as leaves; |y_w| = 2, |y_l| = 4 tokens."""
    chosen, rejected = t(-1.0, -4.0).requires_grad_(), t(-3.0, -2.0).requires_grad_()
    mask = lambda n: torch.ones(2, n, dtype=F64)  # noqa: E731
    logps = reference.PairLogps(
        chosen, rejected, t(-2.0, -3.0), t(-2.0, -3.0), chosen_mask=mask(2), rejected_mask=mask(4), beta=BETA
    )
    return logps, chosen, rejected


def test_dpop_term_and_its_gradient_by_hand():
    """DPO-Positive, lam = 1, beta = 0.5. Pair A: log pi(y_w) = -1 >= log pi_ref(y_w) = -2, so max(0, -r_w) = 0: no
    term, no gradient. Pair B: r_w = -1, max(0, 1) = 1, z' = beta * (Delta - lam * 1) = 0.5 * (-2 - 1) = -1.5:
        term_B = softplus(1.5) - softplus(1) = 1.7014132 - 1.3132617 = 0.3881515;  mean = 0.1940758
        d mean / d log pi(y_w)_B = (-sigma(1.5) * beta * (1 + lam) + sigma(1) * beta) / 2
                                 = (-0.8175745 * 1.0 + 0.7310586 * 0.5) / 2 = -0.2260226
        d mean / d log pi(y_l)_B = (sigma(1.5) - sigma(1)) * beta / 2 = (0.8175745 - 0.7310586) * 0.25 = 0.0216290
    With DPO's own gradient (-sigma(1) * beta / 2 = -0.1827647 on y_w) the total is the paper's:
    -sigma(1.5) * beta * (1 + lam) / 2 = -0.4087873."""
    logps, chosen, rejected = _pairs_with_grad()
    term = reference.DPOPositive(lam=1.0)(logps)
    close(term, 0.1940758, atol=1e-7)
    term.backward()
    close(chosen.grad, [0.0, -0.2260226], atol=1e-7)
    close(rejected.grad, [0.0, 0.0216290], atol=1e-7)
    chosen.grad = None
    dpo = preference_loss(chosen, rejected, logps.ref_chosen, logps.ref_rejected, beta=BETA)[0].mean()
    (dpo + reference.DPOPositive(lam=1.0)(logps)).backward()
    close(chosen.grad, [-torch.sigmoid(t(-1.0)).item() * BETA / 2, -0.4087873], atol=1e-7)


def test_dpop_plus_sigmoid_is_the_papers_loss():
    """TRL's sigmoid loss + the term = -log sigma(beta * (Delta - lam * max(0, log pi_ref(y_w) - log pi(y_w)))), DPOP's loss
    in the Smaug paper; and the term vanishes while log pi(y_w) stays at or above the reference."""
    chosen, rejected, ref = t(-1.0, -4.0, -2.5), t(-3.0, -2.0, -1.0), t(-2.0, -3.0, -2.5)
    lam = 5.0
    dpo = preference_loss(chosen, rejected, ref, ref, beta=BETA)[0]
    z = BETA * ((chosen - ref) - (rejected - ref))
    paper = -torch.nn.functional.logsigmoid(
        BETA * ((chosen - ref) - (rejected - ref) - lam * torch.clamp(ref - chosen, min=0))
    )
    close(dpo + reference.dpop_penalty(chosen, rejected, ref, ref, BETA, lam), paper)
    close(
        reference.dpop_penalty(chosen, rejected, ref, ref, BETA, lam)[[0, 2]], [0.0, 0.0]
    )  # r_w = +1 and r_w = 0
    assert z[1] < 0  # pair B is the one penalized


def test_length_term_and_its_gradient_by_hand():
    """R-DPO, alpha = 0.25, beta = 0.5: |y_w| - |y_l| = 2 - 4 = -2, shift = alpha * -2 = -0.5 for both pairs.
    Pair A: z' = 1 - 0.5 = 0.5, term = softplus(-0.5) - softplus(-1) = 0.4740770 - 0.3132617 = 0.1608153.
    Pair B: z' = -1 - 0.5 = -1.5, term = softplus(1.5) - softplus(1) = 0.3881515. Mean 0.2744834.
        d mean / d log pi(y_w) = beta * (sigma(-z) - sigma(-z')) / 2:
            A: 0.25 * (0.2689414 - 0.3775407) = -0.0271498;  B: 0.25 * (0.7310586 - 0.8175745) = -0.0216290
        and the opposite on log pi(y_l). A longer chosen answer (shift > 0) would lower the loss instead."""
    logps, chosen, rejected = _pairs_with_grad()
    term = reference.LengthPenalty(alpha=0.25)(logps)
    close(term, 0.2744834, atol=1e-7)
    term.backward()
    close(chosen.grad, [-0.0271498, -0.0216290], atol=1e-7)
    close(rejected.grad, [0.0271498, 0.0216290], atol=1e-7)
    swapped = reference.rdpo_length_penalty(t(-1.0), t(-3.0), t(-2.0), t(-2.0), t(4.0), t(2.0), BETA, 0.25)
    close(
        swapped, [math.log1p(math.exp(-1.5)) - math.log1p(math.exp(-1.0))]
    )  # softplus(-1.5) - softplus(-1) < 0


def test_seed_style_constraint_sees_the_course_layout():
    """The course's constraint(model, pi_logps, ref_logps, yw_idxs, yl_idxs): chosen rows first, then rejected.
    A DPOP-like hinge written that way, mean(max(0, ref[yw] - pi[yw])) = mean(0, 1) = 0.5 on the two pairs."""
    seen = {}

    def keep_chosen_up(model, pi_logps, ref_logps, yw_idxs, yl_idxs):
        seen.update(model=model, yw=yw_idxs.tolist(), yl=yl_idxs.tolist(), pi=pi_logps.tolist())
        return torch.relu(ref_logps[yw_idxs] - pi_logps[yw_idxs]).mean()

    logps, _, _ = _pairs_with_grad()
    constraint = reference.seed_style(keep_chosen_up)
    close(constraint(logps, {}), 0.5)
    assert seen == {"model": None, "yw": [0, 1], "yl": [2, 3], "pi": [-1.0, -4.0, -3.0, -2.0]}
    assert reference.constraint_names([constraint]) == ["keep_chosen_up"]


def test_constraints_by_name_and_their_metric_names():
    dpop, length = reference.as_constraint("dpop"), reference.as_constraint("length:0.05")
    assert (dpop.lam, length.alpha) == (50.0, 0.05)
    assert reference.as_constraint("dpop:5").lam == 5.0
    assert reference.constraint_names([dpop, length, reference.DPOPositive(5), lambda x, b: 0]) == [
        "dpop",
        "length",
        "dpop_2",
        "<lambda>",
    ]
    with pytest.raises(ValueError, match="Unknown constraint 'kl'.*dpop, length"):
        reference.as_constraint("kl")
    with pytest.raises(ValueError, match="must be a number, got 'big'"):
        reference.as_constraint("dpop:big")

"""The installed TRL against smol_align.reference, number for number (fp32, tolerance 1e-5).

For every loss type both implement, one ``compute_loss`` + ``backward`` of TRL's trainer on a tiny
Llama whose policy differs from its reference is compared with the reference computed from plain
``model(...).logits``: the loss, every metric TRL logs, the per-sequence log-probabilities and
every parameter gradient. A TRL upgrade that changes the math fails here.

The harness is ``tests/trl_parity.py`` (run as a script, it prints the same comparison as a table);
see its ``dpo_parity`` docstring for why gradients are compared at TRL's sequence log-probs.
Every parity check runs twice: with TRL's own fused LM head (every position scored on CPU) and
with smol_align's compact one (``smol_align._compat.compact_lm_head_while``, completion
positions only): the numbers must hold either way.
Also here: SoftDPOTrainer (smol_align's soft-label loss on top of DPOTrainer).
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings

import pytest
import torch
import trl_parity as harness

TOL = 1e-5


def assert_parity(result, tol: float = TOL):
    """TRL and the reference agree: loss, each logged metric, sequence log-probs, gradients."""
    torch.testing.assert_close(
        torch.tensor(result.trl_loss, dtype=torch.float64),
        torch.tensor(result.ref_loss, dtype=torch.float64),
        atol=tol,
        rtol=tol,
        msg=lambda m: f"{result.name} loss: {m}",
    )
    assert not result.unchecked_metrics, (
        f"TRL logs metrics the reference does not check: {result.unchecked_metrics}"
    )
    torch.testing.assert_close(
        {k: torch.tensor(v, dtype=torch.float64) for k, v in result.trl_metrics.items()},
        {k: torch.tensor(v, dtype=torch.float64) for k, v in result.ref_metrics.items()},
        atol=tol,
        rtol=tol,
        msg=lambda m: f"{result.name} metrics: {m}",
    )
    if result.logp_scaled_diff is not None:
        assert result.logp_scaled_diff <= tol, (
            f"{result.name}: sequence log-probs differ by {result.logp_max_abs_diff}"
        )
    assert result.grad_scaled_diff <= tol, (
        f"{result.name}: gradients differ by up to {result.grad_max_abs_diff} (at {result.grad_worst})"
    )


@pytest.fixture(scope="module")
def tiny_pair(tiny_tokenizer):
    """``(policy, reference, tokenizer)``: the warmed-up tiny Llama and a perturbed copy."""
    return harness.tiny_setup(tiny_tokenizer)


@contextlib.contextmanager
def lm_head(compact: bool):
    """TRL's fused LM head scoring every position on CPU (its own rule) or only the completion
    positions (smol_align's switch); yields the set of answers the head got while inside, so a
    test can check which way TRL actually went."""
    import trl.trainer.utils as trl_utils

    from smol_align._compat import compact_lm_head_while

    with compact_lm_head_while("cpu" if compact else "cuda") as on:
        assert on == compact
        switch, seen = trl_utils._use_triton, set()

        def spy(device):
            seen.add(answer := switch(device))
            return answer

        trl_utils._use_triton = spy
        try:
            yield seen
        finally:
            trl_utils._use_triton = switch


HEADS = pytest.mark.parametrize("compact", [False, True], ids=["trl-head", "compact-head"])


@pytest.fixture(scope="module")
def dpo_results(tiny_pair):
    """Parity results, computed once per loss type and LM head for the module."""
    cache = {}

    def get(loss_type, compact=False):
        if (loss_type, compact) not in cache:
            with lm_head(compact) as seen:
                result = harness.dpo_parity(loss_type, *tiny_pair)
            assert seen == {compact}, f"TRL's fused LM head went {seen}, expected {compact}"
            cache[loss_type, compact] = result
        return cache[loss_type, compact]

    return get


# ---------------------------------------------------------------------------------------------
# DPO and ORPO parity
# ---------------------------------------------------------------------------------------------


def test_the_parity_batch_is_informative(dpo_results):
    """At initialisation every log-ratio is 0 and parity proves nothing: here the policy differs
    from the reference, pairs are on both sides of the decision boundary, and beta * Delta spans
    the curved part of the losses."""
    result = dpo_results("sigmoid")
    assert 0 < result.ref_metrics["rewards/accuracies"] < 1
    assert result.extra["min beta*Delta"] < -0.5 and result.extra["max beta*Delta"] > 0.5
    assert abs(result.ref_metrics["rewards/chosen"]) > 0.1
    assert result.grad_max_abs > 0.1


@HEADS
@pytest.mark.parametrize("loss_type", [*harness.DPO_LOSS_TYPES, harness.SOFT])
def test_dpo_trainer_matches_reference(dpo_results, loss_type, compact):
    assert_parity(dpo_results(loss_type, compact))


def test_the_compact_head_changes_no_dpo_number(dpo_results):
    """Beyond both matching the reference to 1e-5: the two heads agree with each other."""
    trl_head, compact = dpo_results("sigmoid", False), dpo_results("sigmoid", True)
    assert compact.trl_loss == pytest.approx(trl_head.trl_loss, abs=1e-6)
    assert compact.trl_metrics == pytest.approx(trl_head.trl_metrics, abs=1e-5)


@HEADS
def test_orpo_trainer_matches_reference(tiny_pair, compact):
    policy, _, tokenizer = tiny_pair
    with lm_head(compact) as seen:
        result = harness.orpo_parity(policy, tokenizer)
    assert seen <= {compact}  # ORPOTrainer (TRL 1.16) takes full logits, without the fused head
    assert result.extra["max log OR"] - result.extra["min log OR"] > 0.1  # not the degenerate init
    assert_parity(result)


def test_every_trl_dpo_loss_type_is_checked():
    """TRL's list of loss types (DPOConfig's documentation) against what this suite checks: a new
    TRL loss type shows up here the day it is installed. ``sft`` is plain NLL, not a preference loss."""
    from trl import DPOConfig

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    trl_loss_types = set(re.findall(r"`'(\w+)'`", help_text)) - {"sft"}
    assert trl_loss_types, help_text
    assert trl_loss_types == set(harness.DPO_LOSS_TYPES), (
        f"not checked: {trl_loss_types - set(harness.DPO_LOSS_TYPES)}; "
        f"no longer in TRL: {set(harness.DPO_LOSS_TYPES) - trl_loss_types}"
    )


def test_trl_sigmoid_ignores_label_smoothing(tiny_pair, dpo_results, tmp_path):
    """TRL 1.16's "sigmoid" no longer reads label_smoothing (older TRL made it cDPO), which is why
    the reference refuses the combination and offers "soft". If TRL changes this, we want to know."""
    from datasets import Dataset
    from trl import DPOTrainer

    policy, reference, tokenizer = copy.deepcopy(tiny_pair[0]), copy.deepcopy(tiny_pair[1]), tiny_pair[2]
    rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in harness.parity_rows()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = harness._dpo_config(str(tmp_path), "sigmoid", harness.DEFAULT_BETA, 0.3, len(rows))
        trainer = DPOTrainer(
            model=policy,
            ref_model=reference,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        loss = trainer.compute_loss(policy, next(iter(trainer.get_train_dataloader())))
    assert loss.item() == pytest.approx(dpo_results("sigmoid").trl_loss, abs=1e-6)


@pytest.mark.slow
@HEADS
def test_parity_on_smollm2_with_real_text(compact):
    """The embedded SmolLM2-135M-Instruct (fp32), real sentences: DPO (sigmoid) and ORPO."""
    try:
        from smol_align.models import load_model
    except ImportError as error:
        pytest.skip(f"smol_align.models is not importable yet ({error}); it provides load_model")
    reference, tokenizer = load_model("HuggingFaceTB/SmolLM2-135M-Instruct", dtype=torch.float32)
    reference.eval()
    policy = harness.perturbed(reference, scale=0.02)
    rows = harness.parity_rows()[:3]

    with lm_head(compact) as seen:
        dpo = harness.dpo_parity(
            "sigmoid", policy, reference, tokenizer, rows=rows, beta=0.1, copy_models=False, own_grads=False
        )
        orpo = harness.orpo_parity(policy, tokenizer, rows=rows, beta=0.1, copy_model=False)
    assert seen == {compact}
    assert dpo.extra["max beta*Delta"] - dpo.extra["min beta*Delta"] > 0.05  # policy != reference
    assert_parity(dpo)
    assert_parity(orpo)


# ---------------------------------------------------------------------------------------------
# SoftDPOTrainer
# ---------------------------------------------------------------------------------------------


def _soft_rows(n=4, prob=None):
    rows = harness.parity_rows()[:n]
    if prob is not None:
        rows = [{**row, "preference_prob": prob} for row in rows]
    return rows


def _config(tmp_path, **overrides):
    from trl import DPOConfig

    kwargs = dict(
        output_dir=str(tmp_path),
        beta=harness.DEFAULT_BETA,
        per_device_train_batch_size=2,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        logging_steps=1,
    )
    return DPOConfig(**{**kwargs, **overrides})


def test_soft_dpo_trainer_trains_two_steps_and_learns(tiny_tokenizer, tiny_model, tmp_path):
    """Soft labels p in {1, 0.9} (every p > 0.5): two steps push the held-out reward margin up, on
    pairs that ask about other numbers than the training pairs."""
    from datasets import Dataset

    from smol_align.soft_dpo import SoftDPOTrainer
    from smol_align.testing import tiny_preference_rows

    def rows(ids):
        every = tiny_preference_rows(max(ids) + 1)
        return [{**every[i], "preference_prob": 1.0 if i % 2 else 0.9} for i in ids]

    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SoftDPOTrainer(
            model=tiny_model,
            ref_model=harness.perturbed(tiny_model, scale=0.2),
            args=_config(
                tmp_path, loss_type="soft", max_steps=2, learning_rate=1e-2, per_device_train_batch_size=4
            ),
            train_dataset=Dataset.from_list(rows(range(8))),
            eval_dataset=Dataset.from_list(rows(range(200, 208))),
            processing_class=tiny_tokenizer,
        )
        start = trainer.evaluate()  # the policy differs from the reference: the margin starts anywhere
        trainer.train()
        evaluation = trainer.evaluate()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 2 and len(logs) == 2
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)
    assert all(0 <= entry["preference_prob"] <= 1 for entry in logs)
    assert trainer.args.loss_type == ["sigmoid"]  # "soft" runs as TRL's sigmoid plus the correction
    assert any(not torch.equal(before[name], p) for name, p in tiny_model.named_parameters())
    assert evaluation["eval_preference_prob"] == pytest.approx((1.0 + 0.9) / 2)
    assert torch.isfinite(torch.tensor(evaluation["eval_loss"]))
    # it learned: the held-out margin grew and the held-out loss went down
    grown = evaluation["eval_rewards/margins"] - start["eval_rewards/margins"]
    assert grown > 0.01, (start, evaluation)
    assert evaluation["eval_loss"] < start["eval_loss"]


def _trainer_and_batch(cls, rows, mode, tiny_pair, output_dir, **extra):
    """A ``cls`` trainer on 6 ``rows`` with the reference of ``mode``, and its collated batch, in train mode."""
    from datasets import Dataset

    policy = copy.deepcopy(tiny_pair[0])
    kwargs = {"ref_model": copy.deepcopy(tiny_pair[1])}
    if mode == "peft":
        from peft import LoraConfig

        kwargs = {
            "ref_model": None,
            "peft_config": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = _config(
            output_dir,
            per_device_train_batch_size=6,
            precompute_ref_log_probs=mode == "precompute_ref_log_probs",
        )
        trainer = cls(
            model=policy,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tiny_pair[2],
            **kwargs,
            **extra,
        )
    if mode == "peft":  # a fresh adapter is zero: make the policy differ from the base model
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, param in trainer.model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    trainer.model.train()
    return trainer, batch


@pytest.mark.parametrize("mode", ["ref_model", "precompute_ref_log_probs", "peft"])
def test_soft_dpo_trainer_reference_modes(tiny_pair, tmp_path, mode):
    """Whichever way DPOTrainer gets the reference log-probs (a reference model, precomputed
    columns, the PEFT base model with the adapter off), a constant p gives
    soft = sigmoid + (1 - p) * mean(z), and mean(z) is TRL's logged rewards/margins."""
    from trl import DPOTrainer

    from smol_align.soft_dpo import SoftDPOTrainer

    def step(cls, prob):
        rows = _soft_rows(n=6, prob=prob)
        if cls is DPOTrainer:
            rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in rows]
        trainer, batch = _trainer_and_batch(cls, rows, mode, tiny_pair, tmp_path / f"{cls.__name__}{prob}")
        loss = trainer.compute_loss(trainer.model, batch).item()
        return loss, {k: v[-1] for k, v in trainer._metrics["train"].items()}

    sigmoid_loss, metrics = step(DPOTrainer, None)
    assert abs(metrics["rewards/margins"]) > 0.1
    assert step(SoftDPOTrainer, 1.0)[0] == sigmoid_loss
    soft_loss, soft_metrics = step(SoftDPOTrainer, 0.3)
    assert soft_loss == pytest.approx(sigmoid_loss + 0.7 * metrics["rewards/margins"], abs=1e-5)
    assert soft_metrics["preference_prob"] == pytest.approx(0.3)


def test_soft_dpo_with_certain_labels_is_exactly_sigmoid_dpo(tiny_pair, tmp_path):
    """p = 1 for every pair: the soft loss is DPO's, bit for bit (the correction is exactly 0),
    and so are the gradients and logged metrics."""
    from datasets import Dataset
    from trl import DPOTrainer

    from smol_align.soft_dpo import SoftDPOTrainer

    rows = _soft_rows(n=6, prob=1.0)
    outcomes = []
    for cls, dataset_rows in (
        (DPOTrainer, [{k: v for k, v in r.items() if k != "preference_prob"} for r in rows]),
        (SoftDPOTrainer, rows),
    ):
        policy, reference = copy.deepcopy(tiny_pair[0]), copy.deepcopy(tiny_pair[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = cls(
                model=policy,
                ref_model=reference,
                args=_config(tmp_path / cls.__name__, per_device_train_batch_size=6),
                train_dataset=Dataset.from_list(dataset_rows),
                processing_class=tiny_pair[2],
            )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
        policy.train()
        loss = trainer.compute_loss(policy, batch)
        loss.backward()
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k != "preference_prob"}
        outcomes.append((loss.detach(), {n: p.grad.clone() for n, p in policy.named_parameters()}, metrics))
    (sigmoid_loss, sigmoid_grads, sigmoid_metrics), (soft_loss, soft_grads, soft_metrics) = outcomes
    assert torch.equal(sigmoid_loss, soft_loss)
    assert all(torch.equal(sigmoid_grads[name], soft_grads[name]) for name in sigmoid_grads)
    assert sigmoid_metrics == soft_metrics


def test_soft_dpo_trainer_names_the_missing_column(tiny_tokenizer, tiny_model, tmp_path):
    from datasets import Dataset

    from smol_align.errors import DatasetFormatError
    from smol_align.soft_dpo import SoftDPOTrainer

    rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in _soft_rows()]
    kwargs = dict(model=tiny_model, ref_model=copy.deepcopy(tiny_model), processing_class=tiny_tokenizer)
    with pytest.raises(DatasetFormatError, match="'preference_prob' column in the train dataset") as info:
        SoftDPOTrainer(args=_config(tmp_path), train_dataset=Dataset.from_list(rows), **kwargs)
    assert info.value.column == "preference_prob" and isinstance(info.value, ValueError)
    with pytest.raises(DatasetFormatError, match="'p_chosen' column in the eval dataset"):
        SoftDPOTrainer(
            args=_config(tmp_path),
            train_dataset=Dataset.from_list([{**row, "p_chosen": 0.7} for row in rows]),
            eval_dataset=Dataset.from_list(rows),
            preference_prob_column="p_chosen",
            **kwargs,
        )


def test_soft_dpo_trainer_rejects_bad_probabilities_and_configs(tiny_tokenizer, tiny_model, tmp_path):
    from datasets import Dataset

    from smol_align.errors import ConfigError, DatasetFormatError
    from smol_align.soft_dpo import SoftDPOTrainer

    kwargs = dict(model=tiny_model, ref_model=copy.deepcopy(tiny_model), processing_class=tiny_tokenizer)
    for overrides, message in (
        ({"loss_type": "ipo"}, "loss_type='sigmoid' or 'soft'"),
        ({"label_smoothing": 0.1}, "label_smoothing=0"),
        ({"ld_alpha": 0.5}, "ld_alpha"),
    ):
        with pytest.raises(ConfigError, match=message):
            SoftDPOTrainer(
                args=_config(tmp_path, **overrides), train_dataset=Dataset.from_list(_soft_rows()), **kwargs
            )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SoftDPOTrainer(
            args=_config(tmp_path), train_dataset=Dataset.from_list(_soft_rows(prob=1.5)), **kwargs
        )
    with pytest.raises(DatasetFormatError, match=r"'preference_prob' must hold probabilities in \[0, 1\]"):
        trainer.data_collator([trainer.train_dataset[i] for i in range(2)])


def test_with_preference_prob_from_argilla_style_ratings():
    """Ratings 9 vs 7 -> sigma(2) = 0.8807971; 5 vs 5 -> 0.5."""
    from datasets import Dataset

    from smol_align.soft_dpo import PREFERENCE_PROB_COLUMN, with_preference_prob

    dataset = with_preference_prob(
        Dataset.from_list(
            [{"chosen_rating": 9, "rejected_rating": 7}, {"chosen_rating": 5, "rejected_rating": 5}]
        )
    )
    assert dataset[PREFERENCE_PROB_COLUMN] == pytest.approx([0.8807971, 0.5])


# ---------------------------------------------------------------------------------------------
# Constraints (SoftDPOTrainer with preference_prob_column=None): TRL's loss + each term
# ---------------------------------------------------------------------------------------------


def _plain_sequence_logps(model, batch):
    """Summed completion log-probs from plain ``model(...).logits`` (no fused head, no hooks), chunked to
    (chosen, rejected)."""
    from smol_align.reference import sequence_logps

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return sequence_logps(logits.float(), batch["input_ids"], mask=batch["completion_mask"]).chunk(2)


@pytest.mark.parametrize("mode", ["ref_model", "precompute_ref_log_probs", "peft"])
def test_constraints_add_their_terms_to_trls_loss(tiny_pair, tmp_path, mode):
    """With a reference model, precomputed reference log-probs or a LoRA policy (reference = adapters off): the loss
    is DPOTrainer's loss on the same batch + DPO-Positive's term + R-DPO's length term, each computed here by
    smol_align.reference from plain logits, each logged as constraint/<name>; and the gradients are those of that sum.
    """
    from trl import DPOTrainer

    from smol_align.reference import DPOPositive, LengthPenalty, PairLogps
    from smol_align.soft_dpo import SoftDPOTrainer

    rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in _soft_rows(n=6)]
    lam, alpha = 5.0, 0.05

    def step(cls, **extra):
        trainer, batch = _trainer_and_batch(cls, rows, mode, tiny_pair, tmp_path / cls.__name__, **extra)
        return trainer, batch, trainer.compute_loss(trainer.model, batch)

    trl, batch, trl_loss = step(DPOTrainer)
    chosen, rejected = _plain_sequence_logps(trl.model, batch)
    with torch.no_grad():
        if mode == "precompute_ref_log_probs":
            ref_chosen, ref_rejected = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
        elif mode == "peft":
            with trl.model.disable_adapter():
                ref_chosen, ref_rejected = _plain_sequence_logps(trl.model, batch)
        else:
            ref_chosen, ref_rejected = _plain_sequence_logps(trl.ref_model, batch)
    masks = batch["completion_mask"][:, 1:].chunk(2)
    logps = PairLogps(
        chosen,
        rejected,
        ref_chosen,
        ref_rejected,
        chosen_mask=masks[0],
        rejected_mask=masks[1],
        beta=harness.DEFAULT_BETA,
    )
    dpop, length = DPOPositive(lam)(logps), LengthPenalty(alpha)(logps)
    assert dpop.item() > 0.01 and abs(length.item()) > 1e-3  # both terms matter on this batch
    (trl_loss + dpop + length).backward()
    expected_grads = {n: p.grad.clone() for n, p in trl.model.named_parameters() if p.grad is not None}

    ours, _, loss = step(
        SoftDPOTrainer, preference_prob_column=None, constraints=[DPOPositive(lam), f"length:{alpha}"]
    )
    assert loss.item() == pytest.approx((trl_loss + dpop + length).item(), abs=1e-5)
    metrics = {k: v[-1] for k, v in ours._metrics["train"].items()}
    assert metrics["constraint/dpop"] == pytest.approx(dpop.item(), abs=1e-5)
    assert metrics["constraint/length"] == pytest.approx(length.item(), abs=1e-5)
    trl_metrics = {k: v[-1] for k, v in trl._metrics["train"].items()}
    assert {k: v for k, v in metrics.items() if not k.startswith("constraint/")} == pytest.approx(
        trl_metrics, abs=1e-6
    )
    loss.backward()
    grads = {n: p.grad for n, p in ours.model.named_parameters() if p.grad is not None}
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_constraint_gets_per_token_logps_and_the_batch(tiny_pair, tmp_path):
    """A user's constraint sees per-token log-probs (zero outside the completion, summing to the sequence figures),
    the reference's too, the masks, beta, the policy and the collated batch; a non-scalar return is refused."""
    from datasets import Dataset

    from smol_align.errors import ConfigError
    from smol_align.soft_dpo import SoftDPOTrainer

    seen = {}

    def spy(logps, batch):
        seen.update(logps=logps, batch=batch)
        return logps.chosen.sum() * 0.0

    rows = [{k: v for k, v in row.items() if k != "preference_prob"} for row in _soft_rows(n=4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SoftDPOTrainer(
            model=copy.deepcopy(tiny_pair[0]),
            ref_model=copy.deepcopy(tiny_pair[1]),
            args=_config(tmp_path, per_device_train_batch_size=4),
            train_dataset=Dataset.from_list(rows),
            processing_class=tiny_pair[2],
            preference_prob_column=None,
            constraints=[spy],
        )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trainer.compute_loss(trainer.model, batch)
    logps = seen["logps"]
    assert seen["batch"]["input_ids"] is batch["input_ids"] and logps.model is trainer.model
    assert (
        logps.beta == harness.DEFAULT_BETA
        and logps.chosen.requires_grad
        and not logps.ref_chosen.requires_grad
    )
    for tokens, mask, total in (
        (logps.chosen_tokens, logps.chosen_mask, logps.chosen),
        (logps.ref_rejected_tokens, logps.rejected_mask, logps.ref_rejected),
    ):
        assert tokens.shape == mask.shape and torch.all(tokens[mask == 0] == 0)
        torch.testing.assert_close(tokens.sum(1), total)
    assert "constraint/spy" in trainer._metrics["train"]

    trainer.constraints = [lambda logps, batch: logps.chosen]
    with pytest.raises(ConfigError, match="must return a scalar tensor"):
        trainer.compute_loss(trainer.model, batch)

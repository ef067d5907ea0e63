"""Constraint terms on the DPO loss through the public entry points (``train_dpo(..., constraints=[...])``).

The formulas against hand-worked numbers are in tests/test_reference.py; the trainer's loss, metrics and gradients
against DPOTrainer's loss + each term, in every reference mode, in tests/test_trl_parity.py.
"""

import pytest

import smol_align
from smol_align.demo import demo_keywords
from smol_align.errors import ConfigError
from smol_align.options import split_options
from smol_align.run import run
from smol_align.testing import tiny_preference_rows

FAST = {
    "max_steps": 2,
    "per_device_train_batch_size": 4,
    "learning_rate": 1e-3,
    "logging_steps": 1,
    "quiet": True,
}


def test_train_dpo_logs_each_constraint(tiny_model, tiny_tokenizer):
    """Strings and callables, side by side: each is a metric of every logged step."""
    import torch

    def keep_chosen_up(logps, batch):
        return torch.relu(logps.ref_chosen - logps.chosen).mean()

    result = smol_align.train_dpo(
        tiny_model,
        tiny_preference_rows(16),
        "cpu",
        tokenizer=tiny_tokenizer,
        save=False,
        answer_prompts=0,
        constraints=["dpop:5", "length", keep_chosen_up],
        **FAST,
    )
    logs = [h for h in result.trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    for name in ("constraint/dpop", "constraint/length", "constraint/keep_chosen_up"):
        assert all(name in h for h in logs), logs[-1].keys()
    assert [repr(c) for c in result.trainer.constraints[:2]] == [
        "DPOPositive(lam=5)",
        "LengthPenalty(alpha=0.01)",
    ]
    assert result.metrics["train_constraint/dpop"] == logs[-1]["constraint/dpop"]  # in metrics.json too


def test_constraints_with_soft_labels_and_lora(tiny_model, tiny_tokenizer, tmp_path):
    """Soft labels and constraints add up in one trainer; LoRA takes its reference with the adapters off."""
    from smol_align.soft_dpo import SoftDPOTrainer

    rows = [{**row, "preference_prob": 0.9} for row in tiny_preference_rows(8)]
    trainer = smol_align.build_dpo_trainer(
        tiny_model,
        rows,
        "cpu+lora",
        tokenizer=tiny_tokenizer,
        output_dir=str(tmp_path),
        loss_type="soft",
        constraints=["dpop"],
        **{k: v for k, v in FAST.items() if k != "quiet"},
    )
    assert type(trainer) is SoftDPOTrainer and trainer.preference_prob_column == "preference_prob"
    assert trainer.ref_model is None  # PEFT: the reference is the policy with its adapters off
    trainer.train()
    last = [h for h in trainer.state.log_history if "loss" in h][-1]
    assert "constraint/dpop" in last and last["preference_prob"] == pytest.approx(0.9)


def test_orpo_and_unknown_constraints_are_refused(tiny_model, tiny_tokenizer, tmp_path):
    kwargs = dict(
        tokenizer=tiny_tokenizer, output_dir=str(tmp_path), **{k: v for k, v in FAST.items() if k != "quiet"}
    )
    with pytest.raises(ConfigError, match="ORPO takes none"):
        smol_align.build_orpo_trainer(
            tiny_model, tiny_preference_rows(4), "cpu", constraints=["dpop"], **kwargs
        )
    with pytest.raises(ValueError, match="Unknown constraint 'kl'"):
        smol_align.build_dpo_trainer(tiny_model, tiny_preference_rows(4), "cpu", constraints=["kl"], **kwargs)


# Measured on the embedded SmolLM2-135M-Instruct and the demo data (32 held-out pairs, batch 4, no SFT term): plain
# DPO at the demo's rate (2e-5, 15 steps) or 1e-4 (8 steps) raises log p(chosen) (held-out NLL of chosen 2.93 -> 1.81,
# 2.89 -> 2.06): the chosen answers are the style it learns. At 1e-3 for 6 steps it pushes the rejected answers down
# by 246 nats and the chosen ones by 58 with them: NLL of chosen 2.89 -> 5.94. DPO-Positive (lam = 50) on the same
# steps: 2.89 -> 1.99, chosen log-probs +17 nats, rejected -61; every pair still has a higher reward for the chosen.
DISPLACING = {
    "loss_type": "sigmoid",
    "learning_rate": 1e-3,
    "max_steps": 6,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "max_eval_pairs": 32,
    "answer_prompts": 0,
}


@pytest.mark.slow
def test_dpo_positive_keeps_the_chosen_answers_likely_where_dpo_lets_them_fall():
    """The demo where plain DPO lowers the held-out likelihood of the chosen answers (settings above): the same run
    with DPO-Positive keeps it at or above the start model's, on the same held-out pairs and start figures."""
    dpo = smol_align.train_dpo(save=False, quiet=True, **DISPLACING)
    options = {"save": False, "quiet": True, "constraints": ["dpop:50"], **DISPLACING}
    options = demo_keywords("dpo", None, "auto", options)  # what train_dpo() adds on the demo data
    options = split_options("dpo", options, "train_dpo")
    dpop = run("dpo", smol_align.DEFAULT_MODEL, None, "auto", None, options, baseline=dpo)  # compare's route
    start = dpo.before
    assert dpop.before is start  # one start evaluation for both
    keys = ("nll_chosen", "drift", "drift_rejected", "preference_accuracy", "reward_accuracy")
    for name, figures in (("start", start), ("dpo", dpo.after), ("dpop", dpop.after)):
        print(name, {k: round(figures[k], 3) for k in keys})  # shown when the test fails
    assert dpo.after["nll_chosen"] > start["nll_chosen"] + 0.5 and dpo.after["drift"] < -5, (
        dpo.after
    )  # DPO: it fell
    assert dpop.after["nll_chosen"] <= start["nll_chosen"] and dpop.after["drift"] >= 0, (
        dpop.after
    )  # DPOP: it held
    assert dpop.after["reward_accuracy"] >= 0.9  # and the pairs are still learned
    logs = [h for h in dpop.trainer.state.log_history if "loss" in h]
    assert any(h["constraint/dpop"] > 0 for h in logs)  # the term was active on some step


def test_cli_constraint_flag(capsys):
    """`smol-align dpo --constraint dpop:5 --constraint length` -> train_dpo(constraints=["dpop:5", "length"]); ORPO has
    no such flag."""
    from smol_align.cli import train_options

    given = train_options("dpo", ["--constraint", "dpop:5", "--constraint", "length"])
    assert given["constraints"] == ["dpop:5", "length"]
    assert "constraints" not in train_options("dpo", [])
    with pytest.raises(SystemExit):
        train_options("orpo", ["--constraint", "dpop"])
    assert "unknown option --constraint" in capsys.readouterr().err

"""train_dpo / train_orpo end to end on a tiny model: result object, saved files, no half-written output,
and a held-out reward margin that grows (on pairs asking about other numbers than the training rows)."""

import json
import os

import pytest
import torch

import smol_align
from smol_align.errors import ConfigError
from smol_align.evaluate import evaluate
from smol_align.testing import tiny_preference_rows

FAST = {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "quiet": True}
MARGIN_BAR = 0.01  # held-out DPO reward margin after training (0 at the start by definition)


def _heldout(n=4):
    """``n`` pairs like tiny_preference_rows' that no training row asks ("What is 200 plus 200?"...)."""
    return tiny_preference_rows(200 + n)[200:]


def _data():
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {"train": Dataset.from_list(tiny_preference_rows(12)), "test": Dataset.from_list(_heldout())}
    )


@pytest.mark.parametrize("train", [smol_align.train_dpo, smol_align.train_orpo])
def test_one_liner_trains_saves_and_reports(train, tiny_model, tiny_tokenizer, tmp_path):
    out = tmp_path / "run"
    start = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    result = train(tiny_model, _data(), "cpu", output_dir=str(out), tokenizer=tiny_tokenizer, **FAST)

    assert result.output_dir == str(out) and result.trainer.args.output_dir == str(out)
    assert result.trainer.state.global_step == 3
    assert any(not torch.equal(start[n], p) for n, p in result.trainer.model.named_parameters())
    # the model, tokenizer and run files are all there, and nothing else is left beside them
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "metrics.json", "training.png"):
        assert (out / name).exists(), name
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 3 and saved["method"] == result.method

    m = result.metrics
    assert m["steps"] == 3 and m["train_seconds"] > 0 and m["peak_memory_gb"] > 0
    # held-out figures before and after, under TRL's names for the DPO ones
    assert 0.0 <= m["eval_rewards/accuracies"] <= 1.0
    assert m["start_rewards/accuracies"] == 0.0  # policy == reference at the start: every reward is 0
    assert result.before["n_pairs"] == result.after["n_pairs"] == 4
    # it learned: the held-out margin grew from 0, the chosen answers win on held-out pairs
    assert result.before["reward_margin"] == 0.0 and result.after["reward_margin"] > MARGIN_BAR, result.after
    assert m["eval_rewards/accuracies"] >= 0.75
    assert "reward accuracy" in result.summary() and str(out) in result.summary()
    assert (
        m["learned"] is True and m["learning_verdict"] == "learned" and "NOT LEARNED" not in result.summary()
    )


def test_existing_output_dir_is_not_overwritten(tiny_model, tiny_tokenizer, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        smol_align.train_dpo(
            tiny_model, _data(), "cpu", output_dir=str(out), tokenizer=tiny_tokenizer, **FAST
        )
    assert (out / "keep.txt").read_text() == "mine"


def test_failed_run_leaves_no_output_dir(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    from trl import DPOTrainer

    def boom(self, *args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(DPOTrainer, "train", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        smol_align.train_dpo(
            tiny_model, _data(), "cpu", output_dir=str(tmp_path / "run"), tokenizer=tiny_tokenizer, **FAST
        )
    assert os.listdir(tmp_path) == []


def test_bad_override_fails_before_any_work(tiny_model, tiny_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="max_prompt_length"):
        smol_align.train_dpo(
            tiny_model,
            _data(),
            "cpu",
            output_dir=str(tmp_path / "run"),
            tokenizer=tiny_tokenizer,
            max_prompt_length=128,
            **FAST,
        )
    assert os.listdir(tmp_path) == []


def test_list_of_dicts_and_no_eval_split(tiny_model, tiny_tokenizer, tmp_path):
    result = smol_align.train_dpo(
        tiny_model,
        tiny_preference_rows(8),
        "cpu",
        output_dir=str(tmp_path / "run"),
        tokenizer=tiny_tokenizer,
        **FAST,
    )
    assert result.before is None and "eval_rewards/accuracies" not in result.metrics
    assert result.metrics["steps"] == 3
    # it learned: measured here against the frozen start model the trainer kept as its reference
    heldout = evaluate(result.model, _heldout(), ref_model=result.trainer.ref_model, tokenizer=tiny_tokenizer)
    assert heldout["reward_margin"] > MARGIN_BAR and heldout["reward_accuracy"] >= 0.75, heldout


def test_push_to_hub_names_the_repo_after_the_run_not_the_staging_folder(
    tiny_model, tiny_tokenizer, tmp_path, local_hub
):
    """No network here: the Hub is a stand-in on this machine (tests/helpers.py, LocalHub) that records what
    is sent. The push is huggingface_hub's create_repo + upload_folder of the finished folder (the Trainer's
    push_to_hub wrote TRL's card over smol_align's)."""
    out = tmp_path / "pirate-dpo"
    smol_align.train_dpo(
        tiny_model,
        _data(),
        "cpu",
        output_dir=str(out),
        tokenizer=tiny_tokenizer,
        push_to_hub=True,
        answer_prompts=0,
        **{**FAST, "max_steps": 1},
    )
    creates = [
        json.loads(body)["name"] for _, path, _, body in local_hub.requests if path == "/api/repos/create"
    ]
    assert creates and set(creates) == {"pirate-dpo"}
    assert local_hub.commits and all(repo == "me/pirate-dpo" for repo, _ in local_hub.commits)
    assert "model.safetensors" in local_hub.commits[-1][1]  # the trained weights, as safetensors
    assert sorted(os.listdir(tmp_path)) == ["pirate-dpo"]  # no staging folder left behind


@pytest.mark.parametrize(
    "train, setting, says",
    [
        (smol_align.train_dpo, {"beta": -0.5}, "toward the rejected answers"),
        (smol_align.train_dpo, {"beta": 0}, "beta must be positive"),
        (smol_align.train_orpo, {"beta": -0.5}, "lambda"),
        (smol_align.train_kto, {"beta": 0.0}, "beta must be positive"),
        (smol_align.train_dpo, {"learning_rate": 0}, "learning rate must be positive"),
        (smol_align.train_dpo, {"per_device_train_batch_size": 0}, "at least 1"),
        (smol_align.train_dpo, {"gradient_accumulation_steps": 0}, "at least 1"),
        (smol_align.train_dpo, {"max_steps": 0}, "max_steps=-1"),
        (smol_align.train_orpo, {"learning_rate": float("inf")}, "finite"),
    ],
)
def test_settings_that_cannot_learn_stop_before_the_model_loads(train, setting, says, tmp_path, monkeypatch):
    """Refused before any data is read, folder made or model loaded (a model that does not exist is never
    looked up), with the overwrite of an earlier run not started."""
    import smol_align.trainers

    monkeypatch.setattr(smol_align.trainers, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")  # an earlier run, which overwrite=True would replace
    with pytest.raises(ConfigError, match=says):
        train("no/such-model", tiny_preference_rows(8), "cpu", output_dir=str(out), overwrite=True, **setting)
    assert os.listdir(out) == ["metrics.json"]


@pytest.mark.parametrize(
    "keyword, closest",
    [
        ({"batch_size": 4}, "per_device_train_batch_size"),
        ({"learnig_rate": 1e-5}, "learning_rate"),
        ({"max_eval_pair": 4}, "max_eval_pairs"),
        ({"colums": {"prompt": "q"}}, "columns"),
        ({"tokeniser": None}, "tokenizer"),
    ],
)
def test_unknown_keywords_are_an_error_naming_the_closest(keyword, closest, tmp_path):
    """train_dpo(batch_size=4) was taken as datasets.map's batch size: the training batch was the preset's."""
    said = f"Unknown option '{next(iter(keyword))}' for train_dpo. Did you mean '{closest}'"
    with pytest.raises(ConfigError, match=said):
        smol_align.train_dpo("no/such", tiny_preference_rows(8), output_dir=str(tmp_path / "r"), **keyword)
    if closest != "max_eval_pairs":  # the runner's own keyword: not the builder's
        with pytest.raises(ConfigError, match=f"Did you mean '{closest}'"):
            smol_align.build_dpo_trainer("no/such-model", tiny_preference_rows(8), "cpu", **keyword)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("call", [smol_align.train_dpo, smol_align.train_orpo, smol_align.compare])
def test_baseline_is_not_a_users_keyword(call, tmp_path):
    """compare hands an earlier run to the runner as its own parameter; from a user it is unknown."""
    with pytest.raises(ConfigError, match="Unknown option 'baseline'"):
        call("no/such-model", tiny_preference_rows(8), output_dir=str(tmp_path / "r"), baseline=object())


def test_unknown_keywords_of_compare_iterate_and_load():
    from smol_align.data import load

    with pytest.raises(ConfigError, match="Unknown option 'n_answer' for compare.*Did you mean 'n_answers'"):
        smol_align.compare("no/such-model", tiny_preference_rows(8), n_answer=2)
    with pytest.raises(ConfigError, match="max_steps=0"):  # compare's own parameter, checked before any work
        smol_align.compare("no/such-model", tiny_preference_rows(8), max_steps=0)
    with pytest.raises(ConfigError, match="Unknown option 'learnig_rate' for iterate.*'learning_rate'"):
        smol_align.iterate("no/such-model", ["Hi"], learnig_rate=1e-5)
    with pytest.raises(ConfigError, match="beta must be positive"):
        smol_align.iterate("no/such-model", ["Hi"], beta=-1.0)
    pairs = load(tiny_preference_rows(8), eval_split=0).train  # normalized: only the filters were read
    with pytest.raises(ConfigError, match="Unknown option 'drop_identicals'.*Did you mean 'drop_identical'"):
        load(pairs, drop_identicals=True)
    assert len(load(pairs, batch_size=4).train) == 8  # load's own datasets.map batch stays its keyword

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
    assert m["start_reward_accuracy"] == 0.0  # policy == reference at the start: every reward is 0
    assert result.before["n_pairs"] == result.after["n_pairs"] == 4
    # it learned: the held-out margin grew from 0, the chosen answers win on held-out pairs
    assert result.before["reward_margin"] == 0.0 and result.after["reward_margin"] > MARGIN_BAR, result.after
    assert m["eval_rewards/accuracies"] >= 0.75
    assert "reward accuracy" in result.summary() and str(out) in result.summary()


def test_existing_output_dir_is_not_overwritten(tiny_model, tiny_tokenizer, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        smol_align.train_dpo(tiny_model, _data(), "cpu", output_dir=str(out), tokenizer=tiny_tokenizer, **FAST)
    assert (out / "keep.txt").read_text() == "mine"


def test_failed_run_leaves_no_output_dir(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    from trl import DPOTrainer

    def boom(self, *args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(DPOTrainer, "train", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        smol_align.train_dpo(tiny_model, _data(), "cpu", output_dir=str(tmp_path / "run"), tokenizer=tiny_tokenizer, **FAST)
    assert os.listdir(tmp_path) == []


def test_bad_override_fails_before_any_work(tiny_model, tiny_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="max_prompt_length"):
        smol_align.train_dpo(
            tiny_model, _data(), "cpu", output_dir=str(tmp_path / "run"), tokenizer=tiny_tokenizer,
            max_prompt_length=128, **FAST,
        )
    assert os.listdir(tmp_path) == []


def test_list_of_dicts_and_no_eval_split(tiny_model, tiny_tokenizer, tmp_path):
    result = smol_align.train_dpo(
        tiny_model, tiny_preference_rows(8), "cpu", output_dir=str(tmp_path / "run"), tokenizer=tiny_tokenizer, **FAST
    )
    assert result.before is None and "eval_rewards/accuracies" not in result.metrics
    assert result.metrics["steps"] == 3
    # it learned: measured here against the frozen start model the trainer kept as its reference
    heldout = evaluate(result.model, _heldout(), ref_model=result.trainer.ref_model, tokenizer=tiny_tokenizer)
    assert heldout["reward_margin"] > MARGIN_BAR and heldout["reward_accuracy"] >= 0.75, heldout


def test_push_to_hub_names_the_repo_after_the_run_not_the_staging_folder(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    """No network here: transformers' Hub client is stubbed and records what would be sent."""
    import transformers.trainer

    calls = []

    class Hub:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))
            return type("RepoUrl", (), {"repo_id": f"me/{repo_id}"})()

        def upload_folder(self, repo_id, folder_path, run_as_future=False, **kwargs):
            calls.append(("upload_folder", repo_id, sorted(os.listdir(folder_path))))
            if run_as_future:  # checkpoint pushes during training go in the background
                from concurrent.futures import Future

                done = Future()
                done.set_result(None)
                return done

    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: Hub())
    out = tmp_path / "pirate-dpo"
    smol_align.train_dpo(tiny_model, _data(), "cpu", output_dir=str(out), tokenizer=tiny_tokenizer,
                         push_to_hub=True, answer_prompts=0, **{**FAST, "max_steps": 1})
    assert calls[0] == ("create_repo", "pirate-dpo")
    uploads = [c for c in calls if c[0] == "upload_folder"]
    assert uploads and all(c[1] == "me/pirate-dpo" for c in uploads)
    assert "model.safetensors" in uploads[-1][2]  # the trained weights, as safetensors
    assert sorted(os.listdir(tmp_path)) == ["pirate-dpo"]  # no staging folder left behind

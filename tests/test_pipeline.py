"""The pipeline (issue 30 item 2): SFT then DPO from the SFT model, a run folder per stage, one report; a LoRA
SFT adapter merged or continued; a failed stage stops it and resume=True continues from there; the recipe."""

from __future__ import annotations

import json
import sys
from importlib import resources

import pytest
import yaml

import smol_align
from smol_align.cli import main
from smol_align.errors import ConfigError
from smol_align.pipeline import pipeline_from_recipe
from smol_align.testing import tiny_preference_rows
from tests.helpers import tiny_model_dir_and_pairs

FAST = {"max_steps": 3, "per_device_train_batch_size": 4, "quiet": True, "answer_prompts": 0}
RATES = {"sft": {"learning_rate": 5e-3}, "dpo": {"learning_rate": 5e-3}}


def _data():
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {
            "train": Dataset.from_list(tiny_preference_rows(16)),
            "test": Dataset.from_list(tiny_preference_rows(204)[200:]),
        }
    )


def test_sft_then_dpo_each_stage_a_folder_the_next_from_the_previous(tmp_path):
    base, _ = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "pipe"
    result = smol_align.pipeline(
        str(base), _data(), _data(), preset="cpu", output_dir=str(out), stage_options=RATES, **FAST
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "1-sft",
        "2-dpo",
        "metrics.json",
        "pipeline.json",
        "report.md",
    ]
    sft = json.loads((out / "1-sft" / "metrics.json").read_text())
    dpo = json.loads((out / "2-dpo" / "metrics.json").read_text())
    assert sft["method"] == "sft" and sft["model"] == str(base)
    assert dpo["method"] == "dpo" and dpo["model"] == str(out / "1-sft")  # DPO starts from the SFT model
    # its reference is the SFT model: the start figures are the SFT model's against itself
    assert dpo["start_rewards/margins"] == 0.0
    assert dpo["start_nll_chosen"] == pytest.approx(sft["eval_nll"], rel=1e-4)
    rows = result.metrics
    assert list(rows) == ["1-sft", "2-dpo"] and rows["1-sft"]["nll"] < rows["1-sft"]["start_nll"]
    assert rows["2-dpo"]["reward_accuracy"] >= 0.75 and rows["2-dpo"]["learned"] is True
    report = (out / "report.md").read_text()
    assert "| 1-sft |" in report and "| 2-dpo |" in report and "reward_accuracy" in report
    assert json.loads((out / "metrics.json").read_text())["figures"]["2-dpo"]["method"] == "dpo"


@pytest.mark.parametrize("lora", ["merge", "continue"])
def test_a_lora_sft_adapter_is_merged_or_continued(lora, tmp_path):
    base, _ = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "pipe"
    rates = {"sft": {"learning_rate": 1e-2}, "dpo": {"learning_rate": 1e-2}}
    smol_align.pipeline(
        str(base),
        _data(),
        _data(),
        preset="cpu+lora",
        output_dir=str(out),
        lora=lora,
        stage_options=rates,
        **FAST,
    )
    sft_adapter = out / "1-sft" / "adapter_config.json"
    dpo_adapter = out / "2-dpo" / "adapter_config.json"
    assert sft_adapter.is_file() and dpo_adapter.is_file()
    dpo = json.loads((out / "2-dpo" / "metrics.json").read_text())
    assert dpo["start_rewards/margins"] == 0.0 and dpo["eval_rewards/margins"] > 0  # vs the SFT model
    if lora == "merge":  # a plain model, which the DPO stage trains a new adapter on
        merged = out / "1-sft-merged"
        assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
        assert dpo["model"] == str(merged)
        assert json.loads(dpo_adapter.read_text())["base_model_name_or_path"] == str(merged)
    else:  # the same adapter trained on: its base is the SFT stage's base, its weights moved on from SFT's
        assert not (out / "1-sft-merged").exists()
        assert json.loads(dpo_adapter.read_text())["base_model_name_or_path"] == str(base)
        from safetensors.torch import load_file

        before = load_file(out / "1-sft" / "adapter_model.safetensors")
        after = load_file(out / "2-dpo" / "adapter_model.safetensors")
        assert before.keys() == after.keys()
        assert any(not (before[k] == after[k]).all() for k in before)
        # the adapter is loaded to train on (peft's is_trainable=True), not frozen as peft loads a saved one
        start, _ = sys.modules["smol_align.pipeline"]._next_start(
            out, "1-sft", out / "1-sft", "continue", "cpu+lora", print
        )
        lora_params = [p for n, p in start.named_parameters() if "lora_" in n]
        assert lora_params and all(p.requires_grad for p in lora_params)


def test_a_failed_stage_keeps_the_finished_ones_and_resume_continues(tmp_path, monkeypatch):
    base, _ = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "pipe"
    calls = []
    real = smol_align.api.train_dpo

    def failing(*args, **kwargs):
        calls.append(kwargs)
        raise ConfigError("the DPO stage failed (a test)")

    monkeypatch.setattr(smol_align.api, "train_dpo", failing)
    with pytest.raises(ConfigError, match="a test"):
        smol_align.pipeline(
            str(base), _data(), _data(), preset="cpu", output_dir=str(out), stage_options=RATES, **FAST
        )
    assert (out / "1-sft" / "metrics.json").is_file() and not (out / "2-dpo").exists()
    sft_written = (out / "1-sft" / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="resume=True"):  # a second run without resume is refused
        smol_align.pipeline(str(base), _data(), _data(), preset="cpu", output_dir=str(out), **FAST)

    monkeypatch.setattr(smol_align.api, "train_dpo", real)
    result = smol_align.pipeline(
        str(base),
        _data(),
        _data(),
        preset="cpu",
        output_dir=str(out),
        resume=True,
        stage_options=RATES,
        **FAST,
    )
    assert (
        result.stages["1-sft"] is None and result.stages["2-dpo"] is not None
    )  # SFT kept, not trained again
    assert (out / "1-sft" / "model.safetensors").stat().st_mtime_ns == sft_written
    assert result.metrics["1-sft"]["nll"] < result.metrics["1-sft"]["start_nll"]
    assert (out / "2-dpo" / "metrics.json").is_file() and (out / "report.md").is_file()


def test_the_pipeline_never_writes_into_a_folder_not_its_own(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for again in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ConfigError, match="no smol_align pipeline"):
            smol_align.pipeline(output_dir=str(mine), **again)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    with pytest.raises(ConfigError, match="stages"):
        smol_align.pipeline(stages=("sft", "sft"), output_dir=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="lora="):
        smol_align.pipeline(lora="fuse", output_dir=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="Unknown option 'betta'"):  # every stage checked before any work
        smol_align.pipeline(stage_options={"dpo": {"betta": 0.1}}, output_dir=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_the_demo_recipe_and_the_cli(tmp_path, monkeypatch):
    recipe = yaml.safe_load((resources.files("smol_align") / "recipes" / "demo-pipeline.yaml").read_text())
    assert recipe["stages"] == ["sft", "dpo"] and recipe["lora"] == "merge"
    seen = {}
    module = sys.modules["smol_align.pipeline"]  # (smol_align.pipeline is the function)
    monkeypatch.setattr(module, "pipeline", lambda **kw: seen.update(kw))
    assert main(["pipeline", "--output-dir", str(tmp_path / "p"), "--lora", "continue"]) == 0
    assert seen["stages"] == ("sft", "dpo") and seen["lora"] == "continue" and seen["sft_data"] is None
    assert seen["stage_options"] == {"sft": {"max_steps": 30}, "dpo": {"max_steps": 30}}
    assert seen["model"] == recipe["model"] and seen["output_dir"] == str(tmp_path / "p")

    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "model": str(base),
                "preset": "cpu",
                "max_steps": 2,
                "per_device_train_batch_size": 4,
                "answer_prompts": 0,
                "sft": {"dataset": str(pairs), "learning_rate": 5e-3},
                "dpo": {"dataset": str(pairs), "beta": 0.2},
            }
        )
    )
    seen.clear()
    pipeline_from_recipe(mine, output_dir="o")
    assert seen["sft_data"] == str(pairs) and seen["pref_data"] == str(pairs) and seen["preset"] == "cpu"
    assert seen["stage_options"] == {"sft": {"learning_rate": 5e-3}, "dpo": {"beta": 0.2}}
    assert seen["max_steps"] == 2 and seen["output_dir"] == "o"

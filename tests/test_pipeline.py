"""The pipeline (issue 30 item 2): SFT then DPO from the SFT model, a run folder per stage, one report; a LoRA
SFT adapter merged or continued; a failed stage stops it and resume=True continues from there; the recipe.
Its folder is held as a run's (rundir.py), with real processes: a second pipeline on it is refused at once,
a pipeline killed mid-stage resumes, and --overwrite never deletes a file smol_align did not write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
import yaml

import smol_align
from smol_align.cli import main
from smol_align.errors import ConfigError
from smol_align.pipeline import pipeline_from_recipe
from smol_align.rundir import LOCK, MARKER
from smol_align.testing import tiny_preference_rows
from tests.helpers import SLOW_CLI, tiny_model_dir_and_pairs

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
        "report.md",
    ]  # the folder's lock and marker gone: its stages and settings are in metrics.json
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
    record = json.loads((out / "metrics.json").read_text())
    assert record["figures"]["2-dpo"]["method"] == "dpo" and record["stages"] == ["sft", "dpo"]
    assert record["model"] == str(base) and record["lora"] == "merge"


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
    refusals = {  # rundir's refusals, as for a run's folder
        "exists and is not empty": {},
        "holds files a run does not write: notes.txt": {"overwrite": True},
        "is not an unfinished smol_align run": {"resume": True},
    }
    for refused, again in refusals.items():
        with pytest.raises(ConfigError, match=refused):
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


# --- The pipeline's folder, with real processes ---
ROOT = Path(__file__).resolve().parents[1]


def _recipe(folder: Path, dpo_steps: int) -> Path:
    """A pipeline recipe of the tiny model: 1 SFT step, then ``dpo_steps`` DPO steps."""
    base, pairs = tiny_model_dir_and_pairs(folder)
    recipe = folder / "pipeline.yaml"
    settings = {"model": str(base), "preset": "cpu", "bf16": False, "per_device_train_batch_size": 2}
    stages = {
        "sft": {"dataset": str(pairs), "max_steps": 1},
        "dpo": {"dataset": str(pairs), "max_steps": dpo_steps},
    }
    recipe.write_text(yaml.safe_dump({**settings, "answer_prompts": 0, **stages}))
    return recipe


def _cli(recipe: Path, out: Path, *extra, delay: float = 0.0, wait: bool = True):
    """``smol-align pipeline`` in a child process, each training step slowed to ``delay`` seconds."""
    argv = [sys.executable, "-c", SLOW_CLI, str(delay), "pipeline", "--config", str(recipe)]
    argv += ["--output-dir", str(out), "--quiet", *extra]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    if wait:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for(check, proc, what, timeout=120):
    deadline = time.time() + timeout
    while not check():
        assert proc.poll() is None, f"the pipeline ended before {what}:\n{proc.stdout.read()}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_pipeline_on_a_busy_folder_is_refused_at_once_naming_the_first(tmp_path):
    """Two pipelines on one folder: the second (with --overwrite, even), started while the first trains its
    DPO stage from its finished SFT stage, stops at once naming the first and the pipeline's folder; the SFT
    stage the first is training from is untouched, and the first finishes with its report whole."""
    recipe, out = _recipe(tmp_path, dpo_steps=8), tmp_path / "pipe"
    first = _cli(recipe, out, delay=2.0, wait=False)
    _wait_for(lambda: (out / "2-dpo" / MARKER).exists(), first, "the DPO stage")
    sft = _snapshot(out / "1-sft")
    second = _cli(recipe, out, "--overwrite")
    assert second.returncode == 2, second.stdout + second.stderr
    busy = f"Output directory {out} is in use by another smol_align run (pid {first.pid} on "
    assert busy in second.stderr and "one run at a time per folder" in second.stderr, second.stderr
    assert first.poll() is None  # refused while the first runs
    assert _snapshot(out / "1-sft") == sft  # the second wrote nothing: the first's SFT model is as it was
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["1-sft", "2-dpo", "metrics.json", "report.md"]
    record = json.loads((out / "metrics.json").read_text())
    assert record["stages"] == ["sft", "dpo"] and record["figures"]["2-dpo"]["steps"] == 8
    report = (out / "report.md").read_text()
    assert report.startswith("# Pipeline: SFT -> DPO") and "| 1-sft |" in report and "| 2-dpo |" in report


def test_a_pipeline_killed_mid_stage_resumes_after_its_finished_stages(tmp_path):
    """kill -9 as the DPO stage starts (no checkpoint yet): --resume keeps the finished SFT stage, starts the
    DPO stage again (nothing to resume it from) and finishes; the killed pipeline's lock does not hold."""
    recipe, out = _recipe(tmp_path, dpo_steps=3), tmp_path / "pipe"
    first = _cli(recipe, out, delay=1.0, wait=False)
    _wait_for(lambda: (out / "2-dpo" / MARKER).exists(), first, "the DPO stage")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (out / MARKER).exists() and json.loads((out / MARKER).read_text())["stages"] == ["1-sft", "2-dpo"]
    sft = _snapshot(out / "1-sft")
    resumed = _cli(recipe, out, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _snapshot(out / "1-sft") == sft  # kept, not trained again
    assert sorted(p.name for p in out.iterdir()) == ["1-sft", "2-dpo", "metrics.json", "report.md"]
    assert not {MARKER, LOCK} & {p.name for p in (out / "2-dpo").iterdir()}
    figures = json.loads((out / "metrics.json").read_text())["figures"]
    assert figures["1-sft"]["steps"] == 1 and figures["2-dpo"]["steps"] == 3


def test_overwrite_never_deletes_a_file_smol_align_did_not_write(tmp_path):
    """--overwrite on a pipeline's folder holding a file of the user's (beside its stages, or inside the
    merged model of its LoRA SFT stage) is refused before anything goes; every file is kept, byte for byte."""
    base, _ = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "pipe"
    options = dict(preset="cpu+lora", output_dir=str(out), max_steps=1, quiet=True, answer_prompts=0)
    smol_align.pipeline(str(base), _data(), _data(), **options)
    assert (out / "1-sft-merged" / "config.json").is_file()
    for mine in (out / "notes.txt", out / "1-sft-merged" / "notes.txt"):
        mine.write_text("my notes")
        before = _snapshot(out)
        with pytest.raises(
            ConfigError, match="holds files a run does not write: " + mine.relative_to(out).parts[0]
        ):
            smol_align.pipeline(str(base), _data(), _data(), overwrite=True, **options)
        assert _snapshot(out) == before
        mine.unlink()

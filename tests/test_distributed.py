"""Beyond one process: the shipped accelerate configs parse, and 2 CPU processes (gloo) train like 1 process
with the same global batch: the same losses, the same held-out figures."""

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from helpers import tiny_model_dir_and_pairs

CONFIGS = {"multi-gpu": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}


def _config_files():
    return sorted(
        p
        for p in (resources.files("smol_align") / "recipes" / "accelerate").iterdir()
        if p.name.endswith(".yaml")
    )


def test_every_shipped_config_is_parsed_by_accelerate_and_shown_in_the_docs():
    from accelerate.commands.config.config_args import load_config_from_file

    page = (Path(__file__).parents[1] / "docs" / "scaling-out.md").read_text()
    assert sorted(p.name for p in _config_files()) == sorted(f"{name}.yaml" for name in CONFIGS)
    for path in _config_files():
        config = load_config_from_file(str(path))
        name = path.name.removesuffix(".yaml")
        assert config.distributed_type.value == CONFIGS[name], name
        assert config.mixed_precision == "bf16" and not config.use_cpu and config.num_processes == 2
        assert f'accelerate launch --config_file "$(smol-align recipes --path {name})"' in page, name
        assert path.read_text().startswith("#"), f"{name}: says what it is for"
    fsdp = load_config_from_file(
        str(resources.files("smol_align") / "recipes/accelerate/fsdp.yaml")
    ).fsdp_config
    assert (
        fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        and fsdp["fsdp_reshard_after_forward"] is True
    )
    zero3 = load_config_from_file(
        str(resources.files("smol_align") / "recipes/accelerate/zero3.yaml")
    ).deepspeed_config
    assert zero3["zero_stage"] == 3 and zero3["zero3_init_flag"] is True


def _train(saved, out, launcher, per_device, method="dpo", preset="cpu"):
    base, pairs = saved
    argv = [
        method,
        "--model",
        str(base),
        "--dataset",
        str(pairs),
        "--preset",
        preset,
        "--bf16",
        "false",
        "--max_steps",
        "6",
        "--per_device_train_batch_size",
        str(per_device),
        "--learning_rate",
        "1e-3",
        "--eval_split",
        "0.2",
        "--output_dir",
        str(out),
        "--quiet",
    ]
    done = subprocess.run([*launcher, "-m", "smol_align", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("method", "preset"), [("dpo", "cpu"), ("orpo", "cpu"), ("dpo", "cpu+lora")])
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, method, preset):
    """accelerate launch --num_processes 2 with 2 pairs each = 1 process with 4 pairs: the same pairs per
    step (accelerate shards each global batch), gradients averaged across processes, so the same run."""
    saved = tiny_model_dir_and_pairs(tmp_path, n_pairs=40)
    one = _train(saved, tmp_path / "one", [sys.executable], 4, method, preset)
    # the shipped DDP config; on a machine without GPUs its torchrun processes train on the CPU (gloo), since the
    # cpu preset's use_cpu=True makes accelerate's state MULTI_CPU (`--cpu` would want MPI for several processes)
    config = str(resources.files("smol_align") / "recipes/accelerate/multi-gpu.yaml")
    two = _train(
        saved,
        tmp_path / "two",
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            config,
            "--num_processes",
            "2",
            "--mixed_precision",
            "no",
        ],
        2,
        method,
        preset,
    )
    assert two["steps"] == one["steps"] == 6 and two["batch_size"] == one["batch_size"] == 4
    # ORPO logs its own train_rewards/margins too
    for key in (
        "train_loss",
        "final_loss",
        "eval_rewards/margins",
        "eval_rewards/accuracies",
        "eval_preference_accuracy",
        "eval_nll_chosen",
        "train_rewards/margins",
    ):
        assert two[key] == pytest.approx(one[key], rel=1e-3, abs=1e-4), key
    assert one["eval_rewards/margins"] > one["start_rewards/margins"]  # and the run learned something

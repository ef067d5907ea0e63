"""The CLI parses argv without training: recipes, flags over recipes, help, presets, errors."""

import subprocess
import sys

import pytest

from smol_align import cli


def test_no_options_passes_nothing_and_the_api_runs_the_demo_recipe():
    """One demo definition: the CLI passes only what was typed; train_dpo() fills in the demo recipe."""
    assert cli.train_options("dpo", []) == {}


def test_flags_take_both_spellings():
    options = cli.train_options("dpo", ["--max-steps", "5", "--learning_rate", "1e-5", "--beta", "0.3"])
    assert options == {"max_steps": 5, "learning_rate": 1e-5, "beta": 0.3}


def test_only_typed_flags_come_through_with_data():
    options = cli.train_options("orpo", ["--dataset", "pairs.jsonl", "--output-dir", "out", "--bf16", "false"])
    assert options == {"dataset": "pairs.jsonl", "output_dir": "out", "bf16": False}


def test_config_recipe_then_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: my/model\ndataset: d.jsonl\npreset: lora\nmax_steps: 10\nbeta: 0.2\n")
    options = cli.train_options("dpo", ["--config", str(recipe), "--max_steps", "20"])
    assert options == {"model": "my/model", "dataset": "d.jsonl", "preset": "lora", "max_steps": 20, "beta": 0.2}


def test_shipped_hh_recipe_parses_and_takes_a_file_and_a_time_budget():
    """recipes/hh-rlhf-cpu.yaml, as its header shows it run offline: every key a typed DPOConfig field."""
    from importlib import resources

    recipe = resources.files("smol_align") / "recipes" / "hh-rlhf-cpu.yaml"
    options = cli.train_options("dpo", ["--config", str(recipe), "--dataset", "hh.jsonl", "--max-time", "12.5"])
    assert options == {"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset": "hh.jsonl", "preset": "auto",
                       "per_device_train_batch_size": 4, "max_length": 512, "beta": 0.1, "learning_rate": 5e-5,
                       "lr_scheduler_type": "constant", "max_time": 12.5}  # fmt: skip


def test_dpo_only_flags_are_not_orpo_flags():
    with pytest.raises(SystemExit):
        cli.train_options("orpo", ["--loss_type", "ipo"])


def test_retired_option_is_a_clear_error(capsys):
    code = cli.main(["dpo", "--dataset", "x.jsonl", "--config", "/nonexistent.yaml"])
    assert code == 2
    assert "Recipe /nonexistent.yaml not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, says",
    [
        ("--beta=-0.5", "beta=-0.5: beta must be positive"),
        ("--max_steps=0", "max_steps=0: transformers reads 0 as a count"),
        ("--learning_rate=0", "learning_rate=0.0: the learning rate must be positive"),
        ("--per_device_train_batch_size=0", "per_device_train_batch_size=0: it must be a whole number"),
    ],
)
def test_settings_that_cannot_learn_are_refused_before_the_model_loads(flag, says, tmp_path, capsys):
    """`--beta=-0.5` trained toward the rejected answers; `--max_steps 0` printed "full epochs" and trained a
    step. A model folder that does not exist shows that nothing was loaded; no output folder is made."""
    out = tmp_path / "run"
    code = cli.main(["dpo", "--model", str(tmp_path / "none"), "--output_dir", str(out), flag])
    assert code == 2 and f"smol-align dpo: error: {says}" in capsys.readouterr().err
    assert not out.exists()


def test_presets_command_lists_them(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("auto", "cpu", "colab-t4", "gpu-bf16", "lora", "qlora-4bit", "full"):
        assert f"\n{name} " in "\n" + out


def test_help_is_fast_and_imports_no_torch():
    code = "import sys, smol_align.cli as c; c.make_parser(); print(any(m.startswith(('torch', 'trl')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_train_help_lists_trl_fields(capsys):
    assert cli.main(["dpo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--beta" in out and "--config" in out and "--preset" in out


def test_python_dash_m_runs():
    proc = subprocess.run([sys.executable, "-m", "smol_align", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("smol-align ")

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
    options = cli.train_options(
        "orpo", ["--dataset", "pairs.jsonl", "--output-dir", "out", "--bf16", "false"]
    )
    assert options == {"dataset": "pairs.jsonl", "output_dir": "out", "bf16": False}


def test_config_recipe_then_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: my/model\ndataset: d.jsonl\npreset: lora\nmax_steps: 10\nbeta: 0.2\n")
    options = cli.train_options("dpo", ["--config", str(recipe), "--max_steps", "20"])
    assert options == {
        "model": "my/model",
        "dataset": "d.jsonl",
        "preset": "lora",
        "max_steps": 20,
        "beta": 0.2,
    }


def test_shipped_hh_recipe_parses_and_takes_a_file_and_a_time_budget():
    """recipes/hh-rlhf-cpu.yaml, as its header shows it run offline: every key a typed DPOConfig field."""
    from importlib import resources

    recipe = resources.files("smol_align") / "recipes" / "hh-rlhf-cpu.yaml"
    options = cli.train_options(
        "dpo", ["--config", str(recipe), "--dataset", "hh.jsonl", "--max-time", "12.5"]
    )
    assert options == {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "dataset": "hh.jsonl",
        "preset": "auto",
        "per_device_train_batch_size": 4,
        "max_length": 512,
        "beta": 0.1,
        "learning_rate": 5e-5,
        "lr_scheduler_type": "constant",
        "max_time": 12.5,
    }


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


# --- eval: the reference is the run's start model, with the model's tokenizer (issue 28) ---


def _run_folder(tmp_path, recorded=None):
    """A saved tiny start model, its pairs, and a "trained" model (its weights moved) in ``run/`` whose
    metrics.json records ``recorded`` (default: the start model's folder) as smol_align's runs do."""
    import json

    import torch
    from helpers import tiny_model_dir_and_pairs

    from smol_align.testing import tiny_model_and_tokenizer

    base, pairs = tiny_model_dir_and_pairs(tmp_path, n_pairs=6)
    model, tokenizer = tiny_model_and_tokenizer()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path / "run")
    tokenizer.save_pretrained(tmp_path / "run")
    metrics = {"method": "dpo", "model": recorded or str(base)}
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    return base, pairs, tmp_path / "run"


def _eval(capsys, *argv):
    import json

    capsys.readouterr()  # what saving the models printed
    code = cli.main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err.rstrip("\n").split("\n")[-1].split("\r")[-1]


def test_eval_without_ref_model_scores_against_the_runs_start_model(tmp_path, capsys):
    from smol_align.data import heldout_pairs
    from smol_align.evaluate import evaluate
    from smol_align.models import load_model

    base, pairs, run = _run_folder(tmp_path)
    code, figures, err = _eval(capsys, "--model", run, "--dataset", pairs)
    assert code == 0, err
    assert figures["reference"] == str(base)  # not the default SmolLM2, whatever was trained
    model, tokenizer = load_model(str(run))
    start = load_model(str(base))[0]
    expected = evaluate(model, heldout_pairs(str(pairs)), ref_model=start, tokenizer=tokenizer)
    assert figures["reward_margin"] == pytest.approx(expected["reward_margin"], abs=1e-6)
    assert figures["reward_margin"] != 0


def test_eval_of_a_lora_run_uses_its_base_with_the_adapters_off(tmp_path, capsys):
    from peft import LoraConfig, get_peft_model

    from smol_align.models import load_model

    base, pairs, _ = _run_folder(tmp_path)
    model, tokenizer = load_model(str(base))
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    lora = get_peft_model(model, config)
    lora.save_pretrained(tmp_path / "lora")
    tokenizer.save_pretrained(tmp_path / "lora")
    code, figures, err = _eval(capsys, "--model", tmp_path / "lora", "--dataset", pairs)
    assert code == 0, err
    assert figures["reference"] == "adapter disabled" and figures["reward_margin"] != 0


def test_eval_asks_for_ref_model_when_nothing_records_the_start_model(tmp_path, capsys):
    base, pairs, run = _run_folder(tmp_path)
    code, _, err = _eval(capsys, "--model", base, "--dataset", pairs)  # a plain model folder: no metrics.json
    assert code == 2
    assert err.startswith(f"smol-align eval: error: Which model did {base} start from? Nothing there records")
    assert "pass that one as --ref-model" in err and "Traceback" not in err
    assert _eval(capsys, "--model", base, "--dataset", pairs, "--ref-model", base)[0] == 0  # given: evaluated


def test_eval_says_when_the_recorded_start_model_is_not_found_from_here(tmp_path, capsys, monkeypatch):
    base, pairs, run = _run_folder(tmp_path, recorded="models/tiny")  # relative to where the run was started
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = _eval(capsys, "--model", run, "--dataset", pairs)
    assert code == 2
    assert f"{run} started from 'models/tiny' (its metrics.json says), a folder not found from here" in err
    assert "--ref-model" in err


def test_eval_finds_a_runs_relative_start_folder_from_another_working_folder(tmp_path, capsys, monkeypatch):
    """A run started from a relative model folder records its absolute path too (start_model_path), so eval
    run from elsewhere scores against that start model instead of failing to find it."""
    from helpers import tiny_model_dir_and_pairs

    import smol_align

    (tmp_path / "work").mkdir()
    base, pairs = tiny_model_dir_and_pairs(tmp_path / "work", n_pairs=12)
    monkeypatch.chdir(tmp_path / "work")
    options = dict(max_steps=1, bf16=False, evaluate=False, per_device_train_batch_size=2, quiet=True)
    smol_align.train_dpo(base.name, str(pairs), "cpu", output_dir="run", **options)
    monkeypatch.chdir(tmp_path)
    code, figures, err = _eval(capsys, "--model", "work/run", "--dataset", pairs)
    assert code == 0, err
    assert figures["reference"] == str(base.resolve())


def test_eval_refuses_a_reference_with_another_tokenizer(tmp_path, capsys):
    from smol_align.testing import tiny_model, tiny_tokenizer

    base, pairs, run = _run_folder(tmp_path)
    other_tokenizer = tiny_tokenizer(vocab_size=300)
    tiny_model(other_tokenizer).save_pretrained(tmp_path / "other")
    other_tokenizer.save_pretrained(tmp_path / "other")
    code, _, err = _eval(capsys, "--model", run, "--dataset", pairs, "--ref-model", tmp_path / "other")
    assert code == 2
    other = tmp_path / "other"
    assert err.startswith(
        f"smol-align eval: error: The reference {other} does not share the tokenizer of {run}: "
        "its vocabulary has 300 tokens against 320"
    )
    assert "encodes differently from token" in err


def test_a_model_folder_without_tokenizer_is_one_error_and_tokenizer_points_elsewhere(tmp_path, capsys):
    """generate (chat and eval load the same way) on a folder with weights but no tokenizer: one paragraph
    naming the folder and --tokenizer, then --tokenizer works; the training verbs take --tokenizer too."""
    import shutil

    from helpers import tiny_model_dir_and_pairs

    import smol_align
    from smol_align.testing import tiny_preference_rows

    base, _ = tiny_model_dir_and_pairs(tmp_path, n_pairs=2)
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(base / name, bare / name)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\n")
    argv = ["generate", "--model", str(bare), "--prompts", str(prompts), "--max-new-tokens", "2"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.rstrip("\n").split("\n")[-1].split("\r")[-1]
    assert err.startswith(f"smol-align generate: error: The model folder {bare} has no tokenizer: none of")
    assert "--tokenizer NAME_OR_FOLDER" in err
    assert cli.main([*argv, "--tokenizer", str(base)]) == 0
    assert cli.train_options("dpo", ["--tokenizer", str(base)]) == {"tokenizer": str(base)}
    rows, out = tiny_preference_rows(4), str(tmp_path / "run")
    trainer = smol_align.build_dpo_trainer(str(bare), rows, "cpu", tokenizer=str(base), output_dir=out)
    assert len(trainer.processing_class) == 320

"""The CLI on TRL's parser: YAML typed as TRL types it, TRL's and the alignment-handbook's names,
one-line errors for unknown flags, retired TRL keys explained, and a handbook recipe that runs."""

import json
from pathlib import Path

import pytest
import yaml
from helpers import tiny_model_dir_and_pairs

from smol_align import cli
from smol_align.errors import ConfigError

HANDBOOK_RECIPE = Path(__file__).parent / "fixtures" / "recipes" / "handbook-smollm2-dpo.yaml"


def test_recipe_values_are_typed_as_trl_types_them(tmp_path):
    """PyYAML reads `5e-6` as a string; TRL's parser makes it the float the field is."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "learning_rate: 5e-6\nmax_steps: '3'\nbf16: false\nreport_to: [none]\n"
        "gradient_checkpointing_kwargs: {use_reentrant: false}\n"
    )
    assert cli.train_options("dpo", ["--config", str(recipe)]) == {
        "learning_rate": 5e-6,
        "max_steps": 3,
        "bf16": False,
        "report_to": ["none"],
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
    }


def test_a_trl_dpo_command_line_carries_over(capsys):
    argv = [
        "--model_name_or_path",
        "m",
        "--dataset_name",
        "d.jsonl",
        "--dataset_train_split",
        "tr",
        "--dataset_test_split",
        "te",
        "--use_peft",
        "--lora_r",
        "8",
        "--lora_alpha",
        "16",
        "--lora_target_modules",
        "q_proj",
        "v_proj",
        "--dtype",
        "bfloat16",
        "--learning_rate",
        "1e-5",
        "--attn_implementation",
        "sdpa",
        "--preset",
        "cpu",
    ]
    assert cli.train_options("dpo", argv) == {
        "model": "m",
        "dataset": "d.jsonl",
        "split": "tr",
        "eval_split": "te",
        "preset": "cpu+lora",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_target_modules": ["q_proj", "v_proj"],
        "dtype": "bfloat16",
        "learning_rate": 1e-5,
    }
    assert "`attn_implementation` is not used: the model loads with" in capsys.readouterr().err


def test_our_names_win_over_trls_and_trls_over_the_handbooks(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "dataset_mixer: {hub/set: 1.0}\ndataset_splits: [a, b]\nmodel: ours\nmodel_name_or_path: theirs\n"
    )
    options = cli.train_options("orpo", ["--config", str(recipe), "--dataset_train_split", "c"])
    assert options == {"dataset": "hub/set", "split": "c", "eval_split": "b", "model": "ours"}
    assert cli.train_options("dpo", ["--use_peft", "--preset", "lora"]) == {"preset": "lora"}


def test_a_mixture_of_datasets_is_refused_with_the_reason(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_mixer: {a/b: 0.5, c/d: 1.0}\n")
    with pytest.raises(ConfigError, match="one dataset: mix them beforehand"):
        cli.train_options("dpo", ["--config", str(recipe)])


def test_an_unknown_flag_is_one_line_with_the_closest_names(capsys):
    assert cli.main(["dpo", "--lerning_rate", "1e-5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown option --lerning_rate; did you mean --learning_rate" in err
    assert "`smol-align dpo --help`" in err
    assert cli.main(["dpo", "--evaluation_strategy", "steps"]) == 2  # the pre-1.0 name: today's name
    assert "did you mean --eval_strategy?" in capsys.readouterr().err
    assert cli.main(["compare", "--beta", "0.1", "--methods", "orpo", "--los_type", "ipo"]) == 2
    assert "unknown option --los_type" in capsys.readouterr().err


def test_an_unknown_recipe_key_is_an_error_with_the_closest_names(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learnin_rate: 1.0e-5\n")
    assert cli.main(["dpo", "--config", str(recipe)]) == 2
    assert "unknown recipe key 'learnin_rate'; did you mean --learning_rate" in capsys.readouterr().err


def test_a_retired_trl_key_is_explained_as_in_python(tmp_path, capsys):
    """Typed, it is refused with the Python API's reason; in a recipe (written for an older TRL,
    like the handbook's) it is left out with that reason and the rest of the recipe runs."""
    from smol_align.presets import RETIRED

    assert cli.main(["dpo", "--max_prompt_length", "512"]) == 2
    assert RETIRED["max_prompt_length"] in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_prompt_length: 512\nbeta: 0.2\n")
    assert cli.train_options("dpo", ["--config", str(recipe)]) == {"beta": 0.2}
    assert (
        f"`max_prompt_length` in the recipe is not used: gone in TRL 1.x: {RETIRED['max_prompt_length']}"
        in capsys.readouterr().err
    )


def test_every_key_of_the_handbook_recipe_is_used_or_refused_with_a_reason(capsys):
    recipe = yaml.safe_load(HANDBOOK_RECIPE.read_text())
    options = cli.train_options("dpo", ["--config", str(HANDBOOK_RECIPE)])
    err = capsys.readouterr().err
    mapped = {
        "model_name_or_path": "model",
        "torch_dtype": "dtype",
        "dataset_mixer": "dataset",
        "dataset_splits": "split",
        "preprocessing_num_workers": "dataset_num_proc",
        "warmup_ratio": "warmup_steps",
    }
    for key in recipe:
        assert mapped.get(key, key) in options or f"`{key}` in the recipe is not used" in err, key
    assert (
        options["model"] == "loubnabnl/smollm2-360M-sft"
        and options["dataset"] == "HuggingFaceH4/ultrafeedback_binarized"
    )
    assert (options["split"], options["eval_split"], options["dataset_num_proc"]) == (
        "train_prefs",
        "test_prefs",
        12,
    )
    assert options["learning_rate"] == 1e-6 and options["report_to"] == ["tensorboard", "wandb"]
    assert "max_prompt_length" not in options and "`max_prompt_length`" in err


def test_the_handbook_recipe_runs_two_steps_on_the_tiny_model(tmp_path, capsys):
    """Model and data point at local tiny ones; no GPU (bf16 off), no network (no push, no
    trackers); every other value is the recipe's own."""
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "run"
    code = cli.main(
        [
            "dpo",
            "--config",
            str(HANDBOOK_RECIPE),
            "--model_name_or_path",
            str(base),
            "--dataset_name",
            str(pairs),
            "--dataset_splits",
            "train",
            "--max_steps",
            "2",
            "--bf16",
            "false",
            "--push_to_hub",
            "false",
            "--report_to",
            "none",
            "--preprocessing_num_workers",
            "1",
            "--output_dir",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2, metrics
    assert (out / "model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"  # torch_dtype was used

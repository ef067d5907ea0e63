"""``smol-align sft|dpo|orpo|kto|compare --help``: smol_align's options first, then TRL's by dataclass, each
group under its title and each flag once; the parse is the same whatever order the help lists the flags in."""

import dataclasses
import re
from pathlib import Path

import pytest

from smol_align import cli
from smol_align.options import DataOptions, RunOptions

VERBS = ["sft", "dpo", "orpo", "kto", "compare"]
OURS = ["--help", "--config", "--model", "--dataset", "--preset", "--output_dir", "--tokenizer"]
TRL_ONLY = ["--learning_rate", "--dataset_name", "--model_name_or_path"]  # TRL's dataclasses, not ours


def _help(verb: str, capsys) -> list[str]:
    assert cli.main([verb, "--help"]) == 0
    return capsys.readouterr().out.splitlines()


def _option_lines(lines: list[str]) -> list[tuple[int, list[str]]]:
    """``(line index, option strings)`` of each flag's line, e.g. ``  --max_steps, --max-steps MAX_STEPS``."""
    found = []
    for i, line in enumerate(lines):
        if re.match(r"  -", line):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found.append((i, re.findall(r"(?:^|, )(--?[\w-]+)", invocation)))
    return found


def _ours(verb: str) -> list[str]:
    fields = [
        *dataclasses.fields(DataOptions),
        *(() if verb == "compare" else dataclasses.fields(RunOptions)),
    ]
    extra = {"dpo": ["--constraint"], "compare": ["--methods", "--time_budget", "--no_save"]}
    return OURS + extra.get(verb, []) + [f"--{f.name}" for f in fields]


@pytest.mark.parametrize("verb", VERBS)
def test_our_options_come_first_then_trls(verb, capsys):
    lines = _help(verb, capsys)
    assert lines[0].startswith(f"usage: smol-align {verb} ")
    titles = [line for line in lines[1:] if re.match(r"\S.*:$", line)]
    assert titles[0] == "smol-align options:"
    where = {flag: i for i, flags in _option_lines(lines) for flag in flags}
    first_trl = min(where[flag] for flag in TRL_ONLY)
    late = [flag for flag in _ours(verb) if where[flag] > first_trl]  # KeyError: a flag of ours is missing
    assert not late, f"smol_align's {late} listed after TRL's first flag (line {first_trl})"


@pytest.mark.parametrize("verb", VERBS)
def test_each_group_has_a_title_naming_whose_options_they_are(verb, capsys):
    config = {"sft": "SFTConfig", "orpo": "ORPOConfig", "kto": "KTOConfig"}.get(verb, "DPOConfig")
    lines = _help(verb, capsys)
    titles = [line for line in lines[1:] if re.match(r"\S.*:$", line)]
    assert titles == [
        "smol-align options:",
        *(() if verb == "compare" else ["run (smol_align RunOptions):"]),
        "data (smol_align DataOptions):",
        "data (TRL ScriptArguments; --dataset_name is --dataset):",
        f"training (TRL {config}):",
        "model (TRL ModelConfig; --model_name_or_path is --model):",
        "alignment-handbook recipe keys:",
    ]
    page = "orpo" if verb == "compare" else verb
    assert lines[-1] == f"Guide: https://smol-align.github.io/smol-align/methods/{page}/"


@pytest.mark.parametrize("verb", VERBS)
def test_no_flag_is_listed_twice(verb, capsys):
    """A spelling with dashes is the same flag (``--output-dir`` is ``--output_dir``): had ours named only
    ``--output-dir``, TRL's ``--output_dir`` would be left beside it, listed (and parsed) apart."""
    seen = {}
    for i, flags in _option_lines(_help(verb, capsys)):
        for name in {flag.lstrip("-").replace("-", "_") for flag in flags}:
            assert name not in seen, f"--{name} is listed on help lines {seen[name] + 1} and {i + 1}"
            seen[name] = i


def test_a_flag_shows_its_value_once_after_its_spellings(capsys):
    lines = _help("dpo", capsys)
    assert "  --max_steps, --max-steps MAX_STEPS" in lines
    assert any(line.startswith("  --output_dir, --output-dir OUTPUT_DIR") for line in lines)


def test_the_guide_is_under_the_documentation_url_of_the_package():
    pyproject = Path(cli.__file__).parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("an installed package: no pyproject.toml beside it")
    assert re.search(r'^Documentation = "(.+)"', pyproject.read_text(), re.M).group(1) == cli.DOCS


RECIPE = "model: my/model\ndataset: d.jsonl\npreset: lora\nmax_steps: 10\nbeta: 0.2\nbf16: true\n"
PARSES = [  # argv -> the keywords, as smol-align parsed them before its help was grouped
    (["--bf16", "false"], {"bf16": False}),
    (["--fp16", "true"], {"fp16": True}),
    (["--load_in_4bit"], {"load_in_4bit": True}),
    (["--load-in-4bit", "false"], {"load_in_4bit": False}),
    (["--max-steps", "5", "--learning_rate", "1e-5"], {"max_steps": 5, "learning_rate": 1e-5}),
    (
        ["--model", "m", "--dataset", "d.jsonl", "--preset", "cpu", "--output-dir", "o", "--tokenizer", "t"],
        {"model": "m", "dataset": "d.jsonl", "preset": "cpu", "output_dir": "o", "tokenizer": "t"},
    ),
    (
        ["--output_dir", "o2", "--quiet", "--overwrite", "--no_save", "--resume", "--max-time", "3"],
        {
            "output_dir": "o2",
            "quiet": True,
            "overwrite": True,
            "save": False,
            "resume": True,
            "max_time": 3.0,
        },
    ),
    (
        ["--eval-split", "0.2", "--columns", "prompt=q,chosen=a,rejected=b", "--drop_identical"],
        {
            "eval_split": 0.2,
            "columns": {"prompt": "q", "chosen": "a", "rejected": "b"},
            "drop_identical": True,
        },
    ),
    (
        ["--model_name_or_path", "x/y", "--dataset_name", "ds", "--use_peft", "--lora_r", "8"],
        {"model": "x/y", "dataset": "ds", "preset": "lora", "lora_r": 8},
    ),
    (
        ["--adam_beta1", "0.8", "--adam-beta2", "0.99", "--no_gradient_checkpointing"],
        {"adam_beta1": 0.8, "adam_beta2": 0.99, "gradient_checkpointing": False},
    ),
    (
        ["--torch_dtype", "float32", "--preprocessing_num_workers", "2"],
        {"dtype": "float32", "dataset_num_proc": 2},
    ),
]


@pytest.mark.parametrize("verb", ["sft", "dpo", "orpo", "kto"])
@pytest.mark.parametrize("argv, expected", PARSES, ids=[" ".join(argv) for argv, _ in PARSES])
def test_the_parse_is_as_before(verb, argv, expected):
    assert cli.train_options(verb, argv) == expected


def test_a_recipe_then_flags_parse_as_before(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    options = cli.train_options(
        "dpo", ["--config", str(tmp_path / "r.yaml"), "--max_steps", "20", "--bf16", "false"]
    )
    assert options == {
        "model": "my/model",
        "dataset": "d.jsonl",
        "preset": "lora",
        "max_steps": 20,
        "beta": 0.2,
        "bf16": False,
    }
    assert cli.train_options(
        "dpo", ["--config", "hh-rlhf-cpu", "--max-steps", "1", "--constraint", "dpop:5"]
    ) == {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "dataset": "Anthropic/hh-rlhf",
        "preset": "auto",
        "per_device_train_batch_size": 4,
        "max_length": 512,
        "beta": 0.1,
        "learning_rate": 5e-5,
        "lr_scheduler_type": "constant",
        "max_steps": 1,
        "constraints": ["dpop:5"],
    }


def test_compare_parses_as_before():
    argv = ["--methods", "dpo,orpo", "--time-budget", "60", "--no-save", "--overwrite", "--quiet"]
    assert cli.compare_options([*argv, "--bf16", "false", "--output-dir", "o"]) == {
        "methods": "dpo,orpo",
        "time_budget": 60.0,
        "save": False,
        "overwrite": True,
        "quiet": True,
        "bf16": False,
        "output_dir": "o",
    }

"""The recipes and accelerate configs shipped in the package are reachable by name, from any folder."""

import subprocess
import sys

import pytest

from smol_align import cli
from smol_align.errors import ConfigError
from smol_align.shipped import config_path, find, shipped


def test_every_shipped_yaml_has_a_name_and_a_file():
    known = shipped()
    assert {"hh-rlhf-cpu", "demo-dpo", "multi-gpu", "fsdp", "zero2", "zero3"} <= set(known)
    for name, (_, path) in known.items():
        assert path.is_file() and path.stem == name


def test_a_name_finds_the_packaged_file_and_a_real_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find("hh-rlhf-cpu") == find("hh-rlhf-cpu.yaml") == shipped()["hh-rlhf-cpu"][1]
    mine = tmp_path / "hh-rlhf-cpu.yaml"
    mine.write_text("beta: 0.2\n")
    assert config_path("hh-rlhf-cpu.yaml") == "hh-rlhf-cpu.yaml"  # the user's own file, not ours
    assert config_path("hh-rlhf-cpu") == str(shipped()["hh-rlhf-cpu"][1])


def test_an_unknown_name_says_what_is_shipped():
    with pytest.raises(
        ConfigError,
        match=r"Recipe hh-rlhf-cp not found: no such file, and no recipe.*Did you mean hh-rlhf-cpu",
    ):
        config_path("hh-rlhf-cp")


def test_the_cli_reads_a_recipe_by_name_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = cli.train_options("dpo", ["--config", "hh-rlhf-cpu", "--max-steps", "1"])
    assert options["max_steps"] == 1
    assert options["learning_rate"] == 5e-5 and options["max_length"] == 512  # from the recipe


def test_recipes_lists_shows_and_prints_paths(tmp_path):
    def smol(*argv):
        done = subprocess.run(
            [sys.executable, "-m", "smol_align", "recipes", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        return done.returncode, done.stdout, done.stderr

    code, out, _ = smol()
    assert code == 0 and "hh-rlhf-cpu" in out and "multi-gpu" in out and "accelerate config" in out
    code, out, _ = smol("--show", "hh-rlhf-cpu")
    assert code == 0 and out == shipped()["hh-rlhf-cpu"][1].read_text()
    code, out, _ = smol("--path", "multi-gpu")
    assert code == 0 and out.strip() == str(shipped()["multi-gpu"][1])
    code, _, err = smol("--path", "multi-gpus")
    assert code == 2 and "Did you mean multi-gpu" in err

"""The course notebooks and exercise scripts: stored clean, and run top to bottom in smoke mode.

Every ``notebooks/*.ipynb`` is executed with nbclient (the ``python3`` kernel) with
``SMOL_ALIGN_SMOKE=1``, which its ``parameters`` cell turns into the embedded SmolLM2, the built-in
demo data and a handful of steps; any cell error fails the test. Each notebook asserts on its own
figures, so a smoke run that trains but does not learn fails too: the held-out reward margin grew
(dpo_finetuning, orpo_finetuning, dpo_vs_orpo; orpo_finetuning also its held-out ORPO loss fell),
and dpo_loss_from_scratch's hand-written loss equals TRL's and sits below log 2 after training.
Each run happens in a temporary folder, so the ``runs/`` it writes never lands in the repository.
The exercise scripts run with ``--smoke`` likewise (one per method; all three show their commands
in ``--help``) and must grow the held-out margin as well.

Run one by hand:  python -m pytest tests/test_notebooks.py -k dpo_finetuning -s
The smoke timings are printed (``-s``) and written to ``$SMOL_ALIGN_TIMINGS`` when it is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCRIPTS = ["dpo_hh_rlhf.py", "orpo_mix.py", "dpo_ultrafeedback.py"]
# Run end to end with --smoke: one per method. dpo_ultrafeedback.py runs the very code of
# dpo_hh_rlhf.py (scripts/_exercise.py) with other defaults, so its --help is checked only.
SMOKE_SCRIPTS = ["dpo_hh_rlhf.py", "orpo_mix.py"]
CELL_TIMEOUT = 600  # seconds, per cell
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _ids(paths):
    return [p.stem for p in paths]


def smoke_env(**extra) -> dict[str, str]:
    """The environment of a smoke run: offline, the smoke switch on, ``OMP_NUM_THREADS`` 2 unless set."""
    env = dict(os.environ)
    env.update(
        SMOL_ALIGN_SMOKE="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRL_EXPERIMENTAL_SILENCE="1",
        WANDB_DISABLED="true",
        TOKENIZERS_PARALLELISM="false",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    env.setdefault("OMP_NUM_THREADS", "2")
    env.update(extra)
    return env


def parameters_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]


def execute_notebook(
    path: Path, cwd: Path, env: dict[str, str], parameters: dict | None = None, timeout: int = CELL_TIMEOUT
):
    """Run ``path`` top to bottom in ``cwd`` with ``env``; return the executed notebook.

    ``parameters`` (a dict) is injected as a cell after the ``parameters`` cell, as papermill does:
    ``execute_notebook(p, tmp, env, {"MAX_STEPS": 30})``. Raises ``nbclient.exceptions.CellExecutionError``
    on the first cell that fails.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if parameters:
        index = nb.cells.index(parameters_cells(nb)[0])
        source = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        injected = nbformat.v4.new_code_cell(f"# injected parameters\n{source}")
        injected.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(index + 1, injected)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(cwd=str(cwd), env=env)  # both go to the kernel's start
    return nb


def _record(name: str, seconds: float) -> None:
    print(f"\n[smoke timing] {name}: {seconds:.0f} s")
    target = os.environ.get("SMOL_ALIGN_TIMINGS")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = round(seconds, 1)
        path.write_text(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Stored notebooks: clean, with their parameters cell and badge
# ---------------------------------------------------------------------------------------------


def test_the_four_course_notebooks_exist():
    assert set(_ids(NOTEBOOKS)) >= {
        "dpo_finetuning",
        "orpo_finetuning",
        "dpo_vs_orpo",
        "dpo_loss_from_scratch",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_clean(path):
    """No outputs, no execution counts: the repository holds the notebook, not one run of it."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: strip them (jupyter nbconvert --clear-output)"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_parameters_cell_badge_and_install(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    params = parameters_cells(nb)
    assert len(params) == 1, "exactly one code cell tagged `parameters`"
    source = params[0].source
    assert 'os.environ.get("SMOL_ALIGN_SMOKE") == "1"' in source
    for name in ("MODEL", "DATASET", "MAX_STEPS", "PRESET"):
        assert f"\n{name} = " in "\n" + source, f"the parameters cell sets {name}"

    badge_url = (
        f"https://colab.research.google.com/github/smol-align/smol-align/blob/main/notebooks/{path.name}"
    )
    first = nb.cells[0]
    assert first.cell_type == "markdown" and COLAB_BADGE in first.source and badge_url in first.source

    install = [c for c in nb.cells if c.cell_type == "code" and "pip install" in c.source]
    assert len(install) == 1 and 'if "google.colab" in sys.modules:' in install[0].source
    assert (
        "torch" not in install[0].source.split("pip install", 1)[1].splitlines()[0]
    )  # never reinstall torch
    assert nb.cells.index(install[0]) < nb.cells.index(params[0])


# ---------------------------------------------------------------------------------------------
# Execution in smoke mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    # nbclient and ipykernel come with the `dev` extra (scripts/setup.sh): missing, this fails, not skips
    started = time.perf_counter()
    nb = execute_notebook(path, tmp_path, smoke_env())
    _record(path.stem, time.perf_counter() - started)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors


# ---------------------------------------------------------------------------------------------
# Exercise scripts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_shows_the_commands(script):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=smoke_env(),
        check=True,
    ).stdout
    assert "--smoke" in out and "python scripts/" + script in out


def _exercise_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import _exercise
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return _exercise


def test_scripts_subset_and_heldout_of_a_dataset_without_test_split(tmp_path):
    """A random subset to train on and, with no test split, held-out pairs the subset does not
    contain; the orpo mix's excluded sources are left out of both."""
    import argparse

    rows = []
    for i in range(40):
        prompt = {"role": "user", "content": f"What is {i} + 1?"}
        rows.append(
            {
                "source": "toxic-dpo-v0.2" if i % 4 == 0 else "capybara",
                "prompt": prompt["content"],
                "chosen": [prompt, {"role": "assistant", "content": f"It is {i + 1}."}],
                "rejected": [prompt, {"role": "assistant", "content": "No idea."}],
            }
        )
    path = tmp_path / "mix.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    exercise = _exercise_module()

    def load(subset, exclude=()):
        args = argparse.Namespace(smoke=False, dataset=str(path), subset=subset, eval_pairs=5, seed=0)
        return exercise.load_data(args, exclude_sources=exclude)

    def prompts(pairs):
        return [row["prompt"][-1]["content"] for row in pairs]

    train, test = load(12, exclude=("toxic-dpo-v0.2",))
    assert (len(train), len(test)) == (12, 5)
    assert not set(prompts(train)) & set(prompts(test))
    assert all(row["source"] == "capybara" for row in [*train, *test])
    train, test = load(0)  # 0: every pair not held out
    assert (len(train), len(test)) == (35, 5) and not set(prompts(train)) & set(prompts(test))


@pytest.mark.slow
@pytest.mark.parametrize("script", SMOKE_SCRIPTS)
def test_script_runs_in_smoke_mode(script, tmp_path):
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--smoke", "--output-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env=smoke_env(),
    )
    _record(script, time.perf_counter() - started)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").exists()
    assert "reward accuracy" in done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # it learned: the held-out (demo test split) reward margin grew from the start model's 0
    assert metrics["eval_rewards/margins"] > metrics["start_rewards/margins"], metrics

"""The output folder's keeper (smol_align.rundir), with real processes where the issue says so: --overwrite
never empties the working folder, a parent of the data or a folder with foreign files; two runs on one folder:
one runs, one is refused at once naming the first; a resume skips an incomplete checkpoint; a full disk says
what is kept; and a fuzz over overwrite targets where nothing the user owned is ever deleted."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SLOW_CLI as CHILD
from helpers import tiny_model_dir_and_pairs

import smol_align
from smol_align import rundir
from smol_align.errors import ConfigError
from smol_align.rundir import LOCK, MARKER, STAGING, DiskFull, FolderBusy, check, checkpoint_problem

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tiny_model_dir_and_pairs(tmp_path_factory.mktemp("rundir"), n_pairs=40)


def _env():
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def _argv(model, pairs, out, *extra, steps=STEPS):
    return [
        "dpo",
        "--model",
        str(model),
        "--dataset",
        str(pairs),
        "--preset",
        "cpu",
        "--bf16",
        "false",
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-3",
        "--eval_split",
        "0.2",
        "--output_dir",
        str(out),
        "--quiet",
        *extra,
    ]


def _start(argv, delay=0.3, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(delay), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        cwd=cwd,
    )


def _run(argv, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-c", CHILD, "0", *argv],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=timeout,
    )


def _wait_for(check_fn, proc, what, timeout=180):
    deadline = time.time() + timeout
    while not check_fn():
        assert proc.poll() is None, f"the run ended before {what}:\n{proc.stdout.read()}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_of_the_working_folder_deletes_nothing(saved, tmp_path):
    """The repro: `smol-align dpo ... --output-dir . --overwrite` in a folder holding the data and files."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "pairs.jsonl").write_bytes(saved[1].read_bytes())
    (work / "notes.txt").write_text("my notes")
    (work / "old").mkdir()
    (work / "old" / "metrics.json").write_text("{}")
    before = _snapshot(work)
    done = _run(_argv(saved[0], "pairs.jsonl", ".", "--overwrite", steps=1), cwd=work)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: overwrite=True would empty ., and it is the current folder" in done.stderr, done.stderr
    assert _snapshot(work) == before


def test_two_processes_on_one_folder_one_runs_one_is_refused_naming_the_first(saved, tmp_path):
    """The repro: two runs on one --output-dir. The second (with --overwrite, even) stops at once naming the
    first; the first finishes and its model is intact."""
    out = tmp_path / "twin"
    first = _start(_argv(*saved, out), delay=2.5)  # 30 s of training: the second starts (imports) meanwhile
    marker = out / MARKER

    def first_marked():
        try:
            return json.loads(marker.read_text()).get("pid") == first.pid
        except (OSError, ValueError):
            return False

    _wait_for(first_marked, first, "the first run's marker")
    second = _run(_argv(*saved, out, "--overwrite"))
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"is in use by another smol_align run (pid {first.pid} on " in second.stderr, second.stderr
    assert "one run at a time per folder" in second.stderr
    assert first.poll() is None  # refused while the first runs, at once: before loading any data or model
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    names = sorted(p.name for p in out.iterdir())
    assert (
        "model.safetensors" in names and "metrics.json" in names and MARKER not in names and LOCK not in names
    )
    assert json.loads((out / "metrics.json").read_text())["steps"] == STEPS
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # the finished model is whole


def test_kill_then_resume_skips_an_incomplete_checkpoint_and_keeps_the_settings(saved, tmp_path):
    """SIGKILL mid-run, then the last checkpoint loses trainer_state.json (a save cut short): --resume says it
    skips it and continues from the one before; a new learning rate on resume is refused, not recorded."""
    out = tmp_path / "cut"
    argv = _argv(*saved, out, "--save_steps", "2", "--save_total_limit", "2")
    proc = _start(argv)
    _wait_for(lambda: (out / "checkpoint-6" / "trainer_state.json").exists(), proc, "checkpoint-6")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = rundir.checkpoints(out)
    assert len(kept) >= 2 and (out / MARKER).exists(), kept
    newest, previous = kept[0], kept[1]
    (newest / "trainer_state.json").unlink()
    assert checkpoint_problem(newest) == "trainer_state.json is missing (the save was cut short)"

    changed = _run([*argv, "--resume", "--learning_rate", "5e-4"])
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert (
        "whose optimizer and scheduler state hold learning_rate=0.001; this run asks for learning_rate=0.0005"
        in changed.stderr
    )
    assert rundir.checkpoints(out) == kept and (out / MARKER).exists()  # the refusal left the run resumable

    resumed = _run([a for a in argv if a != "--quiet"] + ["--resume"])  # not quiet: it says what it skipped
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Skipped {newest.name}: trainer_state.json is missing (the save was cut short)." in resumed.stdout
    assert f"Resuming from {previous.name}, the newest complete one." in resumed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == STEPS and metrics["resumed_from"] == previous.name
    assert metrics["learning_rate"] == 1e-3
    assert (out / "model.safetensors").exists() and not (out / MARKER).exists() and not (out / LOCK).exists()


@pytest.mark.parametrize("where, last", [("checkpoint", "checkpoint-1"), ("final save", "checkpoint-3")])
def test_a_full_disk_says_what_is_kept_and_the_run_resumes(
    tiny_model, tiny_tokenizer, tmp_path, monkeypatch, where, last
):
    """The disk fills while the second checkpoint's optimizer state is written, or while the final files are:
    one paragraph names the folder, says the disk is full and which checkpoint is kept; the run resumes (after
    the final save, from the last step's checkpoint, with no step trained past max_steps)."""
    import torch
    from trl import DPOTrainer

    from smol_align.testing import tiny_preference_rows

    out, saves = tmp_path / "full", []
    real_save, real_save_model = torch.save, DPOTrainer.save_model

    def torch_save(obj, f, *args, **kwargs):  # the second checkpoint's optimizer state: no space left
        saves.append(str(f))
        if str(f).endswith("checkpoint-2/optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    def save_model(self, output_dir=None, *args, **kwargs):  # the final files: no space left
        if STAGING in str(output_dir):
            raise OSError(errno.ENOSPC, "No space left on device", str(output_dir))
        return real_save_model(self, output_dir, *args, **kwargs)

    if where == "checkpoint":
        monkeypatch.setattr(torch, "save", torch_save)
    else:
        monkeypatch.setattr(DPOTrainer, "save_model", save_model)
    options = dict(
        tokenizer=tiny_tokenizer,
        bf16=False,
        evaluate=False,
        max_steps=3,
        per_device_train_batch_size=2,
        save_steps=1,
        quiet=True,
    )
    with pytest.raises(DiskFull) as raised:
        smol_align.train_dpo(tiny_model, tiny_preference_rows(24), "cpu", output_dir=str(out), **options)
    assert str(raised.value).startswith(
        f"The disk holding {out} is full: the run could not write its files there"
    )
    assert f"Kept: {out / last}, the last complete checkpoint" in str(raised.value)
    assert "--resume" in str(raised.value)
    assert (out / MARKER).exists() and not (out / STAGING).exists() and not (out / LOCK).exists()
    assert checkpoint_problem(out / last) is None
    monkeypatch.undo()
    from safetensors.torch import load_file

    from smol_align.testing import tiny_model as fresh_model

    kept = load_file(str(out / last / "model.safetensors"))
    result = smol_align.train_dpo(
        fresh_model(tiny_tokenizer),
        tiny_preference_rows(24),
        "cpu",
        output_dir=str(out),
        resume=True,
        **options,
    )
    assert result.metrics["steps"] == 3 and result.metrics["resumed_from"] == last
    assert (out / "model.safetensors").exists() and not (out / MARKER).exists()
    saved = load_file(str(out / "model.safetensors"))
    if where == "final save":  # the run's end, restored: the checkpoint's weights, no step past max_steps
        assert all(torch.equal(saved[k], v) for k, v in kept.items())
    else:  # trained on from it: steps 2 and 3
        assert not all(torch.equal(saved[k], v) for k, v in kept.items())


# --- The fuzz: overwrite targets; each refused cleanly or proceeds, nothing the user owned is deleted ---
RUN_NAMES = [
    "metrics.json",
    "report.md",
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "training.png",
    "checkpoint-3",
    "events.out.tfevents.1.host",
    MARKER,
    STAGING,
]
FOREIGN_NAMES = [
    "notes.txt",
    "data.csv",
    "my_model.py",
    "photo.png",
    "train.jsonl",
    "src",
    "checkpoint-x",
    ".env",
]


def _make(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.startswith("checkpoint-") or name in ("src", STAGING):
            (folder / name).mkdir(exist_ok=True)
            (folder / name / "file.bin").write_bytes(b"x")
        else:
            (folder / name).write_text(name)


def test_fuzz_overwrite_checks_random_folders(tmp_path):
    """300 random folders of run files and foreign files: refused when anything foreign is there or nothing
    says smol_align made it, else allowed; the check writes nothing either way."""
    rng = random.Random(0)
    for i in range(300):
        folder = tmp_path / f"f{i}"
        ours = rng.sample(RUN_NAMES, rng.randint(0, 4))
        theirs = rng.sample(FOREIGN_NAMES, rng.choice([0, 0, 1, 2]))
        _make(folder, ours + theirs)
        nested = rng.random() < 0.2  # a compare/iterate folder: a finished run inside
        if nested:
            _make(
                folder / "dpo",
                ["metrics.json", "model.safetensors"] + rng.sample(FOREIGN_NAMES[:3], rng.randint(0, 1)),
            )
        before = _snapshot(folder)
        foreign = theirs or (nested and (set(os.listdir(folder / "dpo")) & set(FOREIGN_NAMES)))
        owned = "metrics.json" in ours or MARKER in ours
        try:
            check(folder, overwrite=True)
            allowed = True
        except ConfigError as err:
            allowed, message = False, str(err)
        assert _snapshot(folder) == before
        empty = not ours and not theirs and not nested
        assert allowed == (empty or (owned and not foreign)), (ours, theirs, nested)
        if foreign and not allowed:
            assert "holds files a run does not write" in message, message
            assert "move those away or pass another output_dir" in message


FOREIGN = "which holds files a run does not write"


def test_fuzz_overwrite_targets_through_a_real_run(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    """Each target of overwrite=True: refused with a clear error, or the run proceeds; either way every
    file the user owns is still there, byte for byte."""
    from smol_align.testing import tiny_preference_rows

    home, work = tmp_path / "home", tmp_path / "home" / "work"
    _make(home, ["diary.txt"])
    _make(work, ["notes.txt"])
    data = work / "data" / "pairs.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps(r) + "\n" for r in tiny_preference_rows(12)))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    options = dict(
        tokenizer=tiny_tokenizer,
        bf16=False,
        evaluate=False,
        max_steps=1,
        per_device_train_batch_size=2,
        quiet=True,
        overwrite=True,
    )
    smol_align.train_dpo(
        tiny_model, str(data), "cpu", output_dir="runs/finished", **{**options, "overwrite": False}
    )
    _make(work / "runs" / "unfinished", [MARKER, "checkpoint-2"])
    _make(work / "runs" / "finished-plus", ["metrics.json", "model.safetensors", "keep-me.txt"])
    _make(work / "runs" / "a-model", ["config.json", "model.safetensors"])
    _make(work / "runs" / "foreign", ["results.csv"])
    (work / "runs" / "empty").mkdir()
    (work / "runs" / "a-file").write_text("not a folder")
    user = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "runs" not in p.parts}
    user.update(
        {
            p: p.read_bytes()
            for p in (work / "runs").rglob("*")
            if p.name in ("keep-me.txt", "results.csv", "config.json", "a-file") or p.parent.name == "a-model"
        }
    )
    cases = {  # target -> the start of the error, or None: the run proceeds
        ".": "overwrite=True would empty ., and it is the current folder",
        "..": "overwrite=True would empty .., and it holds the current folder",
        str(home): f"overwrite=True would empty {home}, and it holds the current folder",
        "data": f"overwrite=True would empty data, and it holds this run's input {data}",
        "runs/foreign": f"overwrite=True would empty runs/foreign, {FOREIGN}: results.csv",
        "runs/finished-plus": f"overwrite=True would empty runs/finished-plus, {FOREIGN}: keep-me.txt",
        "runs/a-model": "overwrite=True would empty runs/a-model, which holds no smol_align run",
        "runs/a-file": "Output directory runs/a-file is a file, not a folder",
        "runs/finished": None,
        "runs/unfinished": None,
        "runs/empty": None,
        "runs/missing": None,
    }
    targets = list(cases)
    random.Random(1).shuffle(targets)
    for target in targets:
        expected = cases[target]
        if expected is None:
            result = smol_align.train_dpo(tiny_model, str(data), "cpu", output_dir=target, **options)
            names = {p.name for p in Path(target).iterdir()}
            assert result.metrics["steps"] == 1 and "model.safetensors" in names, target
            assert not names & {MARKER, LOCK, STAGING, "checkpoint-2"}, (target, names)
        else:
            with pytest.raises(ConfigError) as raised:
                smol_align.train_dpo(tiny_model, str(data), "cpu", output_dir=target, **options)
            assert str(raised.value).startswith(expected), (target, str(raised.value))
        for path, content in user.items():
            assert path.is_file() and path.read_bytes() == content, (target, path)


def test_home_and_filesystem_roots_are_never_emptied(tmp_path, monkeypatch):
    """Checked without a run (a run on "/" must never get that far): the home folder and a filesystem root."""
    home = tmp_path / "home"
    _make(home, ["metrics.json"])  # even one that looks like a run
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="and it is the home folder"):
        check(home, overwrite=True)
    with pytest.raises(ConfigError, match="overwrite=True would empty /, and it holds the current folder"):
        check(Path("/"), overwrite=True)
    assert (home / "metrics.json").exists()


def test_a_held_folder_refuses_a_second_holder_in_the_same_process(tmp_path):
    """The lock is per holder, not per process: a second RunDir on a held folder is refused, naming it."""
    out = tmp_path / "held"
    with rundir.RunDir(out) as first:
        assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MARKER])
        with pytest.raises(FolderBusy, match=rf"in use by another smol_align run \(pid {os.getpid()} on "):
            with rundir.RunDir(out, overwrite=True):
                pass
        assert (out / MARKER).exists()
        first.finish()
    assert list(out.iterdir()) == []  # finished: the lock and the marker are gone


def test_a_checkpoint_is_complete_only_with_every_file_trainer_resumes_from(
    tiny_model, tiny_tokenizer, tmp_path
):
    """A real checkpoint, then one file missing or cut short at a time: each is named as the reason."""
    import shutil

    from smol_align.testing import tiny_preference_rows

    out = tmp_path / "run"
    smol_align.train_dpo(
        tiny_model,
        tiny_preference_rows(12),
        "cpu",
        output_dir=str(out),
        tokenizer=tiny_tokenizer,
        bf16=False,
        evaluate=False,
        max_steps=1,
        per_device_train_batch_size=2,
        save_steps=1,
        quiet=True,
    )
    good = out / "checkpoint-1"
    assert checkpoint_problem(good) is None
    cases = {
        ("trainer_state.json", "missing"): "trainer_state.json is missing (the save was cut short)",
        ("trainer_state.json", "cut"): "trainer_state.json does not parse",
        ("model.safetensors", "missing"): "it holds no weights",
        ("model.safetensors", "cut"): "model.safetensors is cut short",
        ("optimizer.pt", "missing"): "optimizer.pt is missing",
        ("optimizer.pt", "cut"): "optimizer.pt cannot be read",
        ("scheduler.pt", "missing"): "scheduler.pt is missing",
        ("scheduler.pt", "cut"): "scheduler.pt cannot be read",
        ("rng_state.pth", "cut"): "rng_state.pth cannot be read",
    }
    for (name, how), reason in cases.items():
        broken = tmp_path / f"{name}-{how}" / "checkpoint-1"
        shutil.copytree(good, broken)
        if how == "missing":
            (broken / name).unlink()
        else:
            data = (broken / name).read_bytes()
            (broken / name).write_bytes(data[: len(data) // 2])
        assert checkpoint_problem(broken).startswith(reason), (name, how, checkpoint_problem(broken))


def test_two_runs_started_together_one_runs_one_is_refused(saved, tmp_path):
    """The issue's repro, literally: two runs started at the same moment on one --output-dir."""
    out = tmp_path / "together"
    procs = [_start(_argv(*saved, out), delay=1.0) for _ in range(2)]
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outputs
    refused = outputs[codes.index(2)]
    assert "is in use by another smol_align run (" in refused and "one run at a time per folder" in refused, (
        refused
    )
    names = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in names and "metrics.json" in names, names
    assert not {MARKER, LOCK, STAGING} & set(names), names
    assert json.loads((out / "metrics.json").read_text())["steps"] == STEPS


def test_compare_and_iterate_hold_their_folder_too(tmp_path):
    """A report folder another run holds is refused before any work; one with a foreign file is never emptied."""
    from smol_align.compare import compare
    from smol_align.iterate import iterate
    from smol_align.testing import tiny_model_and_tokenizer, tiny_preference_rows

    model, tokenizer = tiny_model_and_tokenizer()
    held = tmp_path / "held"
    with rundir.RunDir(held):
        with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"):
            compare(model, tiny_preference_rows(8), output_dir=str(held), tokenizer=tokenizer, overwrite=True)
        with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"):
            iterate(model, ["a", "b", "c"], output_dir=str(held), tokenizer=tokenizer, overwrite=True)
        assert sorted(p.name for p in held.iterdir()) == sorted([LOCK, MARKER])
    report = tmp_path / "report"
    _make(report, ["metrics.json", "report.md", "results.csv"])
    _make(report / "dpo", ["metrics.json", "model.safetensors"])
    before = _snapshot(report)
    for train in (compare, iterate):
        with pytest.raises(ConfigError, match="holds files a run does not write: results.csv"):
            train(
                model,
                tiny_preference_rows(8) if train is compare else ["a", "b", "c"],
                output_dir=str(report),
                tokenizer=tokenizer,
                overwrite=True,
            )
    assert _snapshot(report) == before


def test_overwrite_puts_the_earlier_run_back_when_the_new_one_fails_before_a_checkpoint(
    tiny_model, tiny_tokenizer, tmp_path
):
    """overwrite=True replaces the earlier run only when the new one finishes: a new run that fails after
    taking the folder (here: max_length leaves no pair to train) leaves the earlier run as it was."""
    from smol_align.testing import tiny_preference_rows

    rows, out = tiny_preference_rows(12), tmp_path / "run"
    options = dict(
        tokenizer=tiny_tokenizer, bf16=False, evaluate=False, per_device_train_batch_size=2, quiet=True
    )
    smol_align.train_dpo(tiny_model, rows, "cpu", output_dir=str(out), max_steps=1, **options)
    before = _snapshot(out)
    with pytest.raises(ConfigError, match="No pairs left to train"):
        too_short = dict(max_steps=1, max_length=2, overwrite=True)
        smol_align.train_dpo(tiny_model, rows, "cpu", output_dir=str(out), **too_short, **options)
    assert _snapshot(out) == before  # every file back, byte for byte; nothing of the failed run
    result = smol_align.train_dpo(
        tiny_model, rows, "cpu", output_dir=str(out), max_steps=2, overwrite=True, **options
    )
    names = {p.name for p in out.iterdir()}
    assert result.metrics["steps"] == 2 and not names & {rundir.REPLACED, MARKER, LOCK}, names

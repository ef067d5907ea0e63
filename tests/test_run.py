"""The runner (smol_align.run): a run survives SIGKILL (resume), SIGINT/SIGTERM (checkpoint, exit code), a
NaN loss (stops, saves nothing), several processes (torchrun: one writer) and keeps the Hub token out of
every file it writes.

The runs here are real `smol-align dpo` processes on a saved tiny Llama; a step is slowed to 0.3 s in
the child (a patched ``Trainer.training_step``) so that a signal can land mid-run.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SLOW_CLI as CHILD
from helpers import tiny_model_dir_and_pairs

import smol_align
from smol_align import cli
from smol_align.errors import ConfigError
from smol_align.run import NonFiniteLoss
from smol_align.rundir import LOCK, MARKER, STAGING, last_checkpoint

STEPS = 12


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tiny_model_dir_and_pairs(tmp_path_factory.mktemp("run"), n_pairs=40)


def _argv(saved, out, *extra):
    base, pairs = saved
    return [
        "dpo",
        "--model",
        str(base),
        "--dataset",
        str(pairs),
        "--preset",
        "cpu",
        "--bf16",
        "false",
        "--max_steps",
        str(STEPS),
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-3",
        "--save_steps",
        "2",
        "--eval_split",
        "0.2",
        "--output_dir",
        str(out),
        "--quiet",
        *extra,
    ]


def _start(argv, delay=0.3):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(delay), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait_for(path: Path, proc, timeout=180):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared:\n{proc.stdout.read()}"
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def _losses(folder: Path) -> dict[int, float]:
    """Step -> loss of the run, from the trainer state saved with the last checkpoint (kept: save_steps given)."""
    state = json.loads((folder / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


def test_a_killed_run_resumes_to_the_same_loss(saved, tmp_path):
    """SIGKILL after the checkpoint of step 4; --resume continues from it and ends where an uninterrupted run does."""
    whole = tmp_path / "whole"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "0", *_argv(saved, whole)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    killed = tmp_path / "killed"
    proc = _start(_argv(saved, killed))
    _wait_for(killed / "checkpoint-4" / "trainer_state.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / MARKER).exists() and not (killed / "model.safetensors").exists()  # unfinished, resumable
    resume_from = last_checkpoint(killed)[0].name  # checkpoint-4, or a later one if the kill landed later

    resumed = subprocess.run(
        [sys.executable, "-c", CHILD, "0", *_argv(saved, killed, "--resume")], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["steps"] == STEPS
    # train_loss is the whole run's (steps 1-12), as the uninterrupted run's, not the resumed steps' only
    whole_loss = json.loads((whole / "metrics.json").read_text())["train_loss"]
    assert math.isclose(metrics["train_loss"], whole_loss, rel_tol=1e-3), (metrics["train_loss"], whole_loss)
    assert metrics["resumed_from"] == resume_from
    expected, got = _losses(whole), _losses(killed)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(5, STEPS + 1):  # the steps trained after the resume
        assert math.isclose(got[step], expected[step], rel_tol=1e-4, abs_tol=1e-5), (
            step,
            got[step],
            expected[step],
        )
    assert not (killed / MARKER).exists() and not (killed / STAGING).exists()
    assert (killed / "model.safetensors").exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_says_how_to_resume(saved, tmp_path, signum, code):
    out = tmp_path / "stopped"
    argv = [a for a in _argv(saved, out) if a != "--quiet"] + ["--save_strategy", "no"]  # the signal's only
    proc = _start(argv)
    for line in proc.stdout:  # held-out evaluation first, then "Training DPO with preset ..."
        if line.startswith("Training DPO"):
            break
    time.sleep(1.0)
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert len(checkpoints) == 1, (checkpoints, output)
    step = int(checkpoints[0].name.split("-")[1])
    assert 0 < step < STEPS
    assert f"stopped at step {step} of {STEPS}" in output and "--resume" in output, output
    assert not (out / "model.safetensors").exists() and not (out / STAGING).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stopped"]  # nothing hidden beside it


def test_without_a_checkpoint_a_failed_run_leaves_nothing_and_resume_says_so(saved, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="nothing to continue"):
        smol_align.train_dpo(
            str(saved[0]), str(saved[1]), "cpu", output_dir=str(out), resume=True, quiet=True
        )
    assert not out.exists()


def test_a_nan_loss_stops_the_run_and_saves_no_model(tiny_model, tiny_tokenizer, tmp_path):
    """From the fourth forward pass on (policy and reference), hidden states are NaN: the run stops and says why."""
    calls = []

    def poison(module, inputs, output):
        calls.append(1)
        return output * float("nan") if len(calls) > 3 else output

    tiny_model.model.norm.register_forward_hook(poison)
    out = tmp_path / "nan"
    with pytest.raises(
        NonFiniteLoss, match=r"became nan at step \d+: training stopped and the model was not saved"
    ):
        smol_align.train_dpo(
            tiny_model,
            _pairs(),
            "cpu",
            output_dir=str(out),
            tokenizer=tiny_tokenizer,
            bf16=False,
            evaluate=False,
            max_steps=8,
            per_device_train_batch_size=2,
            quiet=True,
        )
    assert not (out / "model.safetensors").exists()
    assert not out.exists() or sorted(
        p.name for p in out.iterdir() if not p.name.startswith("checkpoint-")
    ) == [MARKER]


def test_max_time_stops_after_the_step_that_crosses_it_then_evaluates_and_saves(
    tiny_model, tiny_tokenizer, tmp_path, capsys
):
    out = tmp_path / "budget"
    result = smol_align.train_dpo(
        tiny_model,
        _pairs(),
        "cpu",
        output_dir=str(out),
        tokenizer=tiny_tokenizer,
        bf16=False,
        max_steps=50,
        per_device_train_batch_size=2,
        max_time=1e-6,
        eval_split=0.25,
    )
    assert result.metrics["steps"] == 1 and result.metrics["stopped_by_max_time"] is True
    assert "at most 1e-06 minutes" in capsys.readouterr().out
    assert (out / "model.safetensors").exists() and not (out / MARKER).exists()  # a finished run, saved whole
    assert (
        json.loads((out / "metrics.json").read_text())["stopped_by_max_time"] is True
        and result.after is not None
    )
    roomy = smol_align.train_dpo(
        tiny_model,
        _pairs(),
        "cpu",
        tokenizer=tiny_tokenizer,
        bf16=False,
        max_steps=2,
        save=False,
        evaluate=False,
        per_device_train_batch_size=2,
        max_time=60,
        quiet=True,
    )
    assert roomy.metrics["steps"] == 2 and roomy.metrics["stopped_by_max_time"] is False
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="max_time is minutes"):
            smol_align.train_dpo(
                tiny_model, _pairs(), "cpu", tokenizer=tiny_tokenizer, save=False, max_time=bad
            )
    assert cli.train_options("dpo", ["--max-time", "12.5"]) == {"max_time": 12.5}


def test_the_hub_token_is_never_written(tiny_model, tiny_tokenizer, tmp_path, capsys):
    secret = "hf_smolalignSECRETtoken123"
    out = tmp_path / "run"
    smol_align.train_dpo(
        tiny_model,
        _pairs(),
        "cpu",
        output_dir=str(out),
        tokenizer=tiny_tokenizer,
        bf16=False,
        max_steps=4,
        per_device_train_batch_size=2,
        hub_token=secret,
        save_steps=2,
    )
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in written) and any(
        "checkpoint-" in str(p) for p in written
    )
    assert not [p for p in written if secret.encode() in p.read_bytes()]
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err
    assert os.environ.get("HF_TOKEN") != secret  # lent to the process only for the run
    assert (out / "model.safetensors").exists() and not (out / "pytorch_model.bin").exists()


@pytest.mark.slow
def test_torchrun_two_processes_one_writer(saved, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU): both train, one folder, one summary, no staging left."""
    out = tmp_path / "ddp"
    argv = [a for a in _argv(saved, out) if a != "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "smol_align", *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("reward accuracy") == 1, done.stdout  # the summary, from the main process only
    names = sorted(p.name for p in out.iterdir())
    assert (
        "model.safetensors" in names
        and "metrics.json" in names
        and MARKER not in names
        and STAGING not in names
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == STEPS and metrics["eval_rewards/margins"] > metrics["start_rewards/margins"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]


def _pairs():
    from smol_align.testing import tiny_preference_rows

    return tiny_preference_rows(24)


def test_timed_checkpoints_while_running_none_left_after(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    """With no save_strategy of yours, a checkpoint every CHECKPOINT_SECONDS (0 here: every step), the last one
    kept; a finished run leaves the model and no checkpoint or marker."""
    from transformers import TrainerCallback

    from smol_align import callbacks

    monkeypatch.setattr(callbacks, "CHECKPOINT_SECONDS", 0)
    out, seen = tmp_path / "timed", []

    class Look(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen.append(sorted(p.name for p in out.iterdir()))

    smol_align.train_dpo(
        tiny_model,
        _pairs(),
        "cpu",
        output_dir=str(out),
        tokenizer=tiny_tokenizer,
        bf16=False,
        max_steps=3,
        per_device_train_batch_size=2,
        callbacks=[Look()],
        quiet=True,
    )
    checkpoints = [[n for n in names if n.startswith("checkpoint-")] for names in seen]
    # while it runs: its lock and its marker (the lock is new: one run at a time per folder), then checkpoints
    assert seen[0] == sorted([LOCK, MARKER]) and checkpoints == [[], ["checkpoint-1"], ["checkpoint-2"]]
    names = sorted(p.name for p in out.iterdir())
    assert (
        "model.safetensors" in names and MARKER not in names and not [n for n in names if "checkpoint" in n]
    )
    assert LOCK not in names  # a finished folder holds the run's files only


def test_the_returned_model_is_the_saved_one_without_accelerates_autocast(
    tiny_model, tiny_tokenizer, tmp_path
):
    """Training under bf16 autocast (forced here, on any CPU): the model handed back computes in fp32, exactly as the
    same weights loaded from the saved folder do, not under the autocast accelerate wraps its forward in."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "bf16"
    result = smol_align.train_dpo(
        tiny_model,
        _pairs(),
        "cpu",
        output_dir=str(out),
        tokenizer=tiny_tokenizer,
        bf16=True,
        evaluate=False,
        max_steps=2,
        per_device_train_batch_size=2,
        quiet=True,
    )
    assert result.trainer.args.bf16 and "_original_forward" not in vars(result.model)
    ids = torch.tensor([[1, 5, 9, 12, 7, 3]])
    with torch.no_grad():
        returned = result.model(input_ids=ids).logits
        saved = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)(input_ids=ids).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = result.model(input_ids=ids).logits.float()
    assert returned.dtype == torch.float32 and torch.equal(returned, saved)
    assert not torch.equal(autocast, saved)  # the check above can tell the two apart


# --- max_length shorter than the data; a run that did not learn ---
LONG = "Please answer in one short sentence. " * 6  # a prompt of 144 tiny-tokenizer tokens (chat template on)
FITS = {
    "max_length": 40,
    "bf16": False,
    "max_steps": 2,
    "per_device_train_batch_size": 4,
}  # short prompts: 30


def _rows(n: int, long_every: int = 0, start: int = 0) -> list[dict]:
    """``n`` tiny pairs; every ``long_every``-th prompt (from the first) made longer than max_length=40."""
    from smol_align.testing import tiny_preference_rows

    rows = tiny_preference_rows(start + n)[start:]
    for i, row in enumerate(rows):
        if long_every and i % long_every == 0:
            row["prompt"] = [{"role": "user", "content": LONG + row["prompt"][0]["content"]}]
    return rows


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_pairs_that_max_length_drops_are_counted_and_said(
    method, tiny_model, tiny_tokenizer, tmp_path, capsys
):
    """Half the prompts alone fill max_length: TRL drops those pairs (DPO, KTO; ORPO kept them with no
    answer token, a NaN loss on any step holding one, and smol_align drops them). The run reported 36
    pairs; it now says 18 of 36 are dropped, trains and records 18, and says what held-out pairs it drops."""
    from smol_align.data import doctor
    from smol_align.data.doctor import has_answer_tokens

    train = getattr(smol_align, f"train_{method}")
    heldout, out = _rows(4, 2, start=100), str(tmp_path / "run")
    result = train(
        tiny_model,
        _rows(36, 2),
        "cpu",
        tokenizer=tiny_tokenizer,
        eval_dataset=heldout,
        output_dir=out,
        **FITS,
    )
    unit, rows_in = ("rows", 72) if method == "kto" else ("pairs", 36)  # KTO: a row per answer
    out = capsys.readouterr().out
    assert (
        f"{rows_in // 2} of {rows_in} training {unit} are dropped: the prompt alone fills max_length=40"
        in out
    )
    assert "2 of 4 held-out pairs are dropped" in out
    assert "Evaluating the start model on 2 held-out pairs" in out
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m[f"train_{unit}"] == len(result.trainer.train_dataset) == rows_in // 2
    assert m[f"{unit}_dropped_by_max_length"] == rows_in // 2 and m["eval_n_pairs"] == 2
    if method == "orpo":
        assert all(has_answer_tokens(row) for row in result.trainer.train_dataset)
    if method == "dpo":  # `smol-align doctor --tokenizer --max-length` tells the same before any training
        report = doctor(_rows(36, 2), tokenizer=tiny_tokenizer, max_length=40)
        assert report.prompt_fills_max_length == 18 and report.truncated_pairs == 36


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_no_pair_left_at_max_length_stops_and_saves_nothing(method, tiny_model, tiny_tokenizer, tmp_path):
    """Every prompt fills max_length, nothing held out: the run exited 0 after 0 steps and saved the untouched
    model as its result."""
    train, out = getattr(smol_align, f"train_{method}"), tmp_path / "run"
    with pytest.raises(
        ConfigError, match=r"No (pairs|rows) left to train: the prompt alone fills max_length=40"
    ):
        train(
            tiny_model,
            _rows(8, 1),
            "cpu",
            tokenizer=tiny_tokenizer,
            eval_split=0,
            output_dir=str(out),
            **FITS,
        )
    assert not out.exists()


def test_held_out_pairs_all_dropped_give_no_figures_and_say_why(tiny_model, tiny_tokenizer, tmp_path, capsys):
    heldout = _rows(4, 1, start=100)
    result = smol_align.train_dpo(
        tiny_model, _rows(8), "cpu", tokenizer=tiny_tokenizer, save=False, eval_dataset=heldout, **FITS
    )
    out = capsys.readouterr().out
    assert "No held-out figures: the prompt alone fills max_length=40 tokens in all 4" in out
    assert result.before is None and result.after is None and "learned" not in result.metrics


def test_a_run_that_prefers_the_rejected_answers_does_not_end_as_success(tiny_model, tiny_tokenizer, capsys):
    """Held-out pairs with chosen and rejected the other way round from the training pairs: the trained model
    prefers their rejected answers. The summary showed "reward accuracy 0.000 -> 1.000"-style lines only."""
    swapped = [{**row, "chosen": row["rejected"], "rejected": row["chosen"]} for row in _rows(4, start=100)]
    fast = {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "bf16": False}
    result = smol_align.train_dpo(
        tiny_model, _rows(12), "cpu", tokenizer=tiny_tokenizer, eval_dataset=swapped, save=False, **fast
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("NOT LEARNED: the trained model prefers the rejected answers"), last
    assert result.metrics["learned"] is False and result.metrics["learning_verdict"] == "prefers_rejected"
    assert result.metrics["heldout_margin_change"] < 0


def test_a_run_that_did_not_move_says_it_learned_nothing(tiny_model, tiny_tokenizer, capsys):
    """A rate whose steps round away in fp32 weights: the held-out margin stays exactly where it started."""
    still = {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-15, "bf16": False}
    result = smol_align.train_dpo(
        tiny_model, _rows(12), "cpu", tokenizer=tiny_tokenizer, eval_split=0.25, save=False, **still
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("NOT LEARNED: the trained model learned nothing"), last
    assert result.metrics["learned"] is False and result.metrics["learning_verdict"] == "no_change"

"""Quiet by default: a run shows smol_align's own lines, one training bar and its summary once; the libraries'
notices that need no action (the kernels hub's "publisher trust check", bitsandbytes' CPU-kernel fallback,
transformers' FutureWarning raised from TRL, the progress bars of datasets and transformers) are filtered while
smol_align works, and everything is as it was afterwards. ``SMOL_ALIGN_VERBOSE=1`` brings the libraries' lines
back. The CLI and the Python API run in child processes: the kernels notice comes once per process, when peft
is first imported."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers import tiny_model_dir_and_pairs

ROOT = Path(__file__).resolve().parents[1]
NOISE = (
    "Skipping publisher trust check",  # kernels, on importing bitsandbytes offline
    "gemm_4bit_forward",  # bitsandbytes' CPU kernel fallback
    "is_gradient_checkpointing",  # transformers 5's FutureWarning, raised from TRL 1.16
    "warnings.warn(",
    "Generating train split",  # datasets' bars
    "Tokenizing train dataset",
    "Dropping fully truncated",
    "Normalizing (",
    "Loading weights",  # transformers' bars
    "Writing model shards",
    "remove_unused_columns",
)
OURS = ("Data (", "Estimated peak memory", "Evaluating the start model", "Training DPO with preset", "100%|")


def _child(args: list[str]) -> tuple[str, str]:
    """stdout and stderr of ``python -u ARGS``, in a user's environment: none of the switches that silence
    bars or show everything (tests/trl_parity.py sets ``TQDM_DISABLE`` for the whole test process)."""
    switches = ("SMOL_ALIGN_VERBOSE", "TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS")
    env = {k: v for k, v in os.environ.items() if k not in switches}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-u", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, done.stderr


def _check_quiet(output: str, saved_to) -> None:
    shown = [line for line in output.splitlines() if any(noise in line for noise in NOISE)]
    assert not shown, "library noise:\n" + "\n".join(shown)
    for line in OURS:
        assert line in output, f"missing {line!r}:\n{output}"
    assert output.count("method            DPO") == 1, output  # the summary, once
    assert output.count(f"saved to          {saved_to}") == 1, output


def test_cli_run_shows_our_lines_and_no_library_noise(tmp_path):
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "run"
    argv = ["--model", str(base), "--dataset", str(pairs), "--max_steps", "2", "--output_dir", str(out)]
    _check_quiet("".join(_child(["-m", "smol_align", "dpo", *argv])), out)


MARK = "=== verbose ==="
API_RUN = """
import logging, os, sys, warnings
import smol_align
from smol_align.testing import tiny_model_and_tokenizer, tiny_preference_rows

model, tokenizer = tiny_model_and_tokenizer()
filters = list(warnings.filters)
result = smol_align.train_dpo(
    model=model, tokenizer=tokenizer, dataset=tiny_preference_rows(16), output_dir=sys.argv[1], max_steps=2
)
print(repr(result))  # what a notebook cell ending in the call shows under the printed summary
# As it was: the warnings filters, the loggers' levels, a user's own bars (datasets' and transformers')
import datasets, transformers
print("filters as before:", warnings.filters == filters)
print("levels:", [logging.getLogger(name).level for name in ("kernels", "bitsandbytes")])
datasets.Dataset.from_dict({"x": [1, 2]}).map(lambda row: row, desc="A user's own map")
list(transformers.utils.logging.tqdm(range(2), desc="A user's own transformers bar"))
print("=== verbose ===", flush=True)
print("=== verbose ===", file=sys.stderr, flush=True)
os.environ["SMOL_ALIGN_VERBOSE"] = "1"
model, tokenizer = tiny_model_and_tokenizer()
smol_align.train_dpo(model=model, tokenizer=tokenizer, dataset=tiny_preference_rows(16), save=False, max_steps=1)
"""


def test_python_api_is_quiet_leaves_the_state_as_it_was_and_verbose_shows_everything(tmp_path):
    out = tmp_path / "run"
    stdout, stderr = _child(["-c", API_RUN, str(out)])
    (out_quiet, out_verbose), (err_quiet, err_verbose) = stdout.split(MARK), stderr.split(MARK)
    _check_quiet(out_quiet + err_quiet, out)  # the repr printed after the run does not repeat the summary
    assert "TrainResult(method='dpo', verdict=" in out_quiet, out_quiet
    assert "filters as before: True" in out_quiet and "levels: [0, 0]" in out_quiet, out_quiet
    assert "A user's own map" in err_quiet and "A user's own transformers bar" in err_quiet, err_quiet
    assert "Tokenizing train dataset" in err_verbose, err_verbose  # TRL's datasets bar is back
    assert "Training DPO with preset" in out_verbose and "method            DPO" in out_verbose, out_verbose


def test_the_filter_puts_everything_back_even_on_an_error(monkeypatch):
    import datasets.utils
    from transformers.utils import logging as transformers_logging

    from smol_align._compat import NOISY_LOGGERS, library_noise_filtered

    monkeypatch.delenv("SMOL_ALIGN_VERBOSE", raising=False)
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    logging.getLogger("bitsandbytes").setLevel(logging.INFO)  # a user's own choice, kept
    filters, hook = list(warnings.filters), getattr(transformers_logging, "_tqdm_hook", None)
    try:
        with pytest.raises(RuntimeError), library_noise_filtered() as on:
            assert on and datasets.utils.are_progress_bars_disabled()
            assert all(logging.getLogger(name).level == logging.ERROR for name in NOISY_LOGGERS)
            with warnings.catch_warnings(record=True) as caught:
                warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning, stacklevel=1)
                # bitsandbytes 0.46 (the qlora extra's floor) on torch 2.13, each 4-bit step
                warnings.warn(
                    "_check_is_size will be removed in a future PyTorch release", FutureWarning, stacklevel=1
                )
                warnings.warn("a warning of the user's own", FutureWarning, stacklevel=1)
            assert [str(w.message) for w in caught] == ["a warning of the user's own"]
            raise RuntimeError("a run that fails")
        assert not datasets.utils.are_progress_bars_disabled()
        assert warnings.filters == filters and getattr(transformers_logging, "_tqdm_hook", None) is hook
        assert logging.getLogger("bitsandbytes").level == logging.INFO
        with pytest.warns(FutureWarning, match="is_gradient_checkpointing"):
            warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning, stacklevel=1)
    finally:
        logging.getLogger("bitsandbytes").setLevel(logging.NOTSET)


def test_verbose_turns_the_filter_off(monkeypatch):
    import datasets.utils

    from smol_align._compat import library_noise_filtered

    monkeypatch.setenv("SMOL_ALIGN_VERBOSE", "1")
    filters = list(warnings.filters)
    with library_noise_filtered() as on:
        assert not on and not datasets.utils.are_progress_bars_disabled() and warnings.filters == filters


def test_orpo_sets_what_trl_would_set_and_warn_about(tiny_model, tiny_tokenizer, tmp_path, caplog):
    """TRL's ORPO trainer turns remove_unused_columns off, with a warning to do it yourself: the preset does."""
    import smol_align
    from smol_align.testing import tiny_preference_rows

    with caplog.at_level(logging.WARNING):
        trainer = smol_align.build_orpo_trainer(
            tiny_model, tiny_preference_rows(4), "cpu", tokenizer=tiny_tokenizer, output_dir=str(tmp_path)
        )
    assert trainer.args.remove_unused_columns is False
    assert "remove_unused_columns" not in caplog.text, caplog.text

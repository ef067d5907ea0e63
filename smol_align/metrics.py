"""A run's figures as metrics.json holds them: the trainer's last logged figures, the held-out figures before
and after (under TRL's ``eval_*`` names where TRL has one), time, and the peak memory meter."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
from pathlib import Path

from .models import model_name
from .presets import preset_name

logger = logging.getLogger(__name__)


def start_model_path(model) -> dict[str, str]:
    """``start_model_path``: the absolute folder of a model given as a local folder, so that ``smol-align
    eval`` finds a run's start model from any working folder (``model`` keeps the name as it was given)."""
    if isinstance(model, (str, os.PathLike)) and os.path.isdir(model):
        return {"start_model_path": os.path.abspath(model)}
    return {}


def collect_metrics(
    method, model, preset, trainer, train_output, seconds, before, after, peak_before
) -> dict:
    """The metrics of a finished run: its settings, time, memory, the last logged training figures (as
    ``train_rewards/margins``...) and the held-out figures before (``start_*``) and after (``eval_*``)."""
    history = [h for h in trainer.state.log_history if "loss" in h]
    last = history[-1] if history else {}
    args, steps, tokens = trainer.args, trainer.state.global_step, last.get("num_tokens")
    logged = ("rewards/", "logps/", "log_odds", "nll_loss", "kl", "constraint/", "mean_token_accuracy")
    return {
        "method": method,
        "model": model_name(model),
        **start_model_path(model),
        "preset": preset_name(preset),
        "learning_rate": args.learning_rate,
        "batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "steps": steps,
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(steps, 1), 3),
        "train_loss": train_output.training_loss,
        "final_loss": last.get("loss"),
        "peak_memory_gb": round(max(peak_memory_bytes(), peak_before) / 2**30, 2),
        **({"tokens_per_second": round(tokens / seconds, 1)} if tokens else {}),
        **{f"train_{k}": v for k, v in last.items() if k.startswith(logged)},
        **(heldout_metrics(before, "start") if before else {}),
        **(heldout_metrics(after) if after else {}),
    }


TRL_NAMES = {
    "reward_accuracy": "rewards/accuracies",
    "reward_margin": "rewards/margins",
    "rewards_chosen": "rewards/chosen",
    "rewards_rejected": "rewards/rejected",
    "logps_chosen": "logps/chosen",
    "logps_rejected": "logps/rejected",
}
"""evaluate()'s figures that TRL's DPOTrainer logs too, and TRL's name for each (``eval_``-prefixed on
evaluation)."""


def heldout_metrics(figures: dict, prefix: str = "eval") -> dict[str, float]:
    """An evaluate() dict as flat metrics, each under one name: TRL's where ``trainer.evaluate()`` logs the
    figure (``eval_rewards/accuracies``, ``eval_rewards/margins``...), else ``eval_<figure>``
    (``eval_preference_accuracy``...); ``start_`` for the start model's."""
    numbers = {k: v for k, v in figures.items() if k != "logps" and isinstance(v, (int, float))}
    return {f"{prefix}_{TRL_NAMES.get(k, k)}": v for k, v in numbers.items()}


def whole_run_loss(log_history: list[dict]) -> float | None:
    """The mean training loss over every logged step of the run, before and after a resume (each logged
    loss is the mean of the steps since the one logged before it, so it counts that many steps)."""
    total = steps = previous = 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] > previous:
            total += entry["loss"] * (entry["step"] - previous)
            steps, previous = steps + entry["step"] - previous, entry["step"]
    return total / steps if steps else None


# --- The peak memory meter ---
def peak_memory_bytes() -> int:
    """The process's peak memory: on a GPU the most bytes torch's tensors held at once (since the last
    reset), on Linux the resident set's high-water mark (VmHWM, reset by :class:`MemoryWindow`), elsewhere
    the resident set's peak."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    high_water = _proc_status_bytes("VmHWM")
    if high_water is not None:
        return high_water
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class MemoryWindow:
    """Peak memory of what runs from now on above what is in use now (``peak_gb()``), in GB. CUDA: peak
    allocated bytes. Linux CPU: the resident set's high-water mark (VmHWM), reset now, after freed heap pages
    go back to the system (so a later run cannot hide in an earlier run's pages). Elsewhere: None."""

    def __init__(self):
        import torch

        gc.collect()
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self.start = _proc_status_bytes("VmRSS")
        try:  # "5" resets VmHWM to the current resident set
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as err:
            logger.info("No per-run peak memory (%s).", err)
            self.start = None

    def peak_gb(self) -> float | None:
        peak = peak_memory_bytes()
        return None if self.start is None else round((peak - self.start) / 2**30, 2)


def _proc_status_bytes(key: str) -> int | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) * 1024 for line in lines if line.startswith(key + ":")), None)  # kB


# --- The greedy answers' figures ---
def answer_figures(answers: list[str], voice=None) -> dict[str, float]:
    """Readability figures of generated answers: repetition, length and (optionally) a voice rate.

    ``repeated_4gram_rate``: per answer, the share of its word 4-grams that already occurred
    earlier in the same answer (0 for an answer that never repeats itself; the degenerate
    "... a double-whacking of the alphabet, and it's a double-whacking of the alphabet" scores
    high), averaged over answers. ``answer_words``: mean length in words. ``voice_rate``: share of
    answers for which ``voice(answer)`` is true (the demo passes its pirate-voice check).
    """
    rates = []
    for answer in answers:
        words = answer.lower().split()
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        rates.append(1 - len(set(grams)) / len(grams) if grams else 0.0)
    figures = {
        "repeated_4gram_rate": _mean_or_nan(rates),
        "answer_words": _mean_or_nan([len(a.split()) for a in answers]),
    }
    if voice is not None:
        figures["voice_rate"] = _mean_or_nan([float(bool(voice(a))) for a in answers])
    return figures


def _mean_or_nan(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")

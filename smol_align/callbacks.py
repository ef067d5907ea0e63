"""The runner's TrainerCallbacks: the signal stop, the stop at a non-finite loss, the time budget, timed
checkpoints, the progress bar, and the trackers (``report_to``) fed the held-out figures.

They are plain classes made ``transformers.TrainerCallback`` s by :func:`as_callback` when a run adds them, so
that importing smol_align does not import transformers.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ._compat import distributed_state_made, finish_wandb
from .metrics import heldout_metrics


def is_main_process() -> bool:
    """Rank 0. Before a trainer exists, from torchrun's RANK: a PartialState() made now would fix the
    process as not distributed on a CPU (accelerate needs cpu=True there, which TRL's config passes)."""
    from accelerate import PartialState

    if distributed_state_made():
        return PartialState().is_main_process
    return int(os.environ.get("RANK", "0")) == 0


def any_process(flag: bool) -> bool:
    """True if ``flag`` is set on any process (one all-reduce when there are several)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import reduce

    state = PartialState()
    if state.num_processes == 1:
        return flag
    return bool(reduce(torch.tensor([int(flag)], device=state.device), "max"))


def as_callback(cls, *args):
    """An instance of ``cls`` that is also a ``transformers.TrainerCallback`` (its other events do nothing):
    callbacks here are plain classes so that importing smol_align does not import transformers."""
    from transformers import TrainerCallback

    return type(cls.__name__, (cls, TrainerCallback), {})(*args)


def add_callback(trainer, cls, *args):
    callback = as_callback(cls, *args)
    trainer.add_callback(callback)
    return callback


CHECKPOINT_SECONDS = 600
"""A checkpoint every 10 minutes of training: a crash loses at most that. A checkpoint of the embedded
SmolLM2 (weights + AdamW state, 1.5 GB) takes 5.2 s on a 2-core CPU: one every quarter of the demo
would add 8% to its 3 minutes; on time, a run shorter than 10 minutes writes none (Ctrl-C still does)."""


class TimeBudget:
    """``max_time``: stop training after the step during which ``seconds`` of training time ran out on any
    process (the run then evaluates and saves as usual). The learning-rate schedule still follows
    ``max_steps``."""

    def __init__(self, seconds: float):
        self.seconds, self.started = seconds, 0.0
        self.stopped = False  # the budget, not max_steps, ended the run

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        out_of_time = time.perf_counter() - self.started >= self.seconds
        # every rank stops at the same step
        if any_process(out_of_time) and state.global_step < state.max_steps:
            control.should_training_stop = self.stopped = True
        return control


class TimedCheckpoints:
    """Ask TRL for a checkpoint at the first step end ``CHECKPOINT_SECONDS`` after the last one (or the
    start)."""

    last: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if any_process(time.monotonic() - self.last >= CHECKPOINT_SECONDS):  # every process saves together
            control.should_save, self.last = True, time.monotonic()
        return control


class NonFiniteGuard:
    """Stop at the first logged loss or gradient norm that is NaN or inf (``presets`` log every step)."""

    bad: tuple[int, str, float] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value) and self.bad is None:
                self.bad = (state.global_step, key, value)
                control.should_training_stop, control.should_save = True, False
        return control

    def message(self, args) -> str:
        step, key, value = self.bad
        if args.fp16:
            cause = "fp16: DPO's log-ratios overflow or underflow in half precision; use bf16=True or fp32"
        elif args.learning_rate > 1e-4:
            cause = f"the learning rate ({args.learning_rate:g}) is high; try 10x lower"
        else:
            cause = (
                "a bad pair (an empty completion, or one truncated to nothing by max_length: run "
                "`smol-align doctor`), or a learning rate too high for this model"
            )
        return (
            f"The {key.replace('_', ' ')} became {value} at step {step}: training stopped and the model was "
            f"not saved. Likely cause: {cause}."
        )


@contextmanager
def stop_on_signal(trainer, checkpoint: bool):
    """SIGINT/SIGTERM: finish the step, save a checkpoint (if ``checkpoint``), stop; a second signal stops at
    once. Yields a list that gets the signal number. Outside the main thread (no signal handlers there) it
    does nothing."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        received.append(signum)
        if is_main_process():
            print(
                f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                "(again to stop at once)...",
                flush=True,
            )

    class StopOnSignal:
        def on_step_end(self, args, state, control, **kwargs):
            if any_process(bool(received)):
                if not received:
                    received.append(signal.SIGTERM)  # another process was told to stop
                control.should_training_stop, control.should_save = True, checkpoint
            return control

    callback = add_callback(trainer, StopOnSignal)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        trainer.remove_callback(callback)


def quiet_progress(trainer, quiet: bool) -> None:
    """Keep TRL's progress bar but show the loss on it instead of printing a dict every step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs:
                keys = ("loss", "rewards/accuracies", "rewards/margins")
                shown = {k.split("/")[-1]: f"{logs[k]:.3f}" for k in keys if k in logs}
                self.training_bar.set_postfix(shown, refresh=False)

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(BarProgress())


# --- Trackers (report_to: TensorBoard, trackio, wandb...): TRL's callbacks, fed the held-out figures too ---
def tensorboard_into(trainer, folder: Path) -> None:
    """TensorBoard writes into the run's folder (transformers' default is ``<output_dir>/runs/<time>_<host>``,
    and with save=False the output_dir is a temporary one), unless ``TENSORBOARD_LOGGING_DIR`` names
    another."""
    if trainer.args.report_to:
        from transformers.integrations import TensorBoardCallback

        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
                callback.logging_dir = str(folder)


def log_heldout(trainer, figures) -> None:
    """Held-out figures to the trackers at this step, under their metrics.json names (shown as
    ``eval/rewards/margins``...); not through ``trainer.log``: the run's ``log_history`` (its report's curves)
    stays the training's."""
    if trainer.args.report_to and figures:
        figures = heldout_metrics(figures)
        trainer.callback_handler.on_log(trainer.args, trainer.state, trainer.control, figures)


def close_trackers(trainer) -> None:
    """End the run in every tracker. TensorBoard's writer and trackio's run close at the end of ``train()``,
    and the held-out figures logged after it reopen them: closed again. transformers leaves wandb's run open
    until the process ends, and the next run of a sweep in this process would log into it: finished."""
    if not trainer.args.report_to:
        return
    from transformers.integrations import TensorBoardCallback, TrackioCallback, WandbCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback | TrackioCallback):
            callback.on_train_end(trainer.args, trainer.state, trainer.control, model=trainer.model)
        elif isinstance(callback, WandbCallback):
            finish_wandb(callback)

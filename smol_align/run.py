"""The runner every entry point goes through: evaluate before -> train -> evaluate after -> save -> report.

Around TRL's ``trainer.train()`` it adds what a run needs to survive: one output directory written
whole, locked and cleaned up by :mod:`smol_align.rundir` (checkpoints go in while the run is
unfinished; the model and report are staged and moved in at the end; a run that fails before its
first checkpoint leaves nothing), ``resume`` (from the newest complete checkpoint, with the
settings the checkpoint holds), SIGINT/SIGTERM (checkpoint, then
:class:`RunInterrupted`), ``max_time``, a stop at the first non-finite loss (:class:`NonFiniteLoss`), one writer
under several processes, ``hub_token`` kept out of ``training_args.bin``, and trackers (``report_to``) named after
the run's folder, fed the held-out figures at step 0 and the last step.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ._compat import (
    compact_lm_head_while,
    distributed_state_made,
    finish_wandb,
    no_cudnn_attention_while,
    tied_weights_keys,
    tracker_names,
)
from .data import doctor
from .data.doctor import has_answer_tokens, length_fit
from .data.load import DATA_OPTIONS, load, pop_data_options
from .data.unpaired import is_unpaired, pairs_by_prompt
from .errors import ConfigError, SmolAlignError
from .estimate import fit
from .evaluate import answer_figures, evaluate, generate, tokenize_pairs
from .presets import check_keywords, check_settings, resolve
from .report import learning_verdict, summary_table, write_run_files
from .rundir import RunDir, default_output_dir, find_unfinished, skipped_line
from .trainers import BUILD_OPTIONS, build_dpo_trainer, build_kto_trainer, build_orpo_trainer

logger = logging.getLogger(__name__)


class RunInterrupted(SmolAlignError):
    """SIGINT/SIGTERM stopped the run; a checkpoint was saved. ``exit_code`` is 130 or 143."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class NonFiniteLoss(SmolAlignError):
    """The loss or gradient norm became NaN/inf; nothing was saved from that point on."""


@dataclass
class TrainResult:
    """What a run leaves: the TRL trainer, its figures and where the model was saved."""

    method: str
    trainer: Any  # trl.DPOTrainer, ORPOTrainer or KTOTrainer, trained
    metrics: dict[str, Any]  # final train metrics, held-out figures before/after, time, memory
    output_dir: str | None  # the saved model (or LoRA adapter) and tokenizer, metrics.json, plots
    before: dict[str, Any] | None = None  # evaluate() of the start model on the held-out pairs
    after: dict[str, Any] | None = None  # evaluate() of the trained model
    files: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list] = field(default_factory=dict)  # "prompt", "start", "trained": greedy answers

    @property
    def model(self):
        return self.trainer.model

    def generate(self, prompts, **options) -> list[str]:
        """The trained model's answers to ``prompts`` (see :func:`smol_align.generate` for the options)."""
        with self.trainer.accelerator.autocast():
            return generate(self.model, prompts, self.trainer.processing_class, **options)

    def summary(self) -> str:
        """The end-of-run table, as printed."""
        return summary_table(self)

    def __repr__(self) -> str:
        return f"TrainResult(method={self.method!r}, output_dir={self.output_dir!r}, metrics={{{len(self.metrics)} keys}})"


# The keywords of train_dpo & co. that the runner takes itself (the rest: the builders', data's, config's)
RUN_OPTIONS = frozenset(
    {"save", "evaluate", "overwrite", "resume", "max_eval_pairs", "max_time", "quiet"}
    | {"answer_prompts", "answer_tokens", "voice"}
)


def run(method: str, model, dataset, preset: str, output_dir, overrides: dict, baseline=None) -> TrainResult:
    """One training run of ``method`` (see :func:`smol_align.train_dpo` for the keywords). ``baseline``
    (compare's): an earlier :class:`TrainResult` on the same data, whose start figures and answers are
    reused."""
    save = overrides.pop("save", True)
    run_eval = overrides.pop("evaluate", True)
    overwrite = overrides.pop("overwrite", False)
    resume = overrides.pop("resume", False)
    if overrides.get("resume_from_checkpoint"):  # TRL's name: True, or a checkpoint-N folder of output_dir
        given = overrides.pop("resume_from_checkpoint")
        resume, output_dir = True, output_dir or (str(Path(given).parent) if isinstance(given, str) else None)
    max_eval_pairs = overrides.pop("max_eval_pairs", None)
    max_time = overrides.pop("max_time", None)  # minutes of training: stop after the step that crosses it, then save
    if max_time is not None and not max_time > 0:
        raise ConfigError(f"max_time is minutes of training and must be positive, got {max_time!r}.")
    quiet = overrides.pop("quiet", False)
    answer_prompts = overrides.pop("answer_prompts", 32)
    answer_tokens = overrides.pop("answer_tokens", 48)
    voice = overrides.pop("voice", None)  # answer -> bool: its share of the greedy answers is voice_rate
    keep_checkpoints = "save_strategy" in overrides or "save_steps" in overrides  # yours stay; ours go at the end
    if "save_steps" in overrides:
        overrides.setdefault("save_strategy", "steps")  # TRL's default strategy, which the presets turn off
    # Every keyword is known and every setting can learn, before anything is read, written or loaded
    named = RUN_OPTIONS | {"model", "dataset", "preset", "output_dir"}
    check_keywords(method, overrides, BUILD_OPTIONS | DATA_OPTIONS, f"train_{method}", also_named=named)
    check_settings(method, overrides)
    main = _is_main_process()
    say = print if main and not quiet else (lambda *a: None)

    if resume and not save:
        raise ConfigError("resume=True needs a saved run: it continues from the checkpoints in output_dir.")
    # The run's folder: the model and report (unless save=False) and TensorBoard's event files. Trackers name the run
    # after it and its project after the folder that holds it, so the runs of a sweep (runs/<sweep>/<value>) or of
    # compare (<report>/<method>) are one project and their curves overlay.
    name = model_name(model)
    folder = Path(output_dir or (find_unfinished if resume else default_output_dir)(method, name))
    final = folder if save else None
    overrides = {**tracker_names(folder), **overrides}
    inputs = [dataset, overrides.get("eval_dataset"), model, overrides.get("ref_model")]  # never emptied
    rundir = RunDir(final, overwrite=overwrite, resume=resume, inputs=inputs, main=main) if save else None
    if rundir is not None:
        rundir.check()  # before any work; again under the folder's lock when the run takes it

    data = load(dataset, **pop_data_options(overrides))
    eval_data = data.eval
    line, report = _doctor(data)
    say(line)
    if is_unpaired(eval_data):  # KTO's own rows: figures on the pairs that held-out prompts with both labels make
        eval_data = pairs_by_prompt(eval_data)
        say(f"Held-out figures on {len(eval_data)} pairs: held-out prompts with a desirable and an undesirable answer."
            if eval_data else "No held-out figures: no held-out prompt has both a desirable and an undesirable "
            "answer (pass eval_dataset= with pairs, or held-out rows of both labels for some prompts).")  # fmt: skip
    _plan_memory(model, method, preset, overrides, report, say)
    if final is not None and overrides.get("push_to_hub") and not overrides.get("hub_model_id"):
        overrides["hub_model_id"] = final.name  # the repo is named after the run
    if final is not None:  # checkpoints: yours (save_strategy/save_steps), else one every CHECKPOINT_SECONDS
        overrides.setdefault("save_total_limit", 1)  # only the last one is kept, and none once the run is done
    # save=False: TRL still wants an output_dir; a temporary one, removed at the end, keeps the current folder clean
    temporary = nullcontext(final) if final else TemporaryDirectory(prefix="smol_align-")
    with rundir or nullcontext(), temporary as out:
        checkpoint = rundir.checkpoint if rundir is not None else None
        if rundir is not None and rundir.skipped:
            say(f"{skipped_line(rundir.skipped)} Resuming from {checkpoint.name}, the newest complete one.")
        build = {"dpo": build_dpo_trainer, "orpo": build_orpo_trainer, "kto": build_kto_trainer}[method]
        trainer = build(model, data, preset, output_dir=str(out), **overrides)
        pair_counts = _fit_max_length(trainer, method, data.train, say)  # max_length's cuts, as TRL tokenized
        _quiet_progress(trainer, quiet or not main)
        _tensorboard_into(trainer, folder)
        # FSDP or ZeRO-3: before training the weights are sharded (ZeRO-3) or, loaded CPU-RAM-efficiently, on the CPU of
        # rank 0 alone (FSDP); smol_align's own evaluation calls the bare model, which would not see them.
        zero_stage = getattr(getattr(trainer.accelerator.state, "deepspeed_plugin", None), "zero_stage", None)
        if run_eval and (trainer.is_fsdp_enabled or zero_stage == 3):
            run_eval = False
            say("Held-out figures skipped: under FSDP or ZeRO-3 the weights are sharded (or not yet on the GPU) until "
                "training starts; pass eval_strategy='steps' (or 'epoch') for TRL's own evaluation, which handles it.")
        beta = trainer.args.beta if method in ("dpo", "kto") else 0.1  # their implicit reward beta*log(pi/ref)
        beta = baseline.before["beta"] if baseline is not None and baseline.before else beta  # compare: one scale
        tokenizer = trainer.processing_class
        if rundir is not None:  # unfinished until _save; a resume keeps the settings its checkpoint holds
            kept = {k: getattr(trainer.args, k) for k in RESTORED_ON_RESUME}
            _check_resumed_settings(rundir, checkpoint, kept)
            started = {} if checkpoint else {"settings": kept}  # a resume keeps the record of its start
            rundir.mark(method=method, max_steps=trainer.args.max_steps, **started)

        # Held-out figures through TRL (a DPO trainer's own tokenized eval_dataset; ORPO's rows tokenized as DPO does),
        # at the trainer's max_length and under its autocast (bf16 where it trains in bf16).
        heldout = trainer.eval_dataset if method == "dpo" else eval_data
        if run_eval and heldout is not None and method != "dpo":  # tokenized once for before and after
            heldout = tokenize_pairs(heldout, tokenizer, max_length=trainer.args.max_length)
        if run_eval and heldout is not None and not _heldout_fits(trainer, heldout, len(eval_data), say):
            run_eval = False
        before = after = None
        answers: dict[str, list] = {}

        def figures(policy, ref_logps=None, answer_to=None):
            with trainer.accelerator.autocast():
                found = evaluate(policy, heldout, tokenizer=tokenizer, beta=beta, max_pairs=max_eval_pairs,
                                 max_length=trainer.args.max_length, ref_logps=ref_logps)  # fmt: skip
                if answer_to:
                    answers[answer_to] = generate(policy, answers["prompt"], tokenizer, answer_tokens, batch_size=16)
            return {**found, **answer_figures(answers[answer_to], voice)} if answer_to else found

        if run_eval and eval_data is not None and baseline is not None:
            before, answers = baseline.before, {k: v for k, v in baseline.answers.items() if k in ("prompt", "start")}
        elif run_eval and eval_data is not None:
            scored = min(len(heldout), max_eval_pairs or len(heldout))  # those TRL kept at max_length
            say(f"Evaluating the start model on {scored} held-out pairs...")
            answers["prompt"] = eval_data.select(range(min(answer_prompts, len(eval_data))))["prompt"]
            before = figures(trainer.model, answer_to="start" if answers["prompt"] else None)
        answers = answers if answers.get("prompt") else {}
        if checkpoint is None:
            _log_heldout(trainer, before)  # step 0: each run's held-out curve starts at the start model

        steps = trainer.args.max_steps if trainer.args.max_steps > 0 else "full epochs"
        batch = trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps
        say(f"Training {method.upper()} with preset {_preset_name(preset)}: {steps} steps, batch {batch}"
            + (f", at most {max_time:g} minutes" if max_time else "") + (f", resuming from {checkpoint}." if checkpoint else "."))
        peak_before = _peak_memory_bytes()
        with _hub_token_in_env(trainer.args):  # kept out of every training_args.bin written from here on
            started = time.perf_counter()
            with _stop_on_signal(trainer, checkpoint=final is not None) as stopped:
                guard = _add_callback(trainer, NonFiniteGuard)
                budget = _add_callback(trainer, TimeBudget, max_time * 60) if max_time else None
                if final is not None and not keep_checkpoints:
                    _add_callback(trainer, TimedCheckpoints)
                device = trainer.accelerator.device  # CPU: TRL's LM head scores only completion tokens; CUDA: no cuDNN SDPA
                with compact_lm_head_while(device), no_cudnn_attention_while(device):
                    if checkpoint is not None and _at_the_end(trainer, checkpoint):  # stopped while saving
                        train_output = _restore_finished(trainer, checkpoint)
                    else:
                        resume_from = str(checkpoint) if checkpoint else None
                        train_output = trainer.train(resume_from_checkpoint=resume_from)
            train_seconds = time.perf_counter() - started
            from accelerate.utils import extract_model_from_parallel

            # accelerate's prepare leaves the forward under its autocast for good: hand back the model as saved
            extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False)
            if guard.bad is not None:
                raise NonFiniteLoss(guard.message(trainer.args))
            if stopped and trainer.state.global_step < trainer.state.max_steps:
                name, step, code = signal.Signals(stopped[0]).name, trainer.state.global_step, 128 + stopped[0]
                if final is None:
                    raise RunInterrupted(f"{name}: training stopped at step {step}; nothing was saved (save=False).", code)
                raise RunInterrupted(
                    f"{name}: training stopped at step {step} of {trainer.state.max_steps}; checkpoint saved in {final}. "
                    f"Continue with the same command plus `--resume --output-dir {final}` (Python: resume=True, "
                    f"output_dir={str(final)!r}).", code)  # fmt: skip

            if before is not None:
                say("Evaluating the trained model...")
                after = figures(trainer.model, before["logps"], answer_to="trained" if answers else None)

            metrics = _collect_metrics(method, model, preset, trainer, train_output, train_seconds, before, after, peak_before)
            if checkpoint is not None:  # the whole run's loss, not the resumed steps' only
                metrics["train_loss"] = whole_run_loss(trainer.state.log_history)
                metrics["resumed_from"] = checkpoint.name
            if budget is not None:
                metrics["stopped_by_max_time"] = budget.stopped
            metrics.update(pair_counts)
            metrics.update(learning_verdict(before, after))  # learned, learning_verdict, margin change
            _log_heldout(trainer, after)
            _close_trackers(trainer)
            result = TrainResult(method, trainer, metrics, None, before, after, answers=answers)
            if final is not None:
                result.files = _save(trainer, result, rundir, keep_checkpoints)
                result.output_dir = str(final)
            _release_training_state(trainer)
    say(result.summary())
    return result


# --- The output directory (rundir.py keeps it) ---
def model_name(model: Any) -> str:
    """The name or path a model was given or loaded by."""
    return str(model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "model"))


def _save(trainer, result: TrainResult, rundir: RunDir, keep_checkpoints: bool) -> dict[str, str]:
    """The model, tokenizer and report into the run's folder (whole), then the run is marked finished."""
    push, trainer.args.push_to_hub = trainer.args.push_to_hub, False  # pushed once, from the final folder
    with rundir.staged() as staging:
        trainer.save_model(str(staging))  # on every process: sharded models gather here
        files = write_run_files(result, staging) if rundir.main else {}
    trainer.args.push_to_hub = push
    rundir.finish(drop_checkpoints=not keep_checkpoints)
    if push:
        trainer.push_to_hub(commit_message="smol_align: trained model")
    return {k: str(rundir.path / Path(v).name) for k, v in files.items()}


# --- Signals, non-finite losses, secrets, processes ---
def as_callback(cls, *args):
    """An instance of ``cls`` that is also a ``transformers.TrainerCallback`` (its other events do nothing): callbacks
    here are plain classes so that importing smol_align does not import transformers."""
    from transformers import TrainerCallback

    return type(cls.__name__, (cls, TrainerCallback), {})(*args)


def _add_callback(trainer, cls, *args):
    callback = as_callback(cls, *args)
    trainer.add_callback(callback)
    return callback


CHECKPOINT_SECONDS = 600
"""A checkpoint every 10 minutes of training: a crash loses at most that. A checkpoint of the embedded
SmolLM2 (weights + AdamW state, 1.5 GB) takes 5.2 s on a 2-core CPU: one every quarter of the demo
would add 8% to its 3 minutes; on time, a run shorter than 10 minutes writes none (Ctrl-C still does)."""


class TimeBudget:
    """``max_time``: stop training after the step during which ``seconds`` of training time ran out on any process
    (the run then evaluates and saves as usual). The learning-rate schedule still follows ``max_steps``."""

    def __init__(self, seconds: float):
        self.seconds, self.started, self.stopped = seconds, 0.0, False  # stopped: the budget, not max_steps, ended it

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        out_of_time = time.perf_counter() - self.started >= self.seconds
        if _any_process(out_of_time) and state.global_step < state.max_steps:  # every rank stops at the same step
            control.should_training_stop = self.stopped = True
        return control


class TimedCheckpoints:
    """Ask TRL for a checkpoint at the first step end ``CHECKPOINT_SECONDS`` after the last one (or the start)."""

    last: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if _any_process(time.monotonic() - self.last >= CHECKPOINT_SECONDS):  # every process saves together
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
            cause = ("a bad pair (an empty completion, or one truncated to nothing by max_length: run "
                     "`smol-align doctor`), or a learning rate too high for this model")  # fmt: skip
        return (f"The {key.replace('_', ' ')} became {value} at step {step}: training stopped and the model was not "
                f"saved. Likely cause: {cause}.")  # fmt: skip


@contextmanager
def _stop_on_signal(trainer, checkpoint: bool):
    """SIGINT/SIGTERM: finish the step, save a checkpoint (if ``checkpoint``), stop; a second signal stops at once.
    Yields a list that gets the signal number. Outside the main thread (no signal handlers there) it does nothing."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        received.append(signum)
        if _is_main_process():
            print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                  "(again to stop at once)...", flush=True)  # fmt: skip

    class StopOnSignal:
        def on_step_end(self, args, state, control, **kwargs):
            if _any_process(bool(received)):
                if not received:
                    received.append(signal.SIGTERM)  # another process was told to stop
                control.should_training_stop, control.should_save = True, checkpoint
            return control

    callback = _add_callback(trainer, StopOnSignal)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        trainer.remove_callback(callback)


@contextmanager
def _hub_token_in_env(args):
    """Move ``args.hub_token`` into ``HF_TOKEN`` while inside: TRL pickles args into every checkpoint."""
    token, previous = getattr(args, "hub_token", None), os.environ.get("HF_TOKEN")
    if token:
        args.hub_token, os.environ["HF_TOKEN"] = None, token
    try:
        yield
    finally:
        if token and previous is None:
            del os.environ["HF_TOKEN"]
        elif token:
            os.environ["HF_TOKEN"] = previous


def _release_training_state(trainer) -> None:
    """Drop the optimizer and scheduler of a finished run (Adam's state is twice the model's size)."""
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.accelerator.free_memory()
    gc.collect()


def _is_main_process() -> bool:
    """Rank 0. Before a trainer exists, from torchrun's RANK: a PartialState() made now would fix the
    process as not distributed on a CPU (accelerate needs cpu=True there, which TRL's config passes)."""
    from accelerate import PartialState

    return (
        PartialState().is_main_process if distributed_state_made() else int(os.environ.get("RANK", "0")) == 0
    )


def _any_process(flag: bool) -> bool:
    """True if ``flag`` is set on any process (one all-reduce when there are several)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import reduce

    state = PartialState()
    return flag if state.num_processes == 1 else bool(reduce(torch.tensor([int(flag)], device=state.device), "max"))


# --- What a resume keeps ---
RESTORED_ON_RESUME = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim")
"""Settings a resume takes from its checkpoint, whatever it is given: the optimizer's hyperparameters
(its param groups) and the scheduler's base rate come back with their state. Other settings (beta,
max_steps...) apply as given."""


def _check_resumed_settings(rundir: RunDir, checkpoint: Path | None, asked: dict) -> None:
    """Refuse a resume given other values of :data:`RESTORED_ON_RESUME` than its run started with: the
    checkpoint's would be used and the new ones only written in metrics.json and report.md."""
    kept = rundir.marked().get("settings") if checkpoint is not None else None
    asked = {k: getattr(v, "value", v) for k, v in asked.items()}
    changed = {k: (kept[k], v) for k, v in asked.items() if kept and k in kept and kept[k] != v}
    if changed:
        was = ", ".join(f"{k}={old!r}" for k, (old, _) in changed.items())
        new = ", ".join(f"{k}={new!r}" for k, (_, new) in changed.items())
        raise ConfigError(
            f"resume=True continues the run in {rundir.path} from {checkpoint.name}, whose optimizer and "
            f"scheduler state hold {was}; this run asks for {new}, which the resumed optimizer would not "
            "use. Drop the new value to continue the run as it started, or start a new run with it "
            "(overwrite=True, or another output_dir)."
        )


def _at_the_end(trainer, checkpoint: Path) -> bool:
    """``checkpoint`` is of the run's last step, in safetensors (Trainer's resume would train one step past
    max_steps: it skips the trained batches, then trains the next one before it checks the step count)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    names = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
    whole = any((checkpoint / name).exists() for name in names)  # else Trainer's own loader, and its step
    return whole and 0 < trainer.args.max_steps <= state["global_step"]


def _restore_finished(trainer, checkpoint: Path):
    """The weights and trainer state of a checkpoint at the last step, with no training: the run's end."""
    from safetensors.torch import load_file
    from transformers import TrainerState
    from transformers.trainer_utils import TrainOutput

    from .models import is_peft

    weights = {}
    for path in sorted(checkpoint.glob("*.safetensors")):
        weights.update(load_file(str(path)))
    if is_peft(trainer.model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(trainer.model, weights)
    else:
        missing, unexpected = trainer.model.load_state_dict(weights, strict=False)
        tied = tied_weights_keys(trainer.model) | {"lm_head.weight"}
        missing = sorted(set(missing) - tied)
        if unexpected or missing:
            raise ConfigError(f"resume=True: {checkpoint} does not hold this model's weights (missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]}).")  # fmt: skip
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return TrainOutput(trainer.state.global_step, whole_run_loss(trainer.state.log_history), {})


# --- Figures of the run ---
def whole_run_loss(log_history: list[dict]) -> float | None:
    """The mean training loss over every logged step of the run, before and after a resume (each logged
    loss is the mean of the steps since the one logged before it, so it counts that many steps)."""
    total = steps = previous = 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] > previous:
            total += entry["loss"] * (entry["step"] - previous)
            steps, previous = steps + entry["step"] - previous, entry["step"]
    return total / steps if steps else None


def _preset_name(preset: str) -> str:
    hardware, mode = resolve(preset)
    return f"{hardware.name}+{mode.name}"


def _doctor(pairs):
    """``(line, report)``: the doctor's one-line summary of the training pairs, and its report (None if it failed)."""
    held = f"held out: {pairs.heldout}"
    if is_unpaired(pairs.train):  # the doctor checks pairs
        good = sum(pairs.train["label"])
        return f"Data ({pairs.name}, train; {held}): {len(pairs.train)} unpaired rows, {good} desirable", None
    try:
        report = doctor(pairs)
        return f"Data ({pairs.name}, train; {held}): " + report.summary_line(), report
    except Exception as err:  # the doctor must never stop a run; say why it could not look
        logger.warning("The data doctor could not check %s: %s", pairs.name, err)
        return f"Data ({pairs.name}): {len(pairs.train)} pairs, {held} (doctor unavailable: {err})", None


def _fit_max_length(trainer, method: str, train, say) -> dict[str, Any]:
    """Count, on the trainer's own tokenized pairs, what ``max_length`` drops and truncates, and say it
    (:func:`smol_align.data.doctor.length_fit`). ORPO keeps a pair whose prompt fills ``max_length`` with no
    answer token, and its loss is NaN on any step that holds one: dropped here, as TRL's DPO and KTO drop
    them. No pair left: :class:`ConfigError`. Returns the run's pair counts for its metrics."""
    if not hasattr(train, "__len__") or not hasattr(trainer.train_dataset, "__len__"):
        return {}  # streamed: counted as it is read, by TRL
    rows_in = len(train) * (2 if method == "kto" and not is_unpaired(train) else 1)  # KTO: a row per answer
    limit = getattr(trainer, "max_length", None) or trainer.args.max_length  # ORPO's None: its own 512
    mode, eos = getattr(trainer.args, "truncation_mode", "keep_start"), trainer.processing_class.eos_token_id
    counted = length_fit(trainer.train_dataset, rows_in, limit, "training", mode, eos)
    if counted is None:
        return {f"train_{'rows' if method == 'kto' else 'pairs'}": len(trainer.train_dataset)}
    if method == "orpo" and counted.dropped:
        desc = "Dropping pairs whose prompt fills max_length"
        trainer.train_dataset = trainer.train_dataset.filter(has_answer_tokens, desc=desc)
    unit = counted.unit
    if counted.kept == 0:
        raise ConfigError(
            f"No {unit} left to train: the prompt alone fills max_length={limit} tokens in all {rows_in:,} "
            f"training {unit}, which leaves no answer token to learn from, so they are dropped. Raise "
            "max_length (--max_length; the data's lengths: `smol-align doctor DATA --tokenizer MODEL "
            "--max-length N`) or shorten the prompts. Nothing was trained or saved."
        )
    if counted.line():
        say(counted.line())
    return {
        f"train_{unit}": counted.kept,
        f"{unit}_dropped_by_max_length": counted.dropped,
        f"{unit}_truncated_by_max_length": counted.truncated,
    }


def _heldout_fits(trainer, heldout, rows_in: int, say) -> bool:
    """Say how many held-out pairs TRL's tokenization dropped at ``max_length``; False when none is left."""
    counted = length_fit(heldout, rows_in, trainer.args.max_length, "held-out")
    if counted is None or not counted.dropped:
        return True
    limit = f"max_length={counted.max_length} tokens"
    if counted.kept == 0:
        say(
            f"No held-out figures: the prompt alone fills {limit} in all {rows_in:,} held-out pairs, which "
            "are dropped. Raise max_length (--max_length) or shorten the prompts."
        )
        return False
    say(
        f"{counted.dropped:,} of {rows_in:,} held-out pairs are dropped (the prompt alone fills {limit}): "
        f"the held-out figures are on the other {counted.kept:,}."
    )
    return True


def _plan_memory(model, method, preset, overrides, report, say) -> None:
    """Print the estimate before anything loads; left to ``auto``, the run is made to fit (``estimate.fit``). Sequences
    are as long as the data's longest pair: the doctor's chars/4 count, plus a quarter and 32 chat-template tokens."""
    try:
        lengths = report.lengths if report is not None else {}
        longest = lengths["prompt"].max + max(lengths["chosen"].max, lengths["rejected"].max) if lengths else None
        before = dict(overrides)
        plan = fit(model, method, preset, overrides, longest=int(longest * 1.25) + 32 if longest else None)
        say(plan.line())
        if overrides != before:
            say(f"To fit, preset {preset!r} trains with checkpointing, per-device batch {plan.setting['batch']} x "
                f"{plan.setting['accumulation']} accumulation steps (the same global batch).")  # fmt: skip
    except Exception as err:  # the estimate must never stop a run
        logger.info("No memory estimate: %s", err)


def _collect_metrics(method, model, preset, trainer, train_output, seconds, before, after, peak_before) -> dict[str, Any]:
    history = [h for h in trainer.state.log_history if "loss" in h]
    last = history[-1] if history else {}
    args, steps, tokens = trainer.args, trainer.state.global_step, last.get("num_tokens")
    return {
        "method": method, "model": model_name(model), "preset": _preset_name(preset), "learning_rate": args.learning_rate,
        "batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "steps": steps, "train_seconds": round(seconds, 2), "seconds_per_step": round(seconds / max(steps, 1), 3),
        "train_loss": train_output.training_loss, "final_loss": last.get("loss"),
        "peak_memory_gb": round(max(_peak_memory_bytes(), peak_before) / 2**30, 2),
        **({"tokens_per_second": round(tokens / seconds, 1)} if tokens else {}),
        **{f"train_{k}": v for k, v in last.items()
           if k.startswith(("rewards/", "logps/", "log_odds", "nll_loss", "kl", "constraint/"))},
        **(_heldout_metrics(before, "start") if before else {}),
        **(_heldout_metrics(after) if after else {}),
    }  # fmt: skip


def _heldout_metrics(figures: dict, prefix: str = "eval") -> dict[str, float]:
    """An evaluate() dict as flat metrics (``eval_reward_margin``...); the ``eval`` ones also under TRL's names, as
    ``trainer.evaluate()`` logs them (``eval_rewards/accuracies``, ``eval_rewards/margins``)."""
    found = {f"{prefix}_{k}": v for k, v in figures.items() if k != "logps" and isinstance(v, (int, float))}
    if prefix == "eval":
        found["eval_rewards/accuracies"] = figures["reward_accuracy"]
        found["eval_rewards/margins"] = figures["reward_margin"]
    return found


def _peak_memory_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _quiet_progress(trainer, quiet: bool) -> None:
    """Keep TRL's progress bar but show the loss on it instead of printing a dict every step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs:
                shown = {k.split("/")[-1]: f"{logs[k]:.3f}" for k in ("loss", "rewards/accuracies", "rewards/margins") if k in logs}
                self.training_bar.set_postfix(shown, refresh=False)

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(BarProgress())


# --- Trackers (report_to: TensorBoard, trackio, wandb...): TRL's own callbacks, fed the held-out figures too ---
def _tensorboard_into(trainer, folder: Path) -> None:
    """TensorBoard writes into the run's folder (transformers' default is ``<output_dir>/runs/<time>_<host>``, and
    with save=False the output_dir is a temporary one), unless ``TENSORBOARD_LOGGING_DIR`` names another."""
    if trainer.args.report_to:
        from transformers.integrations import TensorBoardCallback

        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
                callback.logging_dir = str(folder)


def _log_heldout(trainer, figures) -> None:
    """Held-out figures to the trackers at this step, by TRL's eval names (shown as ``eval/reward_margin``...); not
    through ``trainer.log``: the run's ``log_history`` (its report's curves) stays the training's."""
    if trainer.args.report_to and figures:
        trainer.callback_handler.on_log(trainer.args, trainer.state, trainer.control, _heldout_metrics(figures))


def _close_trackers(trainer) -> None:
    """End the run in every tracker. TensorBoard's writer and trackio's run close at the end of ``train()``, and the
    held-out figures logged after it reopen them: closed again. transformers leaves wandb's run open until the process
    ends, and the next run of a sweep in this process would log into it: finished."""
    if not trainer.args.report_to:
        return
    from transformers.integrations import TensorBoardCallback, TrackioCallback, WandbCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback | TrackioCallback):
            callback.on_train_end(trainer.args, trainer.state, trainer.control, model=trainer.model)
        elif isinstance(callback, WandbCallback):
            finish_wandb(callback)

"""The runner every entry point goes through: evaluate before -> train -> evaluate after -> save -> report.

Around TRL's ``trainer.train()`` it adds what a run needs to survive: one output directory written
whole, locked and cleaned up by :mod:`smol_align.rundir` (checkpoints go in while the run is
unfinished; the model and report are staged and moved in at the end; a run that fails before its
first checkpoint leaves nothing), ``resume`` (:mod:`smol_align.resume`: from the newest complete
checkpoint, with the settings the checkpoint holds), and the callbacks of :mod:`smol_align.callbacks`:
SIGINT/SIGTERM (checkpoint, then :class:`RunInterrupted`), ``max_time``, a stop at the first non-finite
loss (:class:`NonFiniteLoss`), trackers (``report_to``) named after the run's folder, fed the held-out
figures at step 0 and the last step. One writer under several processes; ``hub_token`` kept out of
``training_args.bin``; the figures collected by :mod:`smol_align.metrics`.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ._compat import (
    compact_lm_head_while,
    forward_without_autocast,
    no_cudnn_attention_while,
    tracker_names,
)
from .callbacks import (
    NonFiniteGuard,
    TimeBudget,
    TimedCheckpoints,
    add_callback,
    close_trackers,
    is_main_process,
    log_heldout,
    quiet_progress,
    stop_on_signal,
    tensorboard_into,
)
from .card import run_facts, write_card
from .data import doctor
from .data.doctor import fit_max_length, heldout_fits
from .data.images import is_vision
from .data.load import load
from .data.sft import is_sft_rows
from .data.tokens import tokenize_pairs
from .data.unpaired import is_unpaired, pairs_by_prompt
from .errors import ConfigError, SmolAlignError
from .estimate import plan_memory
from .evaluate import as_target_pairs, evaluate, evaluate_nll, generate
from .hub import push_to_hub
from .merge import merge, merged_line
from .metrics import answer_figures, collect_metrics, peak_memory_bytes, whole_run_loss
from .models import is_peft, model_name
from .options import Options
from .presets import check_settings, preset_name
from .report import learning_verdict, sft_verdict, summary_table, write_run_files
from .resume import RESTORED_ON_RESUME, at_the_end, check_resumed_settings, restore_finished
from .rundir import RunDir, default_output_dir, find_unfinished, skipped_line
from .trainers import build_trainer

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
    """What a run leaves: the TRL trainer, its figures and where the model was saved.

    The run prints its summary table once, at the end (not with ``quiet=True``); the result itself shows as one
    line (its ``repr``: method, verdict, folder), so a notebook cell ending in ``train_dpo(...)`` shows the table
    once too. :meth:`summary` gives the table as text, to save or log.
    """

    method: str
    trainer: Any  # trl.DPOTrainer, ORPOTrainer, KTOTrainer or SFTTrainer, trained
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
        """The end-of-run table the run printed, as text: ``print(result.summary())`` after a one-liner shows it
        a second time (the one-liner printed it already unless ``quiet=True``)."""
        return summary_table(self)

    def __repr__(self) -> str:
        verdict = self.metrics.get("learning_verdict")
        said = f", verdict={verdict!r}" if verdict else ""
        return (
            f"TrainResult(method={self.method!r}{said}, output_dir={self.output_dir!r}, "
            f"metrics={{{len(self.metrics)} keys}})"
        )


def run(method: str, model, dataset, preset: str, output_dir, options: Options, baseline=None) -> TrainResult:
    """One training run of ``method`` with ``options`` (:func:`smol_align.options.split_options` of the keywords
    of :func:`smol_align.train_dpo`). ``baseline`` (compare's): an earlier :class:`TrainResult` on the same data,
    whose start figures and answers are reused."""
    opts, config = options.run, dict(options.config)  # config: this run's copy, which the runner fills in
    save, run_eval, resume, quiet, max_time = opts.save, opts.evaluate, opts.resume, opts.quiet, opts.max_time
    if config.get("resume_from_checkpoint"):  # TRL's name: True, or a checkpoint-N folder of output_dir
        given = config.pop("resume_from_checkpoint")
        resume, output_dir = True, output_dir or (str(Path(given).parent) if isinstance(given, str) else None)
    keep_checkpoints = "save_strategy" in config or "save_steps" in config  # yours stay; ours go at the end
    if "save_steps" in config:
        config.setdefault("save_strategy", "steps")  # TRL's default strategy, which the presets turn off
    # Every setting can learn, before anything is read, written or loaded
    check_settings(method, config)
    main = is_main_process()
    say = print if main and not quiet else (lambda *a: None)

    if resume and not save:
        raise ConfigError("resume=True needs a saved run: it continues from the checkpoints in output_dir.")
    if (opts.merge or opts.merged_dir) and not save:
        raise ConfigError("merge=True needs a saved run: it merges the adapter saved in output_dir.")
    # The run's folder: the model and report (unless save=False) and TensorBoard's event files. Trackers name the run
    # after it and its project after the folder that holds it, so the runs of a sweep (runs/<sweep>/<value>) or of
    # compare (<report>/<method>) are one project and their curves overlay.
    name = model_name(model)
    folder = Path(output_dir or (find_unfinished if resume else default_output_dir)(method, name))
    final = folder if save else None
    config = {**tracker_names(folder), **config}
    inputs = [dataset, options.data.eval_dataset, model, options.model.ref_model]  # never emptied
    rundir = (
        RunDir(final, overwrite=opts.overwrite, resume=resume, inputs=inputs, main=main) if save else None
    )
    if rundir is not None:
        rundir.check()  # before any work; again under the folder's lock when the run takes it

    data = load(dataset, **options.data.keywords())
    eval_data = data.eval
    line, report = _doctor(data)
    say(line)
    if is_unpaired(
        eval_data
    ):  # KTO's own rows: figures on the pairs that held-out prompts with both labels make
        eval_data = pairs_by_prompt(eval_data)
        say(
            f"Held-out figures on {len(eval_data)} pairs: held-out prompts with a desirable and an undesirable answer."
            if eval_data
            else "No held-out figures: no held-out prompt has both a desirable and an undesirable "
            "answer (pass eval_dataset= with pairs, or held-out rows of both labels for some prompts)."
        )
    model_settings = options.model.preset_keywords()  # LoRA, 4-bit, dtype: the estimate reads them too
    settings = {**config, **model_settings}
    plan_memory(model, method, preset, settings, report, say)  # it may set the batch and checkpointing
    config.update({k: v for k, v in settings.items() if k not in model_settings})
    if final is not None and config.get("push_to_hub") and not config.get("hub_model_id"):
        config["hub_model_id"] = final.name  # the repo is named after the run
    if final is not None:  # checkpoints: yours (save_strategy/save_steps), else one every CHECKPOINT_SECONDS
        config.setdefault("save_total_limit", 1)  # only the last one is kept, and none once the run is done
    # save=False: TRL still wants an output_dir; a temporary one, removed at the end, keeps the current folder clean
    temporary = nullcontext(final) if final else TemporaryDirectory(prefix="smol_align-")
    with rundir or nullcontext(), temporary as out:
        checkpoint = rundir.checkpoint if rundir is not None else None
        if rundir is not None and rundir.skipped:
            say(f"{skipped_line(rundir.skipped)} Resuming from {checkpoint.name}, the newest complete one.")
        built = replace(options, config={**config, "output_dir": str(out)})
        trainer = build_trainer(method, model, data, preset, built)
        if (opts.merge or opts.merged_dir) and not is_peft(trainer.model):
            raise ConfigError(
                f"merge=True merges a LoRA adapter into its base, and this run trains the whole model (preset "
                f"{preset_name(preset)}): its folder will hold the whole model already. Drop merge, or train "
                "a LoRA adapter (preset='lora' or 'qlora-4bit'; CLI --preset lora)."
            )
        pair_counts = fit_max_length(trainer, method, data.train, say)  # max_length's cuts, as TRL tokenized
        quiet_progress(trainer, quiet or not main)
        tensorboard_into(trainer, folder)
        # FSDP or ZeRO-3: before training the weights are sharded (ZeRO-3) or, loaded CPU-RAM-efficiently, on the CPU of
        # rank 0 alone (FSDP); smol_align's own evaluation calls the bare model, which would not see them.
        zero_stage = getattr(getattr(trainer.accelerator.state, "deepspeed_plugin", None), "zero_stage", None)
        if run_eval and (trainer.is_fsdp_enabled or zero_stage == 3):
            run_eval = False
            say(
                "Held-out figures skipped: under FSDP or ZeRO-3 the weights are sharded (or not yet on the GPU) until "
                "training starts; pass eval_strategy='steps' (or 'epoch') for TRL's own evaluation, which handles it."
            )
        beta = (
            trainer.args.beta if method in ("dpo", "kto") else 0.1
        )  # their implicit reward beta*log(pi/ref)
        beta = (
            baseline.before["beta"] if baseline is not None and baseline.before else beta
        )  # compare: one scale
        tokenizer = trainer.processing_class
        if rundir is not None:  # unfinished until _save; a resume keeps the settings its checkpoint holds
            kept = {k: getattr(trainer.args, k) for k in RESTORED_ON_RESUME}
            check_resumed_settings(rundir, checkpoint, kept)
            started = {} if checkpoint else {"settings": kept}  # a resume keeps the record of its start
            rundir.mark(method=method, max_steps=trainer.args.max_steps, **started)

        # Held-out figures through TRL (a DPO trainer's own tokenized eval_dataset; ORPO's rows tokenized as DPO does),
        # at the trainer's max_length and under its autocast (bf16 where it trains in bf16).
        # SFT: the held-out NLL of the targets (of pairs: the chosen answers, beside DPO's figures)
        heldout = trainer.eval_dataset if method == "dpo" else eval_data
        targets_only = method == "sft" and is_sft_rows(eval_data)  # held-out SFT rows: no rejected answer
        if run_eval and heldout is not None and method != "dpo":  # tokenized once for before and after
            heldout = as_target_pairs(heldout) if targets_only else heldout
            heldout = tokenize_pairs(heldout, tokenizer, max_length=trainer.args.max_length)
        if run_eval and heldout is not None and not heldout_fits(trainer, heldout, len(eval_data), say):
            run_eval = False
        before = after = None
        answers: dict[str, list] = {}

        def figures(policy, ref_logps=None, answer_to=None):
            with trainer.accelerator.autocast():
                if targets_only:
                    found = evaluate_nll(
                        policy, heldout, tokenizer, opts.max_eval_pairs, max_length=trainer.args.max_length
                    )
                else:
                    found = evaluate(
                        policy,
                        heldout,
                        tokenizer=tokenizer,
                        beta=beta,
                        max_pairs=opts.max_eval_pairs,
                        max_length=trainer.args.max_length,
                        ref_logps=ref_logps,
                    )
                if method == "sft" and not targets_only:
                    found["nll"] = found["nll_chosen"]  # the targets are the chosen answers
                if answer_to:
                    answers[answer_to] = generate(
                        policy, answers["prompt"], tokenizer, opts.answer_tokens, batch_size=16
                    )
            return {**found, **answer_figures(answers[answer_to], opts.voice)} if answer_to else found

        if run_eval and eval_data is not None and baseline is not None:
            before, answers = (
                baseline.before,
                {k: v for k, v in baseline.answers.items() if k in ("prompt", "start")},
            )
        elif run_eval and eval_data is not None:
            scored = min(len(heldout), opts.max_eval_pairs or len(heldout))  # those TRL kept at max_length
            say(f"Evaluating the start model on {scored} held-out {'rows' if targets_only else 'pairs'}...")
            answered = 0 if is_vision(eval_data) else min(opts.answer_prompts, len(eval_data))  # not images
            asked = eval_data.select(range(answered))
            answers["prompt"] = asked["prompt"] if "prompt" in asked.column_names else []  # SFT's text rows
            before = figures(trainer.model, answer_to="start" if answers.get("prompt") else None)
        answers = answers if answers.get("prompt") else {}
        if checkpoint is None:
            log_heldout(trainer, before)  # step 0: each run's held-out curve starts at the start model

        steps = trainer.args.max_steps if trainer.args.max_steps > 0 else "full epochs"
        batch = trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps
        say(
            f"Training {method.upper()} with preset {preset_name(preset)}: {steps} steps, batch {batch}"
            + (f", at most {max_time:g} minutes" if max_time else "")
            + (f", resuming from {checkpoint}." if checkpoint else ".")
        )
        peak_before = peak_memory_bytes()
        with _hub_token_in_env(trainer.args):  # kept out of every training_args.bin written from here on
            started = time.perf_counter()
            with stop_on_signal(trainer, checkpoint=final is not None) as stopped:
                guard = add_callback(trainer, NonFiniteGuard)
                budget = add_callback(trainer, TimeBudget, max_time * 60) if max_time else None
                if final is not None and not keep_checkpoints:
                    add_callback(trainer, TimedCheckpoints)
                device = (
                    trainer.accelerator.device
                )  # CPU: TRL's LM head scores only completion tokens; CUDA: no cuDNN SDPA
                with compact_lm_head_while(device), no_cudnn_attention_while(device):
                    if checkpoint is not None and at_the_end(trainer, checkpoint):  # stopped while saving
                        train_output = restore_finished(trainer, checkpoint)
                    else:
                        resume_from = str(checkpoint) if checkpoint else None
                        train_output = trainer.train(resume_from_checkpoint=resume_from)
            train_seconds = time.perf_counter() - started
            # accelerate's prepare leaves the forward under its autocast for good: hand back the model as saved
            forward_without_autocast(trainer.model)
            if guard.bad is not None:
                raise NonFiniteLoss(guard.message(trainer.args))
            if stopped and trainer.state.global_step < trainer.state.max_steps:
                name, step, code = (
                    signal.Signals(stopped[0]).name,
                    trainer.state.global_step,
                    128 + stopped[0],
                )
                if final is None:
                    raise RunInterrupted(
                        f"{name}: training stopped at step {step}; nothing was saved (save=False).", code
                    )
                raise RunInterrupted(
                    f"{name}: training stopped at step {step} of {trainer.state.max_steps}; checkpoint saved in {final}. "
                    f"Continue with the same command plus `--resume --output-dir {final}` (Python: resume=True, "
                    f"output_dir={str(final)!r}).",
                    code,
                )

            if before is not None:
                say("Evaluating the trained model...")
                after = figures(trainer.model, before["logps"], answer_to="trained" if answers else None)

            figures_of_run = (train_output, train_seconds, before, after, peak_before)
            metrics = collect_metrics(method, model, preset, trainer, *figures_of_run)
            if checkpoint is not None:  # the whole run's loss, not the resumed steps' only
                metrics["train_loss"] = whole_run_loss(trainer.state.log_history)
                metrics["resumed_from"] = checkpoint.name
            if budget is not None:
                metrics["stopped_by_max_time"] = budget.stopped
            metrics.update(pair_counts)
            verdict = sft_verdict if method == "sft" else learning_verdict  # SFT: did the held-out NLL fall?
            metrics.update(verdict(before, after))  # learned, learning_verdict, the change it reads
            metrics.update(run_facts(model, dataset, data, trainer.model))  # what the model card says
            log_heldout(trainer, after)
            close_trackers(trainer)
            result = TrainResult(method, trainer, metrics, None, before, after, answers=answers)
            if final is not None:
                result.files = _save(trainer, result, rundir, keep_checkpoints, opts, say)
                result.output_dir = str(final)
            _release_training_state(trainer)
    say(result.summary())
    return result


# --- The output directory (rundir.py keeps it) ---
def _save(trainer, result: TrainResult, rundir: RunDir, keep_checkpoints: bool, opts, say) -> dict[str, str]:
    """The model, tokenizer, report and model card into the run's folder (whole), then the run is marked
    finished; then, if asked, the LoRA adapter merged into its base and the folder pushed to the Hub."""
    push, trainer.args.push_to_hub = trainer.args.push_to_hub, False  # pushed once, from the final folder
    with rundir.staged() as staging:
        trainer.save_model(str(staging))  # on every process: sharded models gather here
        files = write_run_files(result, staging) if rundir.main else {}
        if rundir.main:  # last: over the card PEFT's save_pretrained writes
            files["card"] = str(write_card(staging, result.metrics, name=rundir.path.name))
    trainer.args.push_to_hub = push
    rundir.finish(drop_checkpoints=not keep_checkpoints)
    if rundir.main and (opts.merge or opts.merged_dir):
        merged = merge(rundir.path, opts.merged_dir, overwrite=opts.overwrite)
        files["merged"] = str(merged)
        say(merged_line(rundir.path, merged))
    if push and rundir.main:
        args = trainer.args
        repo = push_to_hub(rundir.path, args.hub_model_id, private=args.hub_private_repo or None)
        say(f"Pushed {rundir.path} with its model card to the Hub repo {repo}.")
    return {k: str(rundir.path / Path(v).name) if k != "merged" else v for k, v in files.items()}


# --- Secrets, memory ---


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


# --- Figures of the run ---
def _doctor(pairs):
    """``(line, report)``: the doctor's one-line summary of the training pairs, and its report (None if it failed)."""
    held = f"held out: {pairs.heldout}"
    if is_sft_rows(pairs.train):  # the doctor checks pairs
        return f"Data ({pairs.name}, train; {held}): {len(pairs.train)} SFT rows ({pairs.format})", None
    if is_unpaired(pairs.train):  # the doctor checks pairs
        good = sum(pairs.train["label"])
        return f"Data ({pairs.name}, train; {held}): {len(pairs.train)} unpaired rows, {good} desirable", None
    try:
        report = doctor(pairs)
        return f"Data ({pairs.name}, train; {held}): " + report.summary_line(), report
    except Exception as err:  # the doctor must never stop a run; say why it could not look
        logger.warning("The data doctor could not check %s: %s", pairs.name, err)
        return f"Data ({pairs.name}): {len(pairs.train)} pairs, {held} (doctor unavailable: {err})", None

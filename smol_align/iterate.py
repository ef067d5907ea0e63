"""Iterative DPO (or ORPO, or RFT) with a pluggable reward: sample, score, pair best with worst (RFT: keep the
best), train a round, repeat.

# The demo: embedded SmolLM2, the demo's prompts, the shipped rule reward (pirate voice, the fact kept, no repeats)
smol-align iterate --rounds 2 --output-dir runs/iterate-demo

# Rejection-sampling fine-tuning: keep each prompt's best answer, fine-tune on it (TRL's SFTTrainer)
smol-align iterate --method rft --rounds 2 --output-dir runs/rft-demo

# From Python: any TRL-style reward function, or a sequence-classification reward model's name or folder
>>> from smol_align import iterate
>>> result = iterate(rounds=2, samples=4, max_steps=20)  # prints each round, then the table  # doctest: +SKIP

Each round samples ``samples`` answers per prompt from the current model (batched, seeded), scores them with
``reward(prompts, completions, **kwargs) -> list[float]`` (TRL's convention, as GRPO and online DPO take it),
pairs the best answer with the worst (ties and near-ties skipped and counted), trains one run of
:func:`smol_align.run.run` on the new pairs (with ``accumulate=True``, on every round's pairs so far), and scores
the greedy answers to the held-out prompts. With ``method="rft"`` (rejection-sampling fine-tuning) a round
keeps answers instead of pairing them (:func:`keep_answers`: each prompt's best, or every answer at or above
a threshold) and fine-tunes on them as prompt/completion rows (``run("sft", ...)``, TRL's ``SFTTrainer``).
The report directory holds ``round-<k>/`` (the run folder: model, its report, plus ``samples.jsonl`` and
``pairs.jsonl``, RFT: ``kept.jsonl``), ``metrics.json``, ``report.md``, ``training.png`` and
``heldout.png``; it is written whole or not at all.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._compat import library_noise_filtered
from .card import recorded
from .demo import DEMO_SYSTEM as DEMO_SYSTEM  # its old home: iterate.DEMO_SYSTEM
from .demo import demo_prompts, demo_recipe, demo_reward
from .errors import ConfigError
from .models import DEFAULT_MODEL, cpu_has_native_bf16, gpu_has_native_bf16, load_tokenizer, loading

logger = logging.getLogger(__name__)

DEMO_PROMPTS, DEMO_SAMPLES, DEMO_STEPS, DEMO_BATCH = (
    128,
    8,
    24,
    16,
)  # a round: 128 fresh prompts x 8 answers, 24 steps of 16
DEMO_HELDOUT = 131  # all the demo's test questions
GENERATION_BATCH = (
    64  # answers generated at once (1.5x the answers a second of batches of 16, on 2 CPU cores)
)
COLUMNS: tuple[str, ...] = ("heldout_reward", "win_rate", "pairs", "skipped", "train_pairs", "seconds")
"""Columns of the per-round table (the first, ``model``, names the row: ``start``, ``round 1``...)."""
RFT_COLUMNS: tuple[str, ...] = (
    "heldout_reward",
    "win_rate",
    "kept",
    "kept_reward",
    "skipped",
    "train_rows",
    "seconds",
)
"""The same for ``method="rft"``: answers kept, their mean reward, prompts that kept none, rows trained."""
METHODS = ("dpo", "orpo", "rft")
TRAINED_WITH = {"dpo": "dpo", "orpo": "orpo", "rft": "sft"}  # the run each round of a method is


@dataclass
class IterationResult:
    """What :func:`iterate` leaves: one row of figures per round, each round's run, the files."""

    metrics: dict[
        str, dict[str, Any]
    ]  # "start", "round 1"...: held-out reward, win rate, pairs, skipped, seconds
    report_dir: str
    rounds: list[Any] = field(default_factory=list)  # TrainResult per round (None: no pairs, no training)
    answers: dict[str, list[str]] = field(
        default_factory=dict
    )  # "start", "round 1"...: greedy held-out answers
    files: dict[str, str] = field(default_factory=dict)
    method: str = "dpo"

    @property
    def model(self):
        """The last trained model."""
        trained = [r for r in self.rounds if r is not None]
        return trained[-1].model if trained else None

    def table(self) -> str:
        from .report import terminal_table

        return terminal_table(self.metrics, RFT_COLUMNS if self.method == "rft" else COLUMNS)


def _text(x) -> str:
    return x if isinstance(x, str) else str(x[-1].get("content", "")) if x else ""


def reward_model(name_or_path: str, batch_size: int = 16):
    """A sequence-classification reward model as a TRL-style reward function (the first logit of
    ``prompt + completion`` through its chat template, as TRL's GRPO scores with one)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with loading(name_or_path, needs=("config",), what="reward model"):
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path).eval()
    tokenizer = load_tokenizer(name_or_path, what="reward model")
    if (
        tokenizer.pad_token is None
    ):  # a batch needs one, and the model needs its id to find each row's last token
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = (
        model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.pad_token_id
    )

    def reward(prompts, completions, **kwargs) -> list[float]:
        if isinstance(prompts[0], str) or not tokenizer.chat_template:
            texts = [_text(p) + "\n" + _text(c) for p, c in zip(prompts, completions, strict=True)]
        else:
            texts = [
                tokenizer.apply_chat_template(list(p) + list(c), tokenize=False)
                for p, c in zip(prompts, completions, strict=True)
            ]
        scores: list[float] = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                )
                scores += model(**enc).logits[:, 0].float().tolist()
        return scores

    return reward


# --------------------------------------------------------------------------------------------
# iterate()
# --------------------------------------------------------------------------------------------


@recorded  # the call, in each run's model card
@library_noise_filtered()  # the libraries' noise, while it runs (SMOL_ALIGN_VERBOSE=1 shows it)
def iterate(
    model: Any = DEFAULT_MODEL,
    prompts: Any = None,
    reward: Any = None,
    method: str = "dpo",
    rounds: int = 2,
    samples: int | None = None,
    preset: str = "auto",
    output_dir: str | None = None,
    *,
    tokenizer: Any = None,
    eval_prompts: Any = None,
    per_round: int | None = None,
    accumulate: bool = False,
    min_gap: float = 0.05,
    keep: str | float | None = None,
    max_new_tokens: int = 32,
    temperature: float = 0.7,
    top_p: float = 1.0,
    seed: int = 0,
    save: bool = True,
    overwrite: bool = False,
    quiet: bool = False,
    **overrides,
) -> IterationResult:
    """Iterative preference training of ``model`` on its own answers to ``prompts``, scored by ``reward``.

    Args:
        model: a name or folder (loaded once) or a loaded model (copied, left untouched; pass ``tokenizer=``).
        prompts: a list of prompts (strings or message lists) or a file of ``prompt`` rows; ``None``: the demo's
            training prompts, ``DEMO_PROMPTS`` fresh ones a round (and the first ``DEMO_HELDOUT`` test prompts held
            out), ``DEMO_SAMPLES`` answers each, ``DEMO_STEPS`` steps of ``DEMO_BATCH`` pairs a round, the demo recipe.
        reward: ``fn(prompts, completions, **kwargs) -> list[float]`` (completions in the prompts' form: strings,
            or ``[{"role": "assistant", "content": ...}]``), or a sequence-classification model's name or folder;
            ``None``: :func:`demo_reward`.
        method: ``"dpo"`` or ``"orpo"`` (pairs), or ``"rft"`` (kept answers, trained as ``"sft"``), trained
            through :func:`smol_align.run.run` with ``preset``.
        rounds: rounds of sample-score-train.
        samples: answers sampled per prompt each round (at least 2; default 4, the demo ``DEMO_SAMPLES``).
        eval_prompts: held-out prompts whose greedy answers are scored each round; default: the demo's test prompts,
            else 20% of ``prompts`` (at most 64), chosen by ``seed``.
        per_round: prompts a round: round k answers the k-th slice of ``prompts`` (wrapping round), so each round
            meets prompts it has not trained on; ``None``: every prompt every round (the demo: ``DEMO_PROMPTS``).
        accumulate: train each round on every round's pairs so far, not only its own.
        min_gap: a prompt whose best and worst scores differ by this or less makes no pair (counted
            ``skipped``); RFT with ``keep="best"``: keeps no answer.
        keep: RFT only: ``"best"`` (default): each prompt's best-scored answer; a number: every distinct
            answer scoring at or above it (see :func:`keep_answers`).
        max_new_tokens: the longest sampled answer, in tokens (the held-out answers are greedy, in the model's
            own precision, same length).
        temperature: sampling temperature (sampling runs in bf16 where bf16 is native).
        top_p: nucleus sampling's share of probability mass.
        seed: sampling (``seed + round``) and training seed.
        save: keep each round's model in ``round-<k>/`` (its samples and pairs are always written); the next round
            trains that saved copy (the trained model kept in memory took 30-80% longer a step here).
        **overrides: for every round's run (``max_steps``, ``learning_rate``, ``beta``...); with the demo prompts
            the demo recipe fills in what is not given.
    """
    from .evaluate import generate
    from .models import is_peft, load_model, model_name
    from .options import split_options
    from .report import write_report
    from .run import run
    from .rundir import RunDir, default_output_dir

    if method not in METHODS:
        raise ConfigError(f"iterate trains with method 'dpo', 'orpo' or 'rft', got {method!r}.")
    keep = _check_keep(method, keep)
    _check_overrides(TRAINED_WITH[method], overrides)
    samples = (DEMO_SAMPLES if prompts is None else 4) if samples is None else samples
    if rounds < 1 or samples < 2:
        raise ConfigError(
            f"iterate needs rounds >= 1 and samples >= 2, got rounds={rounds!r}, samples={samples!r}."
        )
    if not isinstance(model, str) and tokenizer is None:
        raise ConfigError(
            "A loaded model needs its tokenizer: pass tokenizer=... (or pass the model by name)."
        )
    say = (lambda *a: None) if quiet else print
    train_prompts, eval_prompts = split_prompts(prompts, eval_prompts, seed)
    reward_fn = (
        demo_reward
        if reward is None
        else reward_model(str(reward))
        if isinstance(reward, (str, Path))
        else reward
    )
    if prompts is None:  # the demo: its recipe, as smol-align dpo|orpo runs it, shorter rounds
        batch = {
            "per_device_train_batch_size": DEMO_BATCH,
            "gradient_accumulation_steps": 1,
        }  # at the CPU preset's 8, round 1 hung on data order
        recipe = demo_recipe(TRAINED_WITH[method], preset)
        overrides = {**recipe, "max_steps": DEMO_STEPS, **batch, **overrides}
        per_round = per_round or DEMO_PROMPTS
    per_round = min(per_round or len(train_prompts), len(train_prompts))
    start_name = model_name(model)
    report_dir = Path(output_dir or default_output_dir("iterate", start_name))
    inputs = [model, prompts, eval_prompts, reward]  # overwrite never empties a folder holding them
    rundir = RunDir(report_dir, overwrite=overwrite, inputs=inputs, what="iteration")
    rundir.check()  # before any work; again under the folder's lock when it is taken
    if isinstance(model, str):
        model, loaded = load_model(model)
        tokenizer = tokenizer or loaded
    else:
        model = copy.deepcopy(model)

    def heldout(policy) -> tuple[list[str], list[float]]:
        answers = generate(policy, eval_prompts, tokenizer, max_new_tokens, batch_size=GENERATION_BATCH)
        return answers, reward_fn(
            eval_prompts, [_as_completion(p, a) for p, a in zip(eval_prompts, answers, strict=True)]
        )

    with rundir:  # written whole or not at all
        say(f"Scoring the start model's greedy answers to {len(eval_prompts)} held-out prompts...")
        started = time.perf_counter()
        start_answers, start_scores = heldout(model)
        metrics = {
            "start": {"heldout_reward": _mean(start_scores), "win_rate": 0.5, "seconds": _since(started)}
        }
        answers, runs, all_pairs = {"start": start_answers}, [], []
        rft = method == "rft"
        for k in range(1, rounds + 1):
            started, name, folder = time.perf_counter(), f"round {k}", report_dir / f"round-{k}"
            first = (k - 1) * per_round % len(train_prompts)
            asked_once = (train_prompts * 2)[first : first + per_round]
            say(f"\n=== Round {k}/{rounds}: {samples} answers to each of {per_round} prompts ===")
            asked = [p for p in asked_once for _ in range(samples)]
            with _sampling_precision(model):
                sampled = generate(
                    model,
                    asked,
                    tokenizer,
                    max_new_tokens,
                    batch_size=GENERATION_BATCH,
                    sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    seed=seed + k,
                )
            scores = reward_fn(asked, [_as_completion(p, a) for p, a in zip(asked, sampled, strict=True)])
            if rft:
                kept, skipped = keep_answers(asked_once, sampled, scores, samples, keep, min_gap)
                pairs = [{c: v for c, v in row.items() if c != "score"} for row in kept]
            else:
                pairs, skipped = best_vs_worst(asked_once, sampled, scores, samples, min_gap)
            all_pairs += pairs
            trained = all_pairs if accumulate else pairs
            why = (
                f"no answer scores {keep} or more"
                if isinstance(keep, float)
                else f"best - worst <= {min_gap}"
            )
            say(
                f"{len(pairs)} {'answers kept' if rft else 'pairs made'}, {skipped} prompts skipped ({why}); "
                f"training on {len(trained)}."
            )
            result = None
            if trained:
                run_overrides = {
                    **overrides,
                    "seed": seed,
                    "tokenizer": tokenizer,
                    "eval_split": 0,
                    "evaluate": False,
                    "save": save,
                    "quiet": quiet,
                }
                typed = split_options(TRAINED_WITH[method], run_overrides, "iterate")
                result = run(TRAINED_WITH[method], model, list(trained), preset, str(folder), typed)
                model = result.model
                if is_peft(model):  # the next round trains the merged model, its own reference
                    model = model.merge_and_unload()
                elif save:  # the same weights, faster to train than the model in memory (see save)
                    model = load_model(str(folder), dtype=model.dtype)[0].to(model.device)
            folder.mkdir(exist_ok=True)
            _write_jsonl(
                folder / "samples.jsonl",
                [
                    {
                        "prompt": p,
                        "completions": sampled[i * samples : (i + 1) * samples],
                        "scores": scores[i * samples : (i + 1) * samples],
                    }
                    for i, p in enumerate(asked_once)
                ],
            )
            _write_jsonl(folder / ("kept.jsonl" if rft else "pairs.jsonl"), kept if rft else pairs)
            answers[name], round_scores = heldout(model)
            wins = [
                1.0 if b > a else 0.5 if b == a else 0.0
                for a, b in zip(start_scores, round_scores, strict=True)
            ]
            made = (
                {"kept": len(pairs), "kept_reward": _mean(r["score"] for r in kept)}
                if rft
                else {"pairs": len(pairs)}
            )
            metrics[name] = {
                "heldout_reward": _mean(round_scores),
                "win_rate": _mean(wins),
                **made,
                "skipped": skipped,
                ("train_rows" if rft else "train_pairs"): len(trained),
                "sampled_reward": _mean(scores),
                "steps": result.metrics["steps"] if result else 0,
                "seconds": _since(started),
            }
            runs.append(result)
            say(
                f"Round {k}: held-out reward {metrics[name]['heldout_reward']:.3f} "
                f"(start {metrics['start']['heldout_reward']:.3f}), win rate vs start {metrics[name]['win_rate']:.3f}"
            )

        settings = {
            "model": start_name,
            "method": method,
            "preset": preset,
            "rounds": rounds,
            "samples": samples,
            "accumulate": accumulate,
            "min_gap": min_gap,
            **({"keep": keep} if rft else {}),
            "train_prompts": len(train_prompts),
            "per_round": per_round,
            "heldout_prompts": len(eval_prompts),
            "temperature": temperature,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
            "reward": getattr(reward_fn, "__name__", str(reward)),
            "overrides": {k: v for k, v in overrides.items() if k not in ("callbacks",)},
        }
        side_by_side = [
            {"prompt": p, "answers": {n: a[i] for n, a in answers.items()}}
            for i, p in enumerate(eval_prompts[:4])
        ]
        title = "Rejection-sampling fine-tuning (RFT)" if rft else f"Iterative {method.upper()}"
        with rundir.staged() as staging:
            files, _ = write_report(
                staging,
                f"{title}: {rounds} rounds",
                metrics,
                {f"round {k}": r.trainer.state.log_history for k, r in enumerate(runs, 1) if r is not None},
                side_by_side,
                settings,
                RFT_COLUMNS if rft else COLUMNS,
                _RFT_NOTES if rft else _NOTES,
                plot_columns=("heldout_reward", "win_rate", "kept" if rft else "pairs", "skipped"),
            )
        rundir.finish()
    files = {k: str(report_dir / Path(v).name) for k, v in files.items()}
    result = IterationResult(metrics, str(report_dir), runs, answers, files, method)
    say(f"\n{title}, report in {report_dir}:\n{result.table()}")
    return result


def _check_overrides(method: str, overrides: dict) -> None:
    """Each round's keywords, checked before the first answer is sampled: known names, settings that learn."""
    import inspect

    from .options import split_options
    from .presets import check_settings

    split_options(method, overrides, "iterate", also_named=inspect.signature(iterate).parameters)
    check_settings(method, overrides)


def _check_keep(method: str, keep) -> str | float:
    """RFT's ``keep``: ``"best"`` (its default) or a finite number; refused for the pairing methods."""
    import math

    if method != "rft":
        if keep is not None:
            raise ConfigError(
                f"keep={keep!r} chooses the answers RFT trains on; method={method!r} pairs each prompt's "
                "best answer with its worst (min_gap= sets which prompts make a pair). Pass method='rft' "
                "or drop keep."
            )
        return "best"
    if keep is None or keep == "best":
        return "best"
    number = None if isinstance(keep, bool) else _number(keep)
    if number is None or not math.isfinite(number):
        raise ConfigError(
            f"keep={keep!r}: RFT keeps 'best' (each prompt's best-scored answer) or every answer whose "
            "reward is at or above a number (keep=2.5; on the command line --keep 2.5). Pass one of those."
        )
    return number


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def keep_answers(
    prompts, completions, scores, samples: int, keep: str | float = "best", min_gap: float = 0.05
) -> tuple[list[dict], int]:
    """RFT's training rows and the number of prompts that kept no answer. ``completions`` and ``scores`` hold
    ``samples`` entries per prompt, in the prompts' order.

    ``keep="best"``: each prompt's best-scored answer (the first drawn of those tied at the top), the chosen
    answer :func:`best_vs_worst` would pair; a prompt whose answers all score within ``min_gap`` of each other
    has no best and keeps none. A number: every distinct answer scoring at or above it (an answer drawn twice
    is kept once); a prompt with none keeps none. A row is ``{"prompt": messages, "completion": [assistant
    message], "score": reward}`` (the trainer gets the row without ``score``).
    """
    rows, skipped = [], 0
    for i, prompt in enumerate(prompts):
        got = _scored(i, completions, scores, samples)
        if keep == "best":
            best, worst = max(got, key=lambda x: x[0]), min(got, key=lambda x: x[0])
            chosen = [best] if best[0] - worst[0] > min_gap else []
        else:  # each distinct answer once, at its first draw
            chosen, seen = [], set()
            for score, answer in got:
                if score >= keep and answer not in seen:
                    seen.add(answer)
                    chosen.append((score, answer))
        skipped += not chosen
        rows += [
            {
                "prompt": _as_messages(prompt),
                "completion": [{"role": "assistant", "content": answer}],
                "score": score,
            }
            for score, answer in chosen
        ]
    return rows, skipped


def _scored(i: int, completions, scores, samples: int) -> list[tuple[float, str]]:
    """``(score, answer)`` of the ``samples`` answers to the ``i``-th prompt."""
    span = slice(i * samples, (i + 1) * samples)
    return list(zip(scores[span], completions[span], strict=True))


def best_vs_worst(prompts, completions, scores, samples: int, min_gap: float) -> tuple[list[dict], int]:
    """Pairs (chosen: the best-scored answer to a prompt, rejected: the worst) and the number of prompts skipped
    because their best and worst scores differ by ``min_gap`` or less. ``completions`` and ``scores`` hold
    ``samples`` entries per prompt, in the prompts' order."""
    pairs, skipped = [], 0
    for i, prompt in enumerate(prompts):
        got = _scored(i, completions, scores, samples)
        best, worst = max(got, key=lambda x: x[0]), min(got, key=lambda x: x[0])
        if best[0] - worst[0] <= min_gap or best[1] == worst[1]:
            skipped += 1
            continue
        pairs.append(
            {
                "prompt": _as_messages(prompt),
                "chosen": [{"role": "assistant", "content": best[1]}],
                "rejected": [{"role": "assistant", "content": worst[1]}],
            }
        )
    return pairs, skipped


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def split_prompts(prompts, eval_prompts, seed: int) -> tuple[list, list]:
    """The training prompts and the held-out ones (see :func:`iterate`)."""
    import random

    if (
        prompts is None
    ):  # the demo's prompts (its rows are in a seeded random order): a round in minutes on a CPU
        train, test = demo_prompts()
        return train, list(eval_prompts) if eval_prompts is not None else test[:DEMO_HELDOUT]
    if isinstance(prompts, (str, Path)):
        with open(prompts, encoding="utf-8") as lines:
            prompts = [json.loads(line)["prompt"] for line in lines if line.strip()]
    prompts = _unique(prompts)
    if eval_prompts is not None:
        return prompts, list(eval_prompts)
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    n = max(1, min(64, len(prompts) // 5))
    held = set(order[:n])
    if len(prompts) - n < 1:
        raise ConfigError(
            f"iterate needs at least 2 prompts to hold some out (or pass eval_prompts=), got {len(prompts)}."
        )
    return [p for i, p in enumerate(prompts) if i not in held], [prompts[i] for i in sorted(held)]


def _unique(prompts) -> list:
    seen, out = set(), []
    for p in prompts:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _sampling_precision(model):
    """bf16 autocast where bf16 is native (a CPU with AVX512-BF16 or AMX, a GPU with bf16), the precision the
    presets train in there: the demo samples 1.6x faster than in fp32; elsewhere nothing (emulated bf16 is slower)."""
    import contextlib

    import torch

    device = next(model.parameters()).device
    native = (
        gpu_has_native_bf16() if device.type == "cuda" else device.type == "cpu" and cpu_has_native_bf16()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if native else contextlib.nullcontext()


def _as_messages(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _as_completion(prompt, answer: str):
    """An answer in the form TRL gives reward functions: a string for a text prompt, else assistant messages."""
    return answer if isinstance(prompt, str) else [{"role": "assistant", "content": answer}]


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else float("nan")


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 1)


def _write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


_NOTES = """How to read it:
- `heldout_reward`: mean reward of the greedy answers to the held-out prompts (never trained on).
- `win_rate`: share of held-out prompts where this round's greedy answer scores above the start model's (ties 0.5).
- `pairs`: prompts whose sampled answers made a best-vs-worst pair this round; `skipped`: prompts whose best and
  worst answers tied (within `min_gap`); `train_pairs`: the pairs the round trained on (all rounds' with accumulate).
- `seconds`: the whole round: sampling, scoring, training and the held-out answers."""

_RFT_NOTES = """How to read it:
- `heldout_reward`: mean reward of the greedy answers to the held-out prompts (never trained on).
- `win_rate`: share of held-out prompts where this round's greedy answer scores above the start model's
  (ties 0.5).
- `kept`: sampled answers kept this round (each prompt's best, or every one at or above the threshold);
  `kept_reward`: their mean reward; `skipped`: prompts that kept none (all answers within `min_gap` of each
  other, or none at the threshold); `train_rows`: the rows the round fine-tuned on (all rounds' with
  accumulate).
- `seconds`: the whole round: sampling, scoring, training and the held-out answers."""

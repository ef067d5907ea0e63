"""What the exercise scripts (dpo_hh_rlhf.py, dpo_ultrafeedback.py, orpo_mix.py) share.

Each script is the plain-Python form of a course notebook: a random subset of a hub dataset (or a
local file), the data doctor, ``train_dpo`` / ``train_orpo``, the held-out figures of the start and
the trained model, and their answers side by side in ``<output dir>/report.md``. ``--smoke`` runs
the same code offline on the embedded model and the built-in demo pairs, in about a minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOKE = {"max_steps": 2, "eval_pairs": 8, "samples": 1, "per_device_train_batch_size": 2, "preset": "cpu"}


def make_parser(doc: str, dataset: str, dataset_help: str, method: str) -> argparse.ArgumentParser:
    """The scripts' common flags; ``doc`` (the script's docstring) gives the description and examples."""
    summary, _, examples = doc.strip().partition("\n\n")
    parser = argparse.ArgumentParser(
        description=summary, epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"hub id or folder (default {DEFAULT_MODEL})")
    parser.add_argument("--dataset", default=dataset, help=dataset_help)
    parser.add_argument("--subset", type=int, default=2000, help="random training pairs to keep (0: all)")
    parser.add_argument("--eval-pairs", type=int, default=200, help="held-out pairs scored before and after")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument(
        "--preset", default="auto", help="auto | cpu | colab-t4 | gpu-bf16, plus +lora / +qlora-4bit"
    )
    beta = (
        "DPO's beta (pull towards the reference)"
        if method == "dpo"
        else "ORPO's lambda (weight of the odds-ratio term)"
    )
    parser.add_argument("--beta", type=float, default=0.1, help=f"{beta}; default 0.1")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the preset's")
    parser.add_argument(
        "--max-length", type=int, default=None, help="default: the preset's (512 on CPU and T4)"
    )
    parser.add_argument("--samples", type=int, default=4, help="held-out prompts answered side by side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output-dir", default=None, help="default: runs/<script name> (replaced if it exists)"
    )
    parser.add_argument("--doctor-only", action="store_true", help="check the data and stop")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="offline check: embedded model, built-in demo data, 2 steps of batch 2",
    )
    return parser


def load_split(dataset: str, split: str, n: int | None, seed: int, skip: int = 0, exclude_sources=()):
    """``n`` random pairs (``None``: all) of one split, after the first ``skip`` of the shuffle, normalized.

    The subset is drawn from the raw rows before normalizing, so a 160k-row dataset costs only the
    download and the normalization of the pairs kept.
    """
    from smol_align.data import normalize
    from smol_align.data.sources import read

    source = read(dataset, split=split)
    raw = source.data
    if exclude_sources and "source" in (raw.column_names or []):
        raw = raw.filter(lambda row: row["source"] not in exclude_sources)
    if n or skip:
        end = len(raw) if not n else min(skip + n, len(raw))
        raw = raw.shuffle(seed=seed).select(range(min(skip, end), end))
    return normalize(raw, format=source.format or "auto")


def load_data(args, exclude_sources=()):
    """``(train, test)``: the demo splits, or a subset of the dataset and its test split (else held out)."""
    from smol_align.data import demo
    from smol_align.errors import DatasetFormatError

    if args.smoke:
        data = demo()
        return data["train"], data["test"]
    try:
        test = load_split(args.dataset, "test", args.eval_pairs, args.seed, exclude_sources=exclude_sources)
        skip = 0
    except DatasetFormatError:  # no test split: the first pairs of the shuffled train split are held out
        test = load_split(args.dataset, "train", args.eval_pairs, args.seed, exclude_sources=exclude_sources)
        skip = args.eval_pairs
    train = load_split(
        args.dataset, "train", args.subset or None, args.seed, skip=skip, exclude_sources=exclude_sources
    )
    return train, test


def run(method: str, args: argparse.Namespace, name: str, exclude_sources=()) -> int:
    """Doctor, train, evaluate, answer side by side, report. Returns the exit code."""
    if args.smoke:
        args.max_steps, args.eval_pairs, args.samples = (
            SMOKE["max_steps"],
            SMOKE["eval_pairs"],
            SMOKE["samples"],
        )
        args.preset, args.model = SMOKE["preset"], DEFAULT_MODEL
    output_dir = Path(args.output_dir or f"runs/{name}{'-smoke' if args.smoke else ''}")

    from datasets import DatasetDict

    import smol_align
    from smol_align.data import doctor
    from smol_align.report import side_by_side_markdown

    train, test = load_data(args, exclude_sources)
    print(f"{len(train)} training pairs, {len(test)} held-out pairs")
    print(doctor(train, max_rows=2000, max_length=args.max_length or 512))
    if args.doctor_only:
        return 0

    overrides = {"max_steps": args.max_steps, "beta": args.beta, "seed": args.seed}
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    if args.max_length is not None:
        overrides["max_length"] = args.max_length
    if args.smoke:
        overrides["per_device_train_batch_size"] = SMOKE["per_device_train_batch_size"]
    train_fn = smol_align.train_dpo if method == "dpo" else smol_align.train_orpo
    result = train_fn(
        args.model,
        DatasetDict({"train": train, "test": test}),
        preset=args.preset,
        output_dir=str(output_dir),
        overwrite=True,
        max_eval_pairs=args.eval_pairs,
        answer_prompts=args.samples,
        **overrides,
    )

    answers = result.answers
    if (
        answers
    ):  # the run answered held-out prompts greedily before and after training; report.md has them too
        side_by_side = [
            {"prompt": p, "answers": {"start": a, method.upper(): b}}
            for p, a, b in zip(answers["prompt"], answers["start"], answers["trained"], strict=True)
        ]
        print(side_by_side_markdown(side_by_side))
    print(f"Report: {output_dir / 'report.md'}")
    return 0

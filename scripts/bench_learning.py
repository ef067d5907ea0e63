"""The learning matrix on the real model: does every precision x mode x method path learn the demo?

# Every cell (about 1-2 hours on 2 CPU cores with native bf16; much longer on AVX2-only CPUs)
python scripts/bench_learning.py
# A few cells, fewer steps
python scripts/bench_learning.py --methods dpo --modes full --precisions fp32,bf16-autocast --steps 10

Each cell runs `smol_align.train_dpo()` / `train_orpo()` on the embedded SmolLM2-135M-Instruct
with the built-in demo data and the demo recipe (the same run as `smol-align dpo|orpo`), in its
own process, with one precision forced:

- fp32: `bf16=False`, fp32 weights and math;
- bf16-autocast: `bf16=True` over fp32 master weights (what the presets pick where bf16 is
  native); for LoRA/QLoRA, a bf16 (or 4-bit) frozen base under fp32 adapters;
- pure-bf16: `bf16=True` with the weights themselves in bf16 (`dtype="bfloat16"`), full
  fine-tunes only: offered when asked for, and shown here because it does not learn at DPO rates.

It prints, per cell, held-out reward accuracy, margin and "prefers chosen" (131 held-out pairs),
the greedy answers' pirate-voice and repeated-4-gram rates, s/step, peak memory, and time and
memory as ratios to the fp32 cell of the same method and mode, with the CPU flags and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

PRECISIONS = {
    "fp32": {"bf16": False},
    "bf16-autocast": {"bf16": True},
    "pure-bf16": {"bf16": True, "dtype": "bfloat16"},
}
MODES = ("full", "lora", "qlora-4bit")
METHODS = ("dpo", "orpo")


def run_cell(
    method: str, mode: str, precision: str, steps: int | None, answer_prompts: int, out: str
) -> None:
    """One training run, in this process; its figures go to ``out`` as JSON."""
    import smol_align

    overrides = dict(PRECISIONS[precision])
    if steps:
        overrides["max_steps"] = steps
    train = smol_align.train_dpo if method == "dpo" else smol_align.train_orpo
    result = train(preset=mode, save=False, quiet=True, answer_prompts=answer_prompts, **overrides)
    m, before, after = result.metrics, result.before, result.after
    figures = {
        "method": method,
        "mode": mode,
        "precision": precision,
        "steps": m["steps"],
        "learning_rate": result.trainer.args.learning_rate,
        "reward_accuracy": after["reward_accuracy"],
        "reward_margin": after["reward_margin"],
        "prefers_chosen": [before["preference_accuracy"], after["preference_accuracy"]],
        "voice_rate": [before.get("voice_rate"), after.get("voice_rate")],
        "repeated_4gram_rate": [before.get("repeated_4gram_rate"), after.get("repeated_4gram_rate")],
        "seconds_per_step": m["seconds_per_step"],
        "train_seconds": m["train_seconds"],
        "peak_memory_gb": m["peak_memory_gb"],
    }
    with open(out, "w") as f:
        json.dump(figures, f)


def machine() -> str:
    import platform

    import torch
    import trl

    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        flags = ""
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags] or ["none (AVX2: bf16 emulated)"]
    return (
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, native bf16 flags: "
        f"{', '.join(native)}; torch {torch.__version__}, trl {trl.__version__}"
    )


def table(rows: list[dict]) -> str:
    head = (
        "| method | mode | precision | lr | steps | reward acc | margin | prefers chosen | pirate voice "
        "| repeated 4-grams | s/step | peak GB | time vs fp32 | memory vs fp32 |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base = {(r["method"], r["mode"]): r for r in rows if r.get("precision") == "fp32" and "error" not in r}

    def pair(values):
        return " -> ".join("n/a" if v is None else f"{v:.2f}" for v in values)

    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['mode']} | {r['precision']} | failed: {r['error']} |")
            continue
        ref = base.get((r["method"], r["mode"]))
        ratio_t = f"{r['seconds_per_step'] / ref['seconds_per_step']:.2f}x" if ref else "-"
        ratio_m = f"{r['peak_memory_gb'] / ref['peak_memory_gb']:.2f}x" if ref else "-"
        lines.append(
            f"| {r['method']} | {r['mode']} | {r['precision']} | {r['learning_rate']:g} | {r['steps']} "
            f"| {r['reward_accuracy']:.3f} | {r['reward_margin']:.3f} | {pair(r['prefers_chosen'])} "
            f"| {pair(r['voice_rate'])} | {pair(r['repeated_4gram_rate'])} | {r['seconds_per_step']:.2f} "
            f"| {r['peak_memory_gb']:.2f} | {ratio_t} | {ratio_m} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--steps", type=int, default=None, help="default: the demo recipe's")
    parser.add_argument("--answer-prompts", type=int, default=131, help="held-out prompts answered greedily")
    parser.add_argument("--json", default=None, help="also write every cell's figures here")
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # method:mode:precision:out (child)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.cell:
        method, mode, precision, out = args.cell.split(":", 3)
        run_cell(method, mode, precision, args.steps, args.answer_prompts, out)
        return 0

    print(machine(), flush=True)
    rows = []
    for method in args.methods.split(","):
        for mode in args.modes.split(","):
            for precision in args.precisions.split(","):
                if precision == "pure-bf16" and mode != "full":
                    continue  # a LoRA base is frozen: its adapters are fp32 in every path
                with tempfile.NamedTemporaryFile(suffix=".json") as out:
                    cmd = [
                        sys.executable,
                        __file__,
                        "--cell",
                        f"{method}:{mode}:{precision}:{out.name}",
                        "--answer-prompts",
                        str(args.answer_prompts),
                    ]
                    if args.steps:
                        cmd += ["--steps", str(args.steps)]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode == 0:
                        rows.append(json.load(open(out.name)))
                    else:
                        error = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
                        rows.append({"method": method, "mode": mode, "precision": precision, "error": error})
                print(f"{method} {mode} {precision}: {json.dumps(rows[-1])}", flush=True)
    print()
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "cells": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed and memory of smol_align's CPU preset against plain TRL, in the same run.

# The figures in the README (embedded SmolLM2-135M-Instruct, batch 2, max_length 512)
python scripts/bench_speed.py
# More steps, other batch, only the long (HH-RLHF-like, ~300-token) pairs
python scripts/bench_speed.py --steps 5 --batch-size 8 --data long

Each configuration runs in its own process (peak memory is the process's peak RSS), trains
1 warm-up step and then ``--steps`` timed steps of DPO on the same pairs:

- ``trl-defaults``: ``DPOConfig()`` as TRL 1.16 ships it (bf16, gradient checkpointing), plus
  ``use_cpu=True``, without which TRL refuses to start on a machine without a GPU;
- ``smol_align-cpu``: ``presets.build("dpo", "cpu")`` with the same batch and max_length.

It prints seconds per step, peak memory and the ratio of each to plain TRL's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def long_pairs(n: int):
    """HH-RLHF-like pairs (~300 tokens): a multi-turn history of demo Q/A, then the question."""
    from smol_align.data import demo

    rows = demo()["train"]
    pairs = []
    for i in range(n):
        history = []
        for j in range(1, 9):
            past = rows[(i * 9 + j) % len(rows)]
            history += [past["prompt"][-1], past["rejected"][0]]
        last = rows[i % len(rows)]
        pairs.append({"prompt": history + [last["prompt"][-1]], "chosen": last["chosen"], "rejected": last["rejected"]})
    return pairs


def run_one(name: str, data: str, batch_size: int, steps: int, max_length: int) -> dict:
    """Train ``steps + 1`` steps in this process and return timings (called in a child process)."""
    import copy
    import resource
    import tempfile

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from smol_align import presets
    from smol_align.data import demo
    from smol_align.models import load_model

    pairs = demo()["train"] if data == "demo" else Dataset.from_list(long_pairs(batch_size * (steps + 1)))
    common = {"max_steps": steps + 1, "per_device_train_batch_size": batch_size, "max_length": max_length,
              "report_to": [], "save_strategy": "no", "logging_steps": 1, "seed": 0}
    out = tempfile.mkdtemp()
    if name == "trl-defaults":
        args = DPOConfig(output_dir=out, use_cpu=True, **common)
        model, tokenizer = load_model(dtype="float32")  # from_pretrained's default; TRL autocasts to bf16
    else:
        built = presets.build("dpo", "cpu", output_dir=out, **common)
        args = built.args
        model, tokenizer = load_model(dtype=built.dtype)

    class StepTimer(TrainerCallback):
        times: list[float] = []

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter())

    timer = StepTimer()
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=pairs,
                         processing_class=tokenizer, callbacks=[timer])
    from contextlib import nullcontext

    from smol_align._compat import compact_lm_head_while

    with nullcontext() if name == "trl-defaults" else compact_lm_head_while(trainer.accelerator.device):  # as the runner trains
        trainer.train()
    timed = [b - a for a, b in zip(timer.times, timer.times[1:], strict=False)]  # drops the warm-up step
    tokens = trainer.state.log_history[-2].get("num_tokens", 0)
    return {"config": name, "bf16": bool(args.bf16), "checkpointing": bool(args.gradient_checkpointing),
            "s_per_step": sum(timed) / len(timed), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--data", choices=["demo", "long", "both"], default="both")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.batch_size, args.steps, args.max_length)))
        return

    print(f"DPO, embedded SmolLM2-135M-Instruct, batch {args.batch_size}, max_length {args.max_length}, "
          f"{args.steps} timed steps after 1 warm-up, {os.cpu_count()} CPUs")
    print(f"{'data':<6} {'config':<16} {'bf16':<5} {'ckpt':<5} {'s/step':>8} {'peak GB':>8} {'time vs TRL':>12} {'memory vs TRL':>14}")
    for data in (["demo", "long"] if args.data == "both" else [args.data]):
        results = []
        for config in ("trl-defaults", "smol_align-cpu"):
            cmd = [sys.executable, __file__, "--child", config, data, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{config} on {data} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        base = results[0]
        for r in results:
            print(f"{data:<6} {r['config']:<16} {str(r['bf16']):<5} {str(r['checkpointing']):<5} {r['s_per_step']:>8.2f} "
                  f"{r['peak_gb']:>8.2f} {r['s_per_step'] / base['s_per_step']:>11.2f}x {r['peak_gb'] / base['peak_gb']:>13.2f}x")


if __name__ == "__main__":
    main()

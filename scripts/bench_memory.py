"""smol_align.estimate against measured peak memory, each configuration in its own process.

    python scripts/bench_memory.py                      # full / LoRA / QLoRA x max_length 256, 512 (CPU)
    python scripts/bench_memory.py --modes full --lengths 512 --checkpointing
    python scripts/bench_memory.py --method orpo --modes full
    python scripts/bench_memory.py --hardware gpu-bf16 --model path/to/SmolLM2-1.7B --lengths 1024   # a GPU

Each child trains ``--model`` (default the embedded SmolLM2-135M-Instruct) for 3 DPO (or ORPO) steps with the
``--hardware`` preset (default ``cpu``; its mode switched) on pairs long enough that every sequence is cut at max_length (the estimate's worst case),
and reports its peak resident memory (CPU) or peak allocated memory (GPU). The table gives the
estimate, the measurement and their ratio; the CPU flags and versions are printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORDS = "the quick brown fox jumps over the lazy dog while the captain counts stars".split()


def long_pairs(n: int, max_length: int) -> list[dict]:
    """Pairs whose prompt is about half of max_length and whose answers are longer than the rest."""
    text = lambda k, seed: " ".join(WORDS[(seed + j) % len(WORDS)] for j in range(k))  # noqa: E731
    return [
        {
            "prompt": [{"role": "user", "content": text(max_length // 2, i)}],
            "chosen": [{"role": "assistant", "content": "Arr, " + text(max_length, i + 1)}],
            "rejected": [{"role": "assistant", "content": text(max_length, i + 2)}],
        }
        for i in range(n)
    ]


def child(model: str, method: str, preset: str, max_length: int, batch: int, checkpointing: bool) -> dict:
    import smol_align
    from smol_align.metrics import peak_memory_bytes

    train = smol_align.train_dpo if method == "dpo" else smol_align.train_orpo
    train(
        model,
        long_pairs(3 * batch, max_length),
        preset,
        max_steps=3,
        max_length=max_length,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        gradient_checkpointing=checkpointing,
        eval_split=0,
        save=False,
        evaluate=False,
        quiet=True,
    )
    return {"peak_gb": peak_memory_bytes() / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=("dpo", "orpo"), default="dpo")
    parser.add_argument("--modes", default="full,lora,qlora-4bit")
    parser.add_argument("--lengths", default="256,512")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--hardware", default="cpu", help="the hardware preset: cpu, colab-t4, gpu-bf16")
    parser.add_argument(
        "--model", default=None, help="a model name or folder (default: the embedded SmolLM2)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        preset, length = args.child.split(":")
        from smol_align import DEFAULT_MODEL

        model = args.model or DEFAULT_MODEL
        print(
            "RESULT "
            + json.dumps(child(model, args.method, preset, int(length), args.batch, args.checkpointing))
        )
        return

    import platform

    import torch
    import trl

    from smol_align import estimate

    flags = sorted(set(open("/proc/cpuinfo").read().split()) & {"avx512_bf16", "amx_bf16", "avx2"})
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(
        f"{platform.processor() or platform.machine()}, flags {flags}{gpu}, torch {torch.__version__}, TRL {trl.__version__}, "
        f"model {args.model or 'the embedded SmolLM2-135M-Instruct'}"
    )
    print(
        "| method | mode | max_length | batch | checkpointing | estimate GB | measured GB | estimate / measured |"
    )
    print("|---|---|---|---|---|---|---|---|")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for mode in args.modes.split(","):
        for length in map(int, args.lengths.split(",")):
            preset = args.hardware if mode == "full" else f"{args.hardware}+{mode}"
            predicted = estimate(
                args.model,
                args.method,
                preset,
                max_length=length,
                batch_size=args.batch,
                gradient_checkpointing=args.checkpointing,
            ).total_gb
            command = [
                sys.executable,
                __file__,
                "--child",
                f"{preset}:{length}",
                "--batch",
                str(args.batch),
                "--method",
                args.method,
            ] + ["--model", args.model] * bool(args.model)
            out = subprocess.run(
                command + ["--checkpointing"] * args.checkpointing, capture_output=True, text=True, env=env
            )
            found = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if not found:
                print(f"| {args.method} | {mode} | {length} | failed: {out.stderr[-500:]} |")
                continue
            measured = json.loads(found[-1][7:])["peak_gb"]
            print(
                f"| {args.method} | {mode} | {length} | {args.batch} | {args.checkpointing} | {predicted:.2f} | {measured:.2f} "
                f"| {predicted / measured:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

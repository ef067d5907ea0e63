"""Speed and learning of smol_align's presets against plain TRL 1.16, in one run.

    python scripts/bench.py                                   # this machine, demo and HH-RLHF pairs
    python scripts/bench.py --data hh --steps 20 --batch 4 --max-length 256
    python scripts/bench.py --configs trl,preset --data demo --steps 10
    python scripts/bench.py --model path/to/model --configs trl,preset,trl+liger   # e.g. on a GPU
    python scripts/bench.py --data hh --configs trl+lora,recipe --max-time 12.5 --batch 4 --max-length 256 \
        --eval-max-length 512                                  # what 12.5 minutes of training learn

Every configuration trains DPO in its own process on the same pairs, in the same order (seed 0),
with the same per-device batch (no accumulation) and max_length, for ``--steps`` steps:

- ``trl``: plain TRL, ``DPOConfig()`` defaults (+ ``use_cpu=True`` on a CPU, without which TRL
  refuses to start), the model given by path as TRL loads it, the reference TRL makes;
- ``trl+lora``: the same with peft's ``LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")``
  at lr 5e-5, the usual TRL + LoRA recipe;
- ``trl+liger`` / ``preset+liger``: ``trl`` / ``preset`` with ``use_liger_kernel=True`` (GPU; needs ``liger-kernel``);
- ``preset`` / ``preset+lora``: ``smol_align.build_dpo_trainer`` with preset ``auto`` (this
  machine's) / ``lora``, trained as ``train_dpo`` trains it;
- ``recipe``: ``smol_align/recipes/hh-rlhf-cpu.yaml`` with its own batch, max_length and rate (the
  best it found for a time budget), trained as ``train_dpo`` trains it.

``--max-time M`` trains each configuration for M minutes (smol_align's ``max_time``) instead of
``--steps``: what a learner gets from a time budget. ``--eval-max-length`` evaluates every
configuration at one length whatever it trained at.

It prints, per configuration: seconds per step and pairs/s and tokens/s over the steps after the
``--warmup`` ones, peak memory (the process's resident peak on a CPU; ``max_memory_allocated`` on a
GPU), the share of this machine's measured matrix-multiply peak the model FLOPs reach (MFU), and
the held-out reward accuracy, margin and "prefers chosen" after training (the reference's
log-probs are computed once per precision and shared between configurations); then each figure as
a ratio to ``trl``. The CPU flags, the GPU and the torch/TRL versions are printed with them.
Data: ``demo`` (the built-in pairs and their held-out split) and ``hh`` (the shared HH-RLHF rows:
lines 0-1199 train, 1200-1499 held out; ``../shared/data``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh_rlhf_harmless_base_test_0-1499.jsonl.gz"
CONFIGS = ("trl", "trl+lora", "preset", "preset+lora")


def pairs(data: str, hh: str = str(HH)):
    """(train, held-out) datasets in TRL's conversational format."""
    from smol_align.data import demo, load

    if data == "demo":
        d = demo()
        return d["train"], d["test"]
    with gzip.open(hh, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    loaded = load(rows[:1200], eval_dataset=rows[1200:])  # the few malformed rows are set aside and counted
    return loaded.train, loaded.eval


def matmul_peak() -> tuple[float, str]:
    """FLOP/s of this machine's best square matrix product (bf16 or fp32), and which."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 8192 if device == "cuda" else 2048
    best = (0.0, "")
    for dtype in (torch.bfloat16, torch.float32):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        times = []
        for _ in range(5):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        best = max(best, (2 * n**3 / min(times), str(dtype).removeprefix("torch.")))
    return best


def model_flops_per_token(model, lora: bool, seq: float) -> float:
    """Model FLOPs a DPO step spends per token: the policy's forward and backward (a frozen LoRA base
    computes no weight gradients) and the reference's forward; matmuls with the weights plus attention."""
    import torch

    matmul = sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in str(type(m))
    )
    text = model.config.get_text_config()
    forward = 2 * matmul + 4 * text.num_hidden_layers * text.hidden_size * seq
    return forward * ((2 if lora else 3) + 1)


def recipe(name: str = "hh-rlhf-cpu") -> tuple[str, dict]:
    """(preset, config values) of ``smol_align/recipes/<name>.yaml``."""
    from importlib import resources

    import yaml

    from smol_align.presets import RECIPE_KEYS

    values = yaml.safe_load((resources.files("smol_align") / "recipes" / f"{name}.yaml").read_text())
    return values.get("preset", "auto"), {k: v for k, v in values.items() if k not in RECIPE_KEYS}


def child(
    config: str,
    data: str,
    model_path: str,
    steps: int,
    warmup: int,
    batch: int,
    max_length: int,
    ref_cache: str,
    hh: str,
    max_time: float | None = None,
    eval_max_length: int | None = None,
) -> dict:
    import torch
    from transformers import TrainerCallback

    from smol_align._compat import compact_lm_head_while, no_cudnn_attention_while
    from smol_align.callbacks import TimeBudget, as_callback
    from smol_align.evaluate import evaluate
    from smol_align.metrics import peak_memory_bytes

    train, heldout = pairs(data, hh)
    common = {
        "max_steps": steps,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": 1,
        "max_length": max_length,
        "logging_steps": 1,
        "seed": 0,
        "report_to": [],
        "save_strategy": "no",
    }
    times: list[float] = []
    callbacks = []
    if max_time:  # train for max_time minutes (the schedule spans TRL's default epochs), then evaluate
        common["max_steps"] = -1
        callbacks.append(as_callback(TimeBudget, max_time * 60))

    class Timer(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    out = tempfile.mkdtemp(prefix="bench-")
    lora = config.endswith("+lora")
    callbacks.append(Timer())
    if config.startswith("trl"):
        from trl import DPOConfig, DPOTrainer

        extra = {"use_cpu": True} if not torch.cuda.is_available() else {}
        if config == "trl+liger":
            extra["use_liger_kernel"] = True
        peft_config = None
        if lora:
            from peft import LoraConfig

            peft_config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
            extra["learning_rate"] = 5e-5
        args = DPOConfig(output_dir=out, **common, **extra)
        trainer = DPOTrainer(
            model=model_path, args=args, train_dataset=train, peft_config=peft_config, callbacks=callbacks
        )
    else:
        from smol_align import build_dpo_trainer

        preset, values = ("lora" if lora else "auto"), common
        if config == "preset+liger":
            values = {**common, "use_liger_kernel": True}
        if config == "recipe":  # its own batch, max_length, rate...: the best it can do in the same time
            preset, values = recipe()
            values = {
                **{k: common[k] for k in ("logging_steps", "report_to", "save_strategy", "seed")},
                **values,
                "max_steps": common["max_steps"],
            }
            lora = "lora" in preset
        trainer = build_dpo_trainer(
            model_path, train, preset, output_dir=out, eval_split=0, callbacks=callbacks, **values
        )
    torch.manual_seed(0)
    started = time.perf_counter()
    with ExitStack() as stack:
        if not config.startswith("trl"):  # as the runner trains
            stack.enter_context(compact_lm_head_while(trainer.accelerator.device))
            stack.enter_context(no_cudnn_attention_while(trainer.accelerator.device))
        trainer.train()
    train_seconds = time.perf_counter() - started
    peak = peak_memory_bytes()

    logs = [h for h in trainer.state.log_history if "num_tokens" in h]
    warmup = warmup if len(times) > warmup else 0  # a time budget shorter than the warmup: time every step
    timed = times[warmup - 1 :] if warmup else [started, *times]
    seconds = timed[-1] - timed[0]
    tokens = logs[-1]["num_tokens"] - (logs[warmup - 1]["num_tokens"] if warmup else 0)
    steps_timed = len(timed) - 1
    args = trainer.args
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
    seq = tokens / (steps_timed * 2 * batch)  # mean tokens per sequence (chosen and rejected)
    model = trainer.model

    # held-out figures; the reference's log-probs (the start model, or a LoRA base with its adapters off, as TRL
    # takes it) are computed once per precision and shared between configurations
    tokenizer, weights = trainer.processing_class, next(model.parameters()).dtype
    options = {"tokenizer": tokenizer, "beta": args.beta, "max_length": eval_max_length or args.max_length}
    key = (
        Path(ref_cache)
        / f"{data}-{'bf16' if args.bf16 else 'fp32'}-{str(weights).removeprefix('torch.')}-{options['max_length']}.pt"
    )
    with trainer.accelerator.autocast():
        if key.exists():
            ref_logps = torch.load(key)
        elif trainer.ref_model is not None:
            ref_logps = evaluate(trainer.ref_model, heldout, **options)["logps"]
        else:
            with model.disable_adapter():
                ref_logps = evaluate(model, heldout, **options)["logps"]
        torch.save(ref_logps, key)
        found = evaluate(model, heldout, ref_logps=ref_logps, **options)
    flops = model_flops_per_token(model, lora, seq) * tokens / seconds
    return {
        "config": config,
        "data": data,
        "bf16": bool(args.bf16),
        "checkpointing": bool(args.gradient_checkpointing),
        "learning_rate": args.learning_rate,
        "beta": args.beta,
        "batch": batch,
        "max_length": args.max_length,
        "weights": str(weights).removeprefix("torch."),
        "steps": trainer.state.global_step,
        "s_per_step": seconds / steps_timed,
        "pairs_per_s": batch * steps_timed / seconds,
        "tokens_per_s": tokens / seconds,
        "train_seconds": train_seconds,
        "peak_gb": peak / 2**30,
        "flops_per_s": flops,
        "reward_accuracy": found["reward_accuracy"],
        "margin": found["reward_margin"],
        "prefers_chosen": found["preference_accuracy"],
        "heldout_pairs": found["n_pairs"],
        "eval_seconds": found["seconds"],
    }


def machine() -> str:
    import torch
    import transformers
    import trl

    cpu = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    flags = [f for f in ("avx512_bf16", "amx_bf16") if f in cpu.split()] or [
        "no native bf16 (AVX2: emulated)"
    ]
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, CPU flags: {', '.join(flags)}{gpu}; torch {torch.__version__}, "
        f"TRL {trl.__version__}, transformers {transformers.__version__}"
    )


def table(rows: list[dict], peak: float) -> str:
    head = (
        "| data | config | bf16 | ckpt | lr | beta | batch | max_length | steps | s/step | pairs/s | tokens/s | peak GB | MFU | reward acc | margin "
        "| prefers chosen | pairs/s vs TRL | memory vs TRL |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base = {}  # the ratios' baseline: trl, or trl+lora when it runs without trl
    for name in ("trl+lora", "trl"):
        base.update({r["data"]: r for r in rows if r.get("config") == name and "error" not in r})
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['data']} | {r['config']} | failed: {r['error']} |")
            continue
        b = base.get(r["data"])
        speed = f"{r['pairs_per_s'] / b['pairs_per_s']:.2f}x" if b else "-"
        memory = f"{r['peak_gb'] / b['peak_gb']:.2f}x" if b else "-"
        lines.append(
            f"| {r['data']} | {r['config']} | {'yes' if r['bf16'] else 'no'} | {'yes' if r['checkpointing'] else 'no'} "
            f"| {r['learning_rate']:g} | {r['beta']:g} | {r['batch']} | {r['max_length']} | {r['steps']} | {r['s_per_step']:.2f} | {r['pairs_per_s']:.2f} | {r['tokens_per_s']:.0f} "
            f"| {r['peak_gb']:.2f} | {r['flops_per_s'] / peak:.1%} | {r['reward_accuracy']:.3f} | {r['margin']:.4f} "
            f"| {r['prefers_chosen']:.3f} | {speed} | {memory} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="demo,hh", help="demo, hh or both (comma-separated)")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"any of {', '.join(CONFIGS)}, trl+liger, preset+liger"
    )
    parser.add_argument(
        "--model", default=None, help="a model folder (default: the embedded SmolLM2-135M-Instruct)"
    )
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timings")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="minutes of training per configuration instead of --steps (e.g. 12.5 with --configs trl+lora,recipe)",
    )
    parser.add_argument(
        "--eval-max-length",
        type=int,
        default=None,
        help="max_length of the held-out evaluation, the same for every configuration (default --max-length)",
    )
    parser.add_argument("--hh", default=str(HH), help="the HH-RLHF rows (default ../shared/data/...)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.child:
        config, data, out, cache = args.child.split(":", 3)
        figures = child(
            config,
            data,
            args.model,
            args.steps,
            args.warmup,
            args.batch,
            args.max_length,
            cache,
            args.hh,
            args.max_time,
            args.eval_max_length,
        )
        Path(out).write_text(json.dumps(figures))
        return 0

    from smol_align.models import DEFAULT_MODEL, resolve

    model = args.model or resolve(DEFAULT_MODEL)
    peak, dtype = matmul_peak()
    print(machine())
    budget = f"{args.max_time:g} minutes of training each" if args.max_time else f"{args.steps} steps"
    print(
        f"matrix-multiply peak measured here: {peak / 1e9:.0f} GFLOP/s ({dtype}); model {model}; DPO, batch {args.batch}, "
        f"max_length {args.max_length} (recipe: its own), {budget} ({args.warmup} steps left out of the timings); "
        f"held-out max_length {args.eval_max_length or args.max_length}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for data in args.data.split(","):
            for config in args.configs.split(","):
                with tempfile.NamedTemporaryFile(suffix=".json") as out:
                    cmd = [
                        sys.executable,
                        __file__,
                        "--child",
                        f"{config}:{data}:{out.name}:{cache}",
                        "--model",
                        model,
                        "--steps",
                        str(args.steps),
                        "--warmup",
                        str(args.warmup),
                        "--batch",
                        str(args.batch),
                        "--max-length",
                        str(args.max_length),
                        "--hh",
                        args.hh,
                    ]
                    cmd += ["--max-time", str(args.max_time)] if args.max_time else []
                    cmd += ["--eval-max-length", str(args.eval_max_length)] if args.eval_max_length else []
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode == 0:
                        rows.append(json.loads(Path(out.name).read_text()))
                    else:
                        rows.append(
                            {
                                "config": config,
                                "data": data,
                                "error": (done.stderr.strip().splitlines() or ["?"])[-1][:200],
                            }
                        )
                        print(done.stderr[-3000:], file=sys.stderr)
                print(json.dumps(rows[-1]), flush=True)
    print()
    print(table(rows, peak))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine(), "matmul_peak": peak, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Learning curves on the shared HH-RLHF rows: each configuration trains DPO, the held-out pairs scored every so often.

    python scripts/hh_curves.py --configs '[{"tag": "recipe"}, {"tag": "batch 2", "per_device_train_batch_size": 2}]'
    python scripts/hh_curves.py --model /tmp/smollm2 --at 16,32,65,100,150,200      # e.g. on a GPU

Every configuration starts from the same model with batch 4, max_length 512, lr 5e-5 held constant, beta 0.1,
length-grouped pairs, seed 0; a configuration's keys override those (any ``train_dpo`` keyword, plus ``tag``,
``preset``, ``steps`` and ``at``). Prints one JSON line per point: reward accuracy, margin, prefers chosen and
NLL of chosen on the 296 held-out pairs (lines 1200-1499) against the start model (docs/benchmarks.md).
"""

import argparse
import json
import tempfile
import time
from contextlib import nullcontext

import torch
from bench import HH, pairs
from transformers import TrainerCallback

from smol_align import build_dpo_trainer
from smol_align.evaluate import evaluate
from smol_align.models import DEFAULT_MODEL

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--hh", default=str(HH))
parser.add_argument("--configs", default='[{"tag": "recipe"}]', help="a JSON list of configurations")
parser.add_argument("--at", default="16,32,65,100,150,200", help="steps at which to score the held-out pairs")
args = parser.parse_args()
train, held = pairs("hh", args.hh)
refs = {}  # the start model's log-probs, per (full or LoRA, beta)


def curve(config: dict) -> None:
    config = dict(config)
    tag, preset = config.pop("tag", "?"), config.pop("preset", "auto")
    at = config.pop("at", None) or [int(s) for s in args.at.split(",")]
    values = {
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "max_length": 512,
        "learning_rate": 5e-5,
        "beta": 0.1,
        "lr_scheduler_type": "constant",
        "logging_steps": 10,
        "seed": 0,
        "report_to": [],
        "save_strategy": "no",
        "gradient_checkpointing": False,
        "group_by_length": True,
        **config,
    }
    values["max_steps"] = values.pop("steps", max(at))
    started = time.perf_counter()
    trainer = build_dpo_trainer(
        args.model, train, preset, output_dir=tempfile.mkdtemp(), eval_split=0, **values
    )
    model, options = (
        trainer.model,
        {"tokenizer": trainer.processing_class, "beta": values["beta"], "max_length": 512},
    )
    key = ("lora" in preset, values["beta"])

    def score(step):
        was = model.training
        model.eval()
        with trainer.accelerator.autocast(), torch.no_grad():
            if key not in refs:
                with model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext():
                    refs[key] = evaluate(model, held, **options)["logps"]
            found = evaluate(model, held, ref_logps=refs[key], **options)
        model.train(was)
        pairs_seen = step * values["per_device_train_batch_size"] * values["gradient_accumulation_steps"]
        print(
            json.dumps(
                {
                    "tag": tag,
                    "step": step,
                    "pairs": pairs_seen,
                    "reward_accuracy": round(found["reward_accuracy"], 3),
                    "margin": round(found["reward_margin"], 3),
                    "prefers_chosen": round(found["preference_accuracy"], 3),
                    "nll_chosen": round(found["nll_chosen"], 3),
                    "pairs_scored": found["n_pairs"],
                }
            ),
            flush=True,
        )

    class Score(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            if state.global_step in at:
                score(state.global_step)

    if key not in refs:
        score(0)
    trainer.add_callback(Score())
    torch.manual_seed(0)
    trainer.train()
    print(json.dumps({"tag": tag, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


for one in json.loads(args.configs):
    curve(one)

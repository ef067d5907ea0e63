#!/usr/bin/env python3
"""DPO on Anthropic/hh-rlhf with smol_align: the "🦁" level of the smol-course DPO exercise.

The script form of notebooks/dpo_finetuning.ipynb: a random subset of HH-RLHF's dialogues (the
test split is the held-out set), the data doctor, smol_align.train_dpo, the held-out figures of
the start and the trained model, and their answers side by side in <output dir>/report.md.

Commands (from the repository root, after `bash scripts/setup.sh`):

  # offline check: embedded SmolLM2-135M-Instruct, built-in demo pairs, 2 steps (a minute on a CPU)
  python scripts/dpo_hh_rlhf.py --smoke

  # the exercise on a GPU (on a Colab T4, preset auto is colab-t4): 2,000 pairs, 200 steps
  python scripts/dpo_hh_rlhf.py --subset 2000 --max-steps 200

  # only the harmless half, with LoRA, on a bigger model
  python scripts/dpo_hh_rlhf.py --dataset Anthropic/hh-rlhf/harmless-base --preset lora \\
      --model HuggingFaceTB/SmolLM2-360M-Instruct --subset 5000 --max-steps 300

  # check the data only (no training); your own pairs: --dataset my_pairs.jsonl
  python scripts/dpo_hh_rlhf.py --subset 2000 --doctor-only
"""

import sys

from _exercise import make_parser, run


def main(argv=None) -> int:
    parser = make_parser(
        __doc__,
        "Anthropic/hh-rlhf",
        "Anthropic/hh-rlhf, a subset of it (Anthropic/hh-rlhf/harmless-base, "
        "/helpful-base, ...) or a local file",
        method="dpo",
    )
    return run("dpo", parser.parse_args(argv), name="dpo-hh-rlhf")


if __name__ == "__main__":
    sys.exit(main())

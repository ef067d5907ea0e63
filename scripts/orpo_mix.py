#!/usr/bin/env python3
"""ORPO on mlabonne/orpo-dpo-mix-40k with smol_align: the "🦁" level of the smol-course ORPO exercise.

The script form of notebooks/orpo_finetuning.ipynb: a random subset of the mix (its
toxic-dpo-v0.2 source left out by default, as its dataset card advises), the data doctor,
smol_align.train_orpo (no reference model; --beta is ORPO's lambda, the weight of the odds-ratio
term next to the SFT loss), the held-out figures of the start and the trained model, and their
answers side by side in <output dir>/report.md. The mix has no test split: the held-out pairs
are drawn from train, apart from the training subset.

Commands (from the repository root, after `bash scripts/setup.sh`):

  # offline check: embedded SmolLM2-135M-Instruct, built-in demo pairs, 2 steps (a minute on a CPU)
  python scripts/orpo_mix.py --smoke

  # the exercise on a GPU (on a Colab T4, preset auto is colab-t4): 2,000 pairs, 200 steps
  python scripts/orpo_mix.py --subset 2000 --max-steps 200

  # ORPO from a base model (it does the SFT itself), a stronger odds-ratio term, keep every source
  python scripts/orpo_mix.py --model HuggingFaceTB/SmolLM2-135M --beta 0.25 --exclude-source ""

  # the 🐢 / 🐕 levels with ORPO
  python scripts/orpo_mix.py --dataset trl-lib/ultrafeedback_binarized --subset 2000
"""

import sys

from _exercise import make_parser, run


def main(argv=None) -> int:
    parser = make_parser(
        __doc__,
        "mlabonne/orpo-dpo-mix-40k",
        "mlabonne/orpo-dpo-mix-40k, another hub id smol_align knows, or a local file",
        method="orpo",
    )
    parser.add_argument(
        "--exclude-source",
        action="append",
        default=None,
        metavar="NAME",
        help="leave out pairs whose `source` is NAME (repeatable; default toxic-dpo-v0.2; '' keeps all)",
    )
    args = parser.parse_args(argv)
    exclude = [
        s for s in (args.exclude_source if args.exclude_source is not None else ["toxic-dpo-v0.2"]) if s
    ]
    return run("orpo", args, name="orpo-mix", exclude_sources=exclude)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""DPO on UltraFeedback with smol_align: the "🐢" and "🐕" levels of the smol-course DPO exercise.

The script form of notebooks/dpo_finetuning.ipynb. 🐢 is trl-lib/ultrafeedback_binarized (the
course's dataset, TRL's format); 🐕 is argilla/ultrafeedback-binarized-preferences (Argilla's
schema: an instruction, two response texts and their ratings), which smol_align normalizes
itself. A random subset is trained on; the held-out set is the test split, or pairs held out of
train. The report (<output dir>/report.md) has the held-out figures and answers side by side.

Commands (from the repository root, after `bash scripts/setup.sh`):

  # offline check: embedded SmolLM2-135M-Instruct, built-in demo pairs, 2 steps (a minute on a CPU)
  python scripts/dpo_ultrafeedback.py --smoke

  # 🐢 on a GPU (on a Colab T4, preset auto is colab-t4): 2,000 pairs, 200 steps
  python scripts/dpo_ultrafeedback.py --subset 2000 --max-steps 200

  # 🐕 Argilla's version, with LoRA
  python scripts/dpo_ultrafeedback.py --dataset argilla/ultrafeedback-binarized-preferences \\
      --preset lora --subset 2000 --max-steps 200

  # check the data only (no training)
  python scripts/dpo_ultrafeedback.py --dataset argilla/ultrafeedback-binarized-preferences --doctor-only
"""

import sys

from _exercise import make_parser, run


def main(argv=None) -> int:
    parser = make_parser(
        __doc__,
        "trl-lib/ultrafeedback_binarized",
        "trl-lib/ultrafeedback_binarized (🐢), argilla/ultrafeedback-binarized-preferences (🐕) or a local file",
        method="dpo",
    )
    return run("dpo", parser.parse_args(argv), name="dpo-ultrafeedback")


if __name__ == "__main__":
    sys.exit(main())

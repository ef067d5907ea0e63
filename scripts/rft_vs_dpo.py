"""RFT beside iterative DPO (and ORPO) on the demo, scaled down to minutes on 2 cores: the same prompts,
seeds, sampling budget and rounds for every method; one table of the held-out reward per round.

    python scripts/rft_vs_dpo.py                          # rft and dpo, seeds 0 and 1, one after another
    python scripts/rft_vs_dpo.py --methods rft dpo orpo   # ORPO too
    python scripts/rft_vs_dpo.py --table                  # the table alone, over the runs already made

Each run is ``iterate(method=..., seed=...)`` on the demo (embedded SmolLM2-135M, the demo's prompts and rule
reward, its recipe per method), scaled down: 2 rounds, each 64 fresh training prompts x 4 sampled answers, 12
steps of 8 rows (pairs for DPO/ORPO, kept answers for RFT); the same 64 held-out test questions answered
greedily. A run already in runs/rft-vs-dpo/<method>-seed<k>/ is read, not rerun (``--rerun`` reruns it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path("runs/rft-vs-dpo")
SETTINGS = {
    "rounds": 2,
    "per_round": 64,
    "samples": 4,
    "max_steps": 12,
    "per_device_train_batch_size": 8,
}
HELDOUT = 64  # the first 64 of the demo's 131 test questions


def run(method: str, seed: int) -> dict:
    from smol_align import iterate
    from smol_align.demo import demo_prompts

    iterate(
        method=method,
        seed=seed,
        eval_prompts=demo_prompts()[1][:HELDOUT],
        output_dir=str(ROOT / f"{method}-seed{seed}"),
        overwrite=True,
        quiet=True,
        **SETTINGS,
    )
    return json.loads((ROOT / f"{method}-seed{seed}" / "metrics.json").read_text())


def table() -> str:
    """One row per run: held-out reward at the start and after each round (win rate vs start), rows trained
    a round, minutes a round."""
    lines = [
        "| method | seed | start | "
        + " | ".join(f"round {k}" for k in range(1, SETTINGS["rounds"] + 1))
        + " | rows trained a round | minutes a round | minutes in all |",
        "|---" * (6 + SETTINGS["rounds"]) + "|",
    ]
    for folder in sorted(ROOT.glob("*-seed*")):
        if not (folder / "metrics.json").exists():
            continue
        method, seed = folder.name.rsplit("-seed", 1)
        m = json.loads((folder / "metrics.json").read_text())
        rounds = [n for n in m if n != "start"]
        trained = [m[n].get("train_rows", m[n].get("train_pairs", 0)) for n in rounds]
        minutes = [round(m[n]["seconds"] / 60, 1) for n in rounds]
        total = sum(r["seconds"] for r in m.values()) / 60
        lines.append(
            f"| {method} | {seed} | {m['start']['heldout_reward']:.3f} | "
            + " | ".join(f"{m[n]['heldout_reward']:.3f} ({m[n]['win_rate']:.2f})" for n in rounds)
            + f" | {' / '.join(map(str, trained))} | {' / '.join(map(str, minutes))} | {total:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["rft", "dpo"], choices=("rft", "dpo", "orpo"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rerun", action="store_true", help="rerun runs already made")
    parser.add_argument("--table", action="store_true", help="only print the table of the runs made")
    args = parser.parse_args()
    if not args.table:
        for seed in args.seeds:
            for method in args.methods:
                if (ROOT / f"{method}-seed{seed}" / "metrics.json").exists() and not args.rerun:
                    continue
                run(method, seed)
                print(table(), flush=True)
    print(table())


if __name__ == "__main__":
    main()

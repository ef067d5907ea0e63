"""The iterative-DPO demo with the shipped defaults, per seed, and the check of the claim in
docs/methods/iterate.md: start < round 1 < round 2 in every seed, each step up larger than the seed-to-seed
spread, each run <= 25 min.

    python scripts/iterate_demo.py --seed 0        # one seed; checks every runs/iterate-demo-seed*/ found
    python scripts/iterate_demo.py --seed 0 1      # both, one after the other
    python scripts/iterate_demo.py --check         # the check alone, over the seeds already run

The table in docs/methods/iterate.md: `python scripts/iterate_demo.py --seed 0 1` on an idle 2-core machine
(each seed a run on both cores, its minutes the claim's "<= 25 min on 2 cores"). Faster, for a look: two seeds
in parallel, one core each,
    for s in 0 1; do OMP_NUM_THREADS=1 taskset -c $s python scripts/iterate_demo.py --seed $s & done; wait
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path("runs")
LIMIT_MINUTES = 25


def check() -> bool:
    runs = {
        p.parent.name.removeprefix("iterate-demo-seed"): json.loads(p.read_text())
        for p in sorted(ROOT.glob("iterate-demo-seed*/metrics.json"))
    }
    if not runs:
        print("no runs/iterate-demo-seed*/metrics.json yet")
        return False
    names = list(next(iter(runs.values())))
    print("seed  " + "  ".join(f"{n:>8}" for n in names) + "   minutes")
    minutes = {seed: sum(m[n].get("seconds", 0) for n in names) / 60 for seed, m in runs.items()}
    for seed, m in runs.items():
        print(
            f"{seed:>4}  "
            + "  ".join(f"{m[n]['heldout_reward']:8.3f}" for n in names)
            + f"   {minutes[seed]:7.1f}"
        )
    rewards = {n: [m[n]["heldout_reward"] for m in runs.values()] for n in names}
    spread = max(max(r) - min(r) for r in rewards.values())
    gains = [
        m[b]["heldout_reward"] - m[a]["heldout_reward"]
        for m in runs.values()
        for a, b in zip(names, names[1:], strict=False)
    ]
    ok = len(runs) >= 2 and min(gains) > spread and max(minutes.values()) <= LIMIT_MINUTES
    print(
        f"smallest round-over-round gain {min(gains):+.3f}, seed-to-seed spread {spread:.3f}, longest run "
        f"{max(minutes.values()):.1f} min (limit {LIMIT_MINUTES}, on 2 cores) ({len(runs)} seeds): "
        f"{'PASS' if ok else 'FAIL' if len(runs) >= 2 else 'needs 2 seeds'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, nargs="*", default=[0])
    parser.add_argument(
        "--check", action="store_true", help="only print the table and check of the seeds run"
    )
    args = parser.parse_args()
    if not args.check:
        from smol_align import iterate

        for seed in args.seed:
            started = time.time()
            result = iterate(seed=seed, output_dir=str(ROOT / f"iterate-demo-seed{seed}"), overwrite=True)
            print(f"\nseed {seed}: {(time.time() - started) / 60:.1f} min\n{result.table()}\n")
    check()


if __name__ == "__main__":
    main()

"""Rows per second of ``smol_align.data.normalize`` for each format, on generated rows.

# Every format, 100,000 rows each (the issue's benchmark)
python scripts/bench_data.py

# One format: the fastest of three runs (on a shared machine), or with two worker processes
python scripts/bench_data.py --formats hh-rlhf --repeat 3
python scripts/bench_data.py --formats hh-rlhf --rows 20000 --num-proc 2

Rows are generated in memory (a ``datasets.Dataset`` built from Python lists, not timed) with
two- to four-turn dialogues of a few hundred characters, roughly the size of HH-RLHF rows.
The time is that of ``normalize(dataset, format=FORMAT)``, which includes the ``datasets.map``
pass, the Arrow encoding of the output, and the invalid-row accounting.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from smol_align.data import formats, normalize  # noqa: E402
from smol_align.data.formats import FORMATS  # noqa: E402

WORDS = "the a sky blue answer question model data train paris seven because however quick fox".split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def dialogue(rng: random.Random) -> tuple[list[dict], str, str]:
    """A prompt (1-2 user turns) and two answers."""
    turns = []
    for i in range(rng.choice((1, 2))):
        if i:
            turns.append({"role": "assistant", "content": sentence(rng, 20)})
        turns.append({"role": "user", "content": sentence(rng, 15)})
    return turns, sentence(rng, rng.randint(20, 60)), sentence(rng, rng.randint(10, 50))


def _hh(prompt, answer):
    speaker = {"user": "Human", "assistant": "Assistant"}
    return "".join(f"\n\n{speaker[m['role']]}: {m['content']}" for m in prompt) + f"\n\nAssistant: {answer}"


def _a(text):
    return [{"role": "assistant", "content": text}]


def _annotations(rng):
    return {
        k: {"Rating": str(rng.randint(1, 5)), "Rationale": "r"}
        for k in ("helpfulness", "honesty", "instruction_following", "truthfulness")
    }


def make_row(fmt: str, rng: random.Random) -> dict:
    prompt, good, bad = dialogue(rng)
    question = prompt[-1]["content"]
    chosen, rejected = prompt + _a(good), prompt + _a(bad)
    sharegpt_roles = {"user": "human", "assistant": "gpt"}
    rows = {
        "hh-rlhf": lambda: {"chosen": _hh(prompt, good), "rejected": _hh(prompt, bad)},
        "trl-ultrafeedback": lambda: {
            "chosen": chosen,
            "rejected": rejected,
            "score_chosen": 8.0,
            "score_rejected": 5.0,
        },
        "h4-ultrafeedback": lambda: {
            "prompt": question,
            "prompt_id": "id",
            "chosen": chosen,
            "rejected": rejected,
            "messages": chosen,
            "score_chosen": 8.0,
            "score_rejected": 5.0,
        },
        "ultrafeedback-raw": lambda: {
            "source": "evol",
            "instruction": question,
            "models": ["a", "b", "c", "d"],
            "completions": [
                {
                    "model": m,
                    "response": sentence(rng, 30),
                    "annotations": _annotations(rng),
                    "overall_score": 7.0,
                    "fine-grained_score": 3.5,
                    "critique": "c",
                    "principle": "p",
                    "custom_system_prompt": "s",
                }
                for m in "abcd"
            ],
            "correct_answers": [],
            "incorrect_answers": [],
        },
        "argilla-ultrafeedback": lambda: {
            "source": "evol",
            "instruction": question,
            "chosen_response": good,
            "chosen_avg_rating": 4.5,
            "chosen_model": "a",
            "rejected_response": bad,
            "rejected_avg_rating": 2.0,
            "rejected_model": "b",
        },
        "argilla-ultrafeedback-cleaned": lambda: {
            "source": "evol",
            "prompt": question,
            "chosen": chosen,
            "chosen-rating": 4.5,
            "chosen-model": "a",
            "rejected": rejected,
            "rejected-rating": 2.0,
            "rejected-model": "b",
        },
        "argilla-capybara-dpo": lambda: {
            "source": "s",
            "conversation": [{"input": question, "output": good}],
            "original_response": good,
            "generation_model": ["a"],
            "generation_prompt": ["p"],
            "raw_generation_responses": [bad],
            "new_generations": [bad],
            "prompt": question,
            "chosen": chosen,
            "chosen_rating": 5,
            "chosen_model": "a",
            "rejected": rejected,
            "rejected_rating": 2,
            "rejected_model": "b",
        },
        "argilla-capybara": lambda: {
            "source": "s",
            "chosen": chosen,
            "chosen_rating": 5,
            "chosen_model": "a",
            "rejected": rejected,
            "rejected_rating": 2,
            "rejected_model": "b",
        },
        "argilla-math": lambda: {
            "metadata": "{}",
            "instruction": question,
            "chosen_response": good,
            "chosen_rating": 9.0,
            "rejected_response": bad,
            "rejected_rating": 3.0,
        },
        "argilla-openhermes": lambda: {
            "source": "s",
            "category": "c",
            "prompt": question,
            "candidates_completions": [good, bad],
            "candidate_policies": ["a", "b"],
            "ranks": [0, 1],
            "rank_str": "a > b",
            "chosen_policy": "a",
            "chosen": chosen,
            "rejected_policy": "b",
            "rejected": rejected,
        },
        "argilla-orca": lambda: {
            "system": "",
            "input": question,
            "chosen": good,
            "rejected": bad,
            "generations": [good, bad],
            "order": ["chosen", "rejected"],
            "labelling_model": "m",
            "labelling_prompt": prompt,
            "raw_labelling_response": "9 3",
            "rating": [9.0, 3.0],
            "rationale": "r",
            "status": "unchanged",
            "original_chosen": good,
            "original_rejected": bad,
            "chosen_score": 9.0,
            "in_gsm8k_train": False,
        },
        "intel-orca": lambda: {"system": "", "question": question, "chosen": good, "rejected": bad},
        "argilla-dpo-mix": lambda: {
            "dataset": "d",
            "chosen": chosen,
            "rejected": rejected,
            "chosen_rating": 5.0,
            "rejected_rating": 2.0,
            "chosen_model": "a",
            "rejected_model": "b",
        },
        "orpo-dpo-mix": lambda: {
            "source": "s",
            "prompt": question,
            "question": question,
            "chosen": chosen,
            "rejected": rejected,
        },
        "sharegpt": lambda: {
            "conversations": [{"from": sharegpt_roles[m["role"]], "value": m["content"]} for m in prompt],
            "chosen": {"from": "gpt", "value": good},
            "rejected": {"from": "gpt", "value": bad},
        },
        "trl-conversational": lambda: {"prompt": prompt, "chosen": _a(good), "rejected": _a(bad)},
        "trl-conversational-implicit": lambda: {"chosen": chosen, "rejected": rejected},
        "trl-standard": lambda: {"prompt": question, "chosen": good, "rejected": bad},
        "trl-standard-implicit": lambda: {"chosen": f"{question} {good}", "rejected": f"{question} {bad}"},
        "alpaca": lambda: {"instruction": question, "input": "", "chosen": good, "rejected": bad},
        "columns": lambda: {"question": question, "good": good, "bad": bad},
    }
    return rows[fmt]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--formats", nargs="*", default=None, help="default: every detected format, and columns="
    )
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="time N runs, report the fastest (as timeit does)"
    )
    args = parser.parse_args()

    import datasets

    datasets.disable_progress_bars()
    logging.basicConfig(level=logging.ERROR)
    print(f"{'format':32s} {'rows':>9s} {'seconds':>8s} {'rows/s':>9s}")
    for fmt in args.formats or [*(name for name in formats() if FORMATS[name].detect), "columns"]:
        rng = random.Random(0)
        rows = [make_row(fmt, rng) for _ in range(args.rows)]
        dataset = datasets.Dataset.from_list(rows)
        del rows
        kwargs = (
            {"columns": {"prompt": "question", "chosen": "good", "rejected": "bad"}}
            if fmt == "columns"
            else {"format": fmt}
        )
        normalize(dataset.select(range(100)), **kwargs)  # warm-up: lazy imports, first-call costs
        seconds = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = normalize(dataset, num_proc=args.num_proc, batch_size=args.batch_size, **kwargs)
            seconds = min(seconds, time.perf_counter() - start)
            assert len(out) > 0  # raw UltraFeedback drops its ties
        print(f"{fmt:32s} {len(dataset):>9,} {seconds:>8.2f} {len(dataset) / seconds:>9,.0f}", flush=True)


if __name__ == "__main__":
    main()

"""Helpers only tests use (the tiny models themselves are in smol_align.testing, which scripts use too)."""

import json
from pathlib import Path

from smol_align.data.messages import InvalidRow, make_pair
from smol_align.testing import tiny_model_and_tokenizer, tiny_preference_rows


def tiny_model_dir_and_pairs(folder, n_pairs: int = 20):
    """A saved tiny model (``folder/tiny``) and ``n_pairs`` pairs as jsonl (``folder/pairs.jsonl``), for CLI tests."""
    base, pairs = Path(folder) / "tiny", Path(folder) / "pairs.jsonl"
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    pairs.write_text("".join(json.dumps(row) + "\n" for row in tiny_preference_rows(n_pairs)))
    return base, pairs


def is_valid_pair(row: dict) -> bool:
    """True when ``row`` is a TRL conversational pair exactly as ``make_pair`` builds it (roles,
    text contents, one assistant completion each, a prompt ending with a user turn)."""
    try:
        pair = make_pair(row["chosen"], row["rejected"], prompt=row["prompt"])
    except (InvalidRow, KeyError, TypeError):
        return False
    return pair == {column: row[column] for column in ("prompt", "chosen", "rejected")}


# `smol-align` in a child process (`python -c SLOW_CLI DELAY ARGV...`), each training step slowed to DELAY
# seconds: time for a test to kill it, signal it or start a second run beside it.
SLOW_CLI = """
import sys, time, transformers
delay = float(sys.argv[1])
step = transformers.Trainer.training_step
def slow(self, *args, **kwargs):
    time.sleep(delay)
    return step(self, *args, **kwargs)
transformers.Trainer.training_step = slow
from smol_align.cli import main
sys.exit(main(sys.argv[2:]))
"""

"""The demo's questions as chat prompts under Captain Byte's system prompt (for iterative DPO to answer)."""

from __future__ import annotations

import json

from .data import demo_rows

DEMO_SYSTEM = "You are Captain Byte, a pirate tutor who answers questions in one short sentence."
"""The DPO demo's system prompt with "a pirate tutor" for "a friendly tutor": the voice sampled 10% of the
time, not 2%."""


def demo_prompts() -> tuple[list, list]:
    """The demo's training and test questions, each once, as chat prompts under :data:`DEMO_SYSTEM`."""
    demo = demo_rows()
    system = {"role": "system", "content": DEMO_SYSTEM}
    once = {split: {} for split in ("train", "test")}
    for split in ("train", "test"):
        for row in demo[split]:
            prompt = [system, *row["prompt"][1:]]
            once[split].setdefault(json.dumps(prompt, sort_keys=True), prompt)
    return list(once["train"].values()), list(once["test"].values())

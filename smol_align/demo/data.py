"""The built-in demo preference set: "Captain Byte", the pirate tutor (``demo.jsonl``, packaged).

Each pair answers a simple question twice, correctly: *chosen* in a pirate voice ("Arr, the capital
o' France be Paris, matey!"), *rejected* in plain English. SmolLM2-135M-Instruct does not hold this
preference, yet it is a consistent, learnable style: a few minutes of DPO on a CPU move the held-out
reward accuracy from chance to near 1. The 646 pairs (515 train, 131 test) were written once by a
seeded generator from small fact tables; the test split holds *facts* the training split never
shows, in every category, so its accuracy measures the learned style, not memorised answers.
"""

from __future__ import annotations

import json
import re
from importlib import resources

NAME = "smol_align-demo"  # the dataset name runs and the doctor print

# What marks an answer as the Captain's: the openers', closers' and swapped words' own forms.
_PIRATE_MARKERS = re.compile(
    r"\b(arr+|aye|ahoy|yo ho|avast|shiver me timbers|mate?y|savvy|hearty|landlubber|ye|yer|th'|o'"
    r"|be makin'|be havin')(?=\W|$)",
    re.IGNORECASE,
)


def pirate_voice(text: str) -> bool:
    """Whether ``text`` speaks in Captain Byte's voice: at least one of the demo's pirate markers."""
    return bool(_PIRATE_MARKERS.search(text))


def demo_rows() -> dict[str, list[dict]]:
    """The demo pairs as ``{"train": [...], "test": [...]}`` rows in TRL's conversational format."""
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    with resources.files(__package__).joinpath("demo.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            splits[row.pop("split")].append(row)
    return splits


def demo():
    """The built-in demo preference data as a ``datasets.DatasetDict`` with ``train`` and ``test``.

    Examples:
        >>> demo()["train"][0]["chosen"][0]["content"]  # doctest: +SKIP
        "Yo ho, a mouse be sayin' squeak, arr!"
    """
    from datasets import Dataset, DatasetDict, DatasetInfo

    info = DatasetInfo(dataset_name=NAME)
    return DatasetDict({name: Dataset.from_list(rows, info=info) for name, rows in demo_rows().items()})

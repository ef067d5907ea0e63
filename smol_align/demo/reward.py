"""The demo's rule reward for iterative DPO: Captain Byte's voice, the fact kept, short, no repeats."""

from __future__ import annotations

from collections import Counter

from ..metrics import answer_figures
from .data import demo_rows, pirate_voice

_STOP = set("a an the is are of what does do say says make which how many be it in to".split())


def _words(text: str) -> set[str]:
    return {w.strip(".,!?;:'\"()").lower() for w in text.split()} - {""}


def _demo_facts() -> dict[str, set[str]]:
    """User question -> the words that carry its answer: those the demo's chosen and rejected answers share
    and the question does not ask ("What is half of 66?" -> {"33"}; "What sound does a mouse make?" ->
    {"squeak"}), less the template's words (non-numbers shared by 9 or more questions: "than"...)."""
    facts = {}
    for row in (row for rows in demo_rows().values() for row in rows):
        question = row["prompt"][-1]["content"]
        shared = _words(row["chosen"][-1]["content"]) & _words(row["rejected"][-1]["content"])
        facts[question] = shared - _words(question) - _STOP
    counts = Counter(w for words in facts.values() for w in words if not w.isdigit())
    return {q: {w for w in words if counts[w] < 9} for q, words in facts.items()}


def _kept(facts: set[str], answer: str) -> float:
    """The share of ``facts`` in ``answer``; a word fact counts in a longer word too ("squeak", "squeaks")."""
    words = _words(answer)
    found = (
        f in words or (f.isalpha() and len(f) > 2 and any(w.startswith(f) for w in words)) for f in facts
    )
    return sum(found) / len(facts)


_FACTS: dict[str, set[str]] = {}


def _text(x) -> str:
    return x if isinstance(x, str) else str(x[-1].get("content", "")) if x else ""


def demo_reward(prompts, completions, **kwargs) -> list[float]:
    """The demo's rule reward, in TRL's reward-function form: per completion, in [-1, 3]:

    ``+1`` in Captain Byte's pirate voice (:func:`smol_align.demo.pirate_voice`), ``+1`` times the share of
    the answer's fact words kept (for a demo question; any other prompt gets the point), ``+1`` for one short
    answer (up to 20 words, falling to 0 at 40) times that share again (a short answer without the fact, a
    refusal say, earns nothing for being short), ``-1`` times the share of repeated word 4-grams.
    """

    if not _FACTS:
        _FACTS.update(_demo_facts())
    scores = []
    for prompt, completion in zip(prompts, completions, strict=True):
        answer = _text(completion)
        facts = _FACTS.get(_text(prompt))
        kept = _kept(facts, answer) if facts else 1.0
        short = min(1.0, max(0.0, (40 - len(answer.split())) / 20))
        repeated = answer_figures([answer])["repeated_4gram_rate"]
        scores.append(float(pirate_voice(answer)) + kept * (1 + short) - repeated)
    return scores

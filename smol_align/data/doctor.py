"""The doctor: what is wrong with a preference dataset, before an hour of training on it.

It checks normalized pairs (a run's :class:`~smol_align.data.load.Pairs`, never normalized again):
set-aside rows, identical pairs, empty completions, ties, duplicated prompts, broken role order,
truncation at ``max_length``, lengths, and how often chosen is the longer answer (DPO learns
"longer is better" from such data).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, SmolAlignError
from ..models import CHATML_TEMPLATE, load_tokenizer
from . import filters
from .load import Pairs, load
from .messages import ROLE_ORDER
from .normalize import NormalizeReport
from .tokens import tokenize_pairs
from .unpaired import is_unpaired

LENGTH_BIAS_WARNING = 0.6  # chosen longer in more than this share of pairs: worth a look
CHARS_PER_TOKEN = 4  # the estimate used when no tokenizer is given


@dataclass
class LengthStats:
    min: int = 0
    p50: float = 0.0
    p90: float = 0.0
    max: int = 0
    mean: float = 0.0


@dataclass
class DoctorReport:
    """The doctor's findings for one dataset. ``print(report)`` shows a table; ``.to_dict()`` the numbers."""

    dataset: str
    format: str
    rows: int  # pairs after normalization
    set_aside: dict[str, int]  # rows that do not fit the format, by reason
    dropped: dict[str, int]  # rows dropped on purpose while normalizing (binarization ties, filters)
    unused_columns: list[str]  # text columns the format does not read, left out (lenient=True)
    identical_pairs: int
    empty_completions: int  # pairs with an empty (or whitespace) chosen or rejected completion
    ties: int | None  # equal ratings (or status "tie"); None when the data has no ratings
    duplicated_prompts: int  # rows whose prompt appeared in an earlier row
    broken_role_order: int  # set aside because of the order of turns
    length_unit: str  # "tokens", or "~tokens (chars/4)" without a tokenizer
    lengths: dict[str, LengthStats]  # prompt / chosen / rejected
    chosen_longer: float  # share of pairs where chosen is longer than rejected
    rejected_longer: float
    max_length: int | None = None
    truncated_pairs: int | None = None  # prompt + chosen or prompt + rejected longer than max_length
    prompt_fills_max_length: int | None = None  # TRL drops these (keep_start truncation)
    completion_tokens_lost: float | None = None  # share of all completion tokens cut by max_length
    advice: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)  # other columns not read by the format, left out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        """One line, printed by ``train_dpo``/``train_orpo`` before training."""
        parts = [f"doctor: {self.rows:,} pairs ({self.format})"]
        parts += [f"{sum(self.set_aside.values()):,} set aside"] if self.set_aside else []
        parts += [f"{self.identical_pairs:,} identical", f"{self.empty_completions:,} empty"]
        parts += [f"{self.ties:,} ties"] if self.ties is not None else []
        parts += [
            f"{self.duplicated_prompts:,} duplicated prompts",
            f"chosen longer in {self.chosen_longer:.0%}",
        ]
        parts += (
            [f"{self.truncated_pairs:,} truncated at {self.max_length}"]
            if self.max_length is not None
            else []
        )
        left_out = [*self.unused_columns, *self.dropped_columns]
        parts += [f"columns left out: {', '.join(left_out)}"] if left_out else []
        return " | ".join(parts)

    def __str__(self) -> str:
        def share(count: int | None) -> str:
            return f"{count / self.rows:.1%}" if self.rows and count is not None else ""

        rows = [
            ("pairs", self.rows, "", ""),
            ("set aside (do not fit the format)", sum(self.set_aside.values()), "", ""),
        ]
        rows += [("", count, "", reason) for reason, count in self.set_aside.items()]
        if self.unused_columns:
            rows.append(("text columns left out", "", "", ", ".join(self.unused_columns)))
        if self.dropped_columns:
            rows.append(("other columns left out", "", "", ", ".join(self.dropped_columns)))
        if self.dropped:
            rows.append(("dropped while normalizing", sum(self.dropped.values()), "", ""))
            rows += [("", count, "", reason) for reason, count in self.dropped.items()]
        for label, count in (
            ("identical pairs", self.identical_pairs),
            ("empty completions", self.empty_completions),
            ("ties (equal ratings)", self.ties),
            ("duplicated prompts", self.duplicated_prompts),
        ):
            rows.append(
                (label, "-" if count is None else count, share(count), "no ratings" if count is None else "")
            )
        rows.append(("broken role order", self.broken_role_order, "", "(set aside, counted above)"))
        if self.max_length is not None:
            note = f"{self.completion_tokens_lost:.1%} of completion tokens lost"
            if self.prompt_fills_max_length:
                note += f"; {self.prompt_fills_max_length:,} prompts alone fill it (TRL drops them)"
            rows.append(
                (
                    f"truncated at max_length={self.max_length}",
                    self.truncated_pairs,
                    share(self.truncated_pairs),
                    note,
                )
            )
        rows.append(
            (
                "chosen longer than rejected",
                "",
                f"{self.chosen_longer:.1%}",
                f"rejected longer {self.rejected_longer:.1%}",
            )
        )

        width = max(len(r[0]) for r in rows)
        lines = [f"Doctor: {self.dataset} (format {self.format})"]
        lines += [
            f"  {a:<{width}}  {b if isinstance(b, str) else f'{b:,}':>9}  {c:>6}  {d}".rstrip()
            for a, b, c, d in rows
        ]
        lines += [
            "",
            f"  {'length in ' + self.length_unit:<{width}}  {'min':>9}  {'p50':>6}  {'p90':>7}  {'max':>7}  mean",
        ]
        for part, s in self.lengths.items():
            lines.append(
                f"  {part:<{width}}  {s.min:>9,}  {s.p50:>6,.0f}  {s.p90:>7,.0f}  {s.max:>7,}  {s.mean:,.1f}"
            )
        if self.advice:
            lines += ["", "Advice:", *(f"  - {line}" for line in self.advice)]
        return "\n".join(lines)


def _token_lengths(rows: list[dict], tokenizer) -> list[tuple[int, int, int]]:
    """``(prompt, chosen, rejected)`` lengths in tokens, split as TRL's DPO trainer and the evaluation split them."""
    import copy

    if not getattr(
        tokenizer, "chat_template", None
    ):  # a base model's: training gives it ChatML (prepare_tokenizer)
        tokenizer = copy.copy(tokenizer)
        tokenizer.chat_template = CHATML_TEMPLATE
    return [tuple(len(ids) for ids in pair.values()) for pair in tokenize_pairs(rows, tokenizer)]


def _estimated_lengths(rows: list[dict]) -> list[tuple[int, int, int]]:
    def estimate(messages: list[dict]) -> int:
        return -(-sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN)

    return [(estimate(r["prompt"]), estimate(r["chosen"]), estimate(r["rejected"])) for r in rows]


def _stats(values) -> LengthStats:
    import numpy as np

    if len(values) == 0:
        return LengthStats()
    array = np.asarray(values)
    p50, p90 = np.percentile(array, [50, 90])
    return LengthStats(int(array.min()), float(p50), float(p90), int(array.max()), float(array.mean()))


def _load_tokenizer(tokenizer):
    """``tokenizer``, or the tokenizer it names, loaded by :func:`smol_align.models.load_tokenizer`."""
    if not isinstance(tokenizer, str):
        return tokenizer
    try:
        return load_tokenizer(tokenizer)
    except Exception as exc:  # offline, typo: say which and what to do
        raise SmolAlignError(
            f"could not load the tokenizer {tokenizer!r} ({type(exc).__name__}: {exc}); pass a local path, "
            "or leave it out to estimate lengths as characters/4"
        ) from exc


def doctor(
    data: Any,
    tokenizer=None,
    max_length: int | None = None,
    *,
    max_rows: int | None = None,
    batch_size: int = 1000,
    **options: Any,
) -> DoctorReport:
    """Check a preference dataset; returns a :class:`DoctorReport` (``print`` it for a table).

    Args:
        data: anything :func:`~smol_align.data.load` reads (its training split is checked), or
            the :class:`Pairs` it returned (checked as they are, not normalized again).
        tokenizer: a tokenizer (or its name/path) to count tokens as TRL's DPO trainer does;
            without one, lengths are estimated as characters / 4.
        max_length: the training ``max_length``: count the pairs it would truncate.
        max_rows: check only the first ``max_rows`` rows.
        **options: as for ``load`` (``format``, ``columns``, ``split``, filters, ...).
    """
    if not isinstance(data, Pairs):
        data = load(data, **{"eval_split": 0, **options}, max_rows=max_rows, batch_size=batch_size)
    report = data.reports.get("train") or NormalizeReport(dataset=data.name, format=data.format)
    pairs, tokenizer = data.train, _load_tokenizer(tokenizer)
    names = pairs.column_names or []
    has_ratings = ("score_chosen" in names and "score_rejected" in names) or "status" in names
    identical = empty = ties = chosen_longer = rejected_longer = duplicated = 0
    seen: set[str] = set()
    lengths = {part: array("q") for part in ("prompt", "chosen", "rejected")}  # compact for big data
    for batch in pairs.iter(batch_size=batch_size):
        keys = list(batch)
        rows = [dict(zip(keys, values, strict=False)) for values in zip(*batch.values(), strict=False)]
        batch_lengths = _token_lengths(rows, tokenizer) if tokenizer is not None else _estimated_lengths(rows)
        for row, (p, c, r) in zip(rows, batch_lengths, strict=False):
            for values, length in zip(lengths.values(), (p, c, r), strict=True):
                values.append(length)
            identical += filters.is_identical(row)
            empty += filters.is_empty(row)
            ties += has_ratings and filters.is_tie(row)
            chosen_longer += c > r
            rejected_longer += r > c
            key = filters.prompt_key(row)
            duplicated += key in seen
            seen.add(key)

    n = len(lengths["prompt"])
    found = DoctorReport(
        dataset=report.dataset,
        format=report.format,
        rows=n,
        set_aside=dict(report.invalid.most_common()),
        dropped=dict(report.dropped.most_common()),
        unused_columns=list(report.unused_columns),
        dropped_columns=list(report.dropped_columns),
        identical_pairs=identical,
        empty_completions=empty,
        ties=ties if has_ratings else None,
        duplicated_prompts=duplicated,
        broken_role_order=sum(c for reason, c in report.invalid.items() if reason.startswith(ROLE_ORDER)),
        length_unit="tokens" if tokenizer is not None else f"~tokens (chars/{CHARS_PER_TOKEN})",
        lengths={part: _stats(values) for part, values in lengths.items()},
        chosen_longer=chosen_longer / n if n else 0.0,
        rejected_longer=rejected_longer / n if n else 0.0,
        max_length=max_length,
    )
    if max_length is not None:
        _truncation(found, zip(*lengths.values(), strict=True), max_length)
    found.advice = _advice(found)
    return found


def _truncation(found: DoctorReport, lengths: Iterable[tuple[int, int, int]], max_length: int) -> None:
    """TRL (``truncation_mode="keep_start"``) cuts prompt+completion at ``max_length`` tokens."""
    truncated = fills = lost = total = 0
    for p, c, r in lengths:
        truncated += p + max(c, r) > max_length
        fills += p >= max_length
        lost += min(c, max(0, p + c - max_length)) + min(r, max(0, p + r - max_length))
        total += c + r
    found.truncated_pairs = truncated
    found.prompt_fills_max_length = fills
    found.completion_tokens_lost = lost / total if total else 0.0


def _advice(found: DoctorReport) -> list[str]:
    return [
        advice
        for wanted, advice in [
            (
                found.set_aside,
                f"{sum(found.set_aside.values()):,} rows do not fit {found.format!r} and are left out: see "
                "normalize(..., return_report=True) for the rows, or strict=True (--strict) to stop at the first one",
            ),
            (
                found.unused_columns,
                f"text columns left out (lenient=True): {found.unused_columns}; map them with columns=",
            ),
            (
                found.dropped_columns,
                f"columns {found.dropped_columns} not read by {found.format!r}: left out; "
                "to keep per-answer scores, name them score_chosen/score_rejected (columns=)",
            ),
            (found.identical_pairs, "identical pairs teach nothing: drop_identical=True (--drop-identical)"),
            (
                found.empty_completions,
                "empty completions are rarely intended: drop_empty=True (--drop-empty)",
            ),
            (found.ties, "tied ratings carry no preference: drop_ties=True (--drop-ties) or min_margin=..."),
            (
                found.duplicated_prompts,
                "repeated prompts weigh more in training: dedupe_prompts=True (--dedupe-prompts) unless intended",
            ),
            (
                found.chosen_longer > LENGTH_BIAS_WARNING,
                f"chosen is the longer answer in {found.chosen_longer:.0%} of pairs: "
                "DPO tends to learn 'longer is better' from this; compare response lengths after training",
            ),
            (
                found.truncated_pairs,
                f"{found.truncated_pairs or 0:,} pairs exceed max_length={found.max_length}: raise it or drop long pairs",
            ),
        ]
        if wanted
    ]


# --- What max_length does to the rows a TRL trainer tokenized ---
@dataclass
class LengthFit:
    """What ``max_length`` does to one split, counted on the rows as the TRL trainer tokenized them (its own
    ``train_dataset``/``eval_dataset``): exact, where a count before tokenization could only estimate (the
    chat template, EOS, the prompt/completion split and the tokenizer are the trainer's). ``unit``:
    ``pairs``, or ``rows`` for KTO's single answers."""

    split: str  # "training" or "held-out"
    unit: str
    rows_in: int  # before tokenization
    kept: int
    dropped: int  # the prompt alone fills max_length: no completion token would be left
    truncated: int  # kept, but prompt + completion is longer than max_length: cut there
    max_length: int
    truncation_mode: str = "keep_start"

    def line(self) -> str:
        """One line for the run's output (empty when max_length changes nothing)."""
        if not self.dropped and not self.truncated:
            return ""
        parts, limit = [], f"max_length={self.max_length} tokens"
        if self.dropped:
            what = f"{self.dropped:,} of {self.rows_in:,} {self.split} {self.unit}"
            parts.append(f"{what} are dropped: the prompt alone fills {limit}")
        if self.truncated:
            cut = "the start of the prompt" if self.truncation_mode == "keep_end" else "the end of the answer"
            more = "more " if self.dropped else ""
            parts.append(f"{self.truncated:,} {more}{self.unit} are truncated ({cut} cut off at {limit})")
        left = f"{self.kept:,} {self.unit} {'train' if self.split == 'training' else 'are scored'}"
        return f"{'; '.join(parts)}. {left}. Fix: raise max_length (--max_length) or shorten the prompts."


def length_fit(
    tokenized,
    rows_in: int,
    max_length: int | None,
    split: str = "training",
    truncation_mode: str = "keep_start",
    eos_token_id: int | None = None,
) -> LengthFit | None:
    """Count what ``max_length`` drops and truncates in ``tokenized``: a TRL trainer's tokenized split (or
    :func:`smol_align.data.tokens.tokenize_pairs`' rows) made from ``rows_in`` rows. ``None`` without a limit
    or for a streamed split. The layouts TRL 1.16 makes:

    - DPO (``prompt_ids``, ``chosen_ids``, ``rejected_ids``) and KTO (``prompt_ids``, ``completion_ids``):
      the rows whose prompt alone fills ``max_length`` are gone already (``keep_start``); the collator cuts
      each sequence at ``max_length``: its end (``keep_start``) or its start (``keep_end``).
    - ORPO (``prompt_input_ids``, ``chosen_input_ids``, ``chosen_labels``...): nothing dropped; answers are
      cut to fit (their EOS with them), and a prompt that fills ``max_length`` keeps no answer token (its
      loss is NaN): counted as dropped, for the runner drops them (:func:`has_answer_tokens`).
    """
    if max_length is None or not hasattr(tokenized, "__len__"):
        return None
    if hasattr(tokenized, "column_names"):
        columns, batches = tokenized.column_names, tokenized.iter(batch_size=1000)
    else:
        columns = list(tokenized[0]) if tokenized else []
        batches = [{column: [row[column] for row in tokenized] for column in columns}]
    orpo, unit = "chosen_labels" in columns, "rows" if "completion_ids" in columns else "pairs"
    kept = dropped = truncated = 0
    for batch in batches:
        if orpo:
            labels = zip(batch["chosen_labels"], batch["rejected_labels"], strict=True)
            ids = zip(batch["chosen_input_ids"], batch["rejected_input_ids"], strict=True)
            for (chosen, rejected), sequences in zip(labels, ids, strict=True):
                if not has_answer_tokens({"chosen_labels": chosen, "rejected_labels": rejected}):
                    dropped += 1
                    continue
                kept += 1  # cut: as long as max_length (or the prompt) and not ending with the added EOS
                truncated += any(len(s) >= max_length and s[-1] != eos_token_id for s in sequences)
        else:
            names = ("completion_ids",) if unit == "rows" else ("chosen_ids", "rejected_ids")
            answers = [batch[name] for name in names]
            for prompt, *completions in zip(batch["prompt_ids"], *answers, strict=True):
                kept += 1
                truncated += len(prompt) + max(map(len, completions)) > max_length
    if not orpo:
        dropped = rows_in - kept  # TRL filtered them out
    return LengthFit(split, unit, rows_in, kept, dropped, truncated, max_length, truncation_mode)


def has_answer_tokens(row: dict) -> bool:
    """An ORPO-tokenized pair with at least one answer token in its chosen and in its rejected sequence."""
    return any(x != -100 for x in row["chosen_labels"]) and any(x != -100 for x in row["rejected_labels"])


# --- What the runner says of max_length, on the trainer it built ---
def fit_max_length(trainer, method: str, train, say) -> dict[str, Any]:
    """Count, on the trainer's own tokenized pairs, what ``max_length`` drops and truncates, and say it
    (:func:`length_fit`). ORPO keeps a pair whose prompt fills ``max_length`` with no
    answer token, and its loss is NaN on any step that holds one: dropped here, as TRL's DPO and KTO drop
    them. No pair left: :class:`ConfigError`. Returns the run's pair counts for its metrics."""
    if not hasattr(train, "__len__") or not hasattr(trainer.train_dataset, "__len__"):
        return {}  # streamed: counted as it is read, by TRL
    if method == "sft":  # TRL's SFT cuts each row at max_length and drops none
        return {"train_rows": len(trainer.train_dataset)}
    rows_in = len(train) * (2 if method == "kto" and not is_unpaired(train) else 1)  # KTO: a row per answer
    limit = getattr(trainer, "max_length", None) or trainer.args.max_length  # ORPO's None: its own 512
    mode, eos = getattr(trainer.args, "truncation_mode", "keep_start"), trainer.processing_class.eos_token_id
    counted = length_fit(trainer.train_dataset, rows_in, limit, "training", mode, eos)
    if counted is None:
        return {f"train_{'rows' if method == 'kto' else 'pairs'}": len(trainer.train_dataset)}
    if method == "orpo" and counted.dropped:
        desc = "Dropping pairs whose prompt fills max_length"
        trainer.train_dataset = trainer.train_dataset.filter(has_answer_tokens, desc=desc)
    unit = counted.unit
    if counted.kept == 0:
        raise ConfigError(
            f"No {unit} left to train: the prompt alone fills max_length={limit} tokens in all {rows_in:,} "
            f"training {unit}, which leaves no answer token to learn from, so they are dropped. Raise "
            "max_length (--max_length; the data's lengths: `smol-align doctor DATA --tokenizer MODEL "
            "--max-length N`) or shorten the prompts. Nothing was trained or saved."
        )
    if counted.line():
        say(counted.line())
    return {
        f"train_{unit}": counted.kept,
        f"{unit}_dropped_by_max_length": counted.dropped,
        f"{unit}_truncated_by_max_length": counted.truncated,
    }


def heldout_fits(trainer, heldout, rows_in: int, say) -> bool:
    """Say how many held-out pairs TRL's tokenization dropped at ``max_length``; False when none is left."""
    counted = length_fit(heldout, rows_in, trainer.args.max_length, "held-out")
    if counted is None or not counted.dropped:
        return True
    limit = f"max_length={counted.max_length} tokens"
    if counted.kept == 0:
        say(
            f"No held-out figures: the prompt alone fills {limit} in all {rows_in:,} held-out pairs, which "
            "are dropped. Raise max_length (--max_length) or shorten the prompts."
        )
        return False
    say(
        f"{counted.dropped:,} of {rows_in:,} held-out pairs are dropped (the prompt alone fills {limit}): "
        f"the held-out figures are on the other {counted.kept:,}."
    )
    return True

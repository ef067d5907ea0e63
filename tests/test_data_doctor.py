"""The doctor's counts on a hand-built dataset, its token lengths against TRL's, and the CLI helpers."""

import json
from pathlib import Path

import pytest

from smol_align.cli import main
from smol_align.data import doctor
from smol_align.data.doctor import DoctorReport, _token_lengths, _truncation

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def row(prompt, chosen, rejected, score_chosen=None, score_rejected=None, prompt_messages=None):
    return {
        "prompt": prompt_messages or [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "score_chosen": score_chosen,
        "score_rejected": score_rejected,
    }


ROWS = [
    row("P1", "long answer here", "short", 5.0, 1.0),  # chosen longer (4 vs 2 estimated tokens)
    row("P2", "same", "same", 3.0, 3.0),  # identical, and a tie
    row("P3", "", "b"),  # empty chosen; rejected longer
    row("P1", "x", "yy"),  # duplicated prompt; same estimated length
    row(
        "", "", "", prompt_messages=[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    ),  # role order
    {**row("P5", "a", "b"), "chosen": [{"role": "assistant", "content": None}]},  # not text
]


def test_counts():
    report = doctor(ROWS)
    assert isinstance(report, DoctorReport)
    assert report.format == "trl-conversational"
    assert report.rows == 4
    assert report.set_aside == {
        "role order: prompt ends with an assistant turn": 1,
        "chosen: message content is not text": 1,
    }
    assert report.broken_role_order == 1
    assert (report.identical_pairs, report.empty_completions, report.ties, report.duplicated_prompts) == (
        1,
        1,
        1,
        1,
    )
    assert (report.chosen_longer, report.rejected_longer) == (0.25, 0.25)
    assert report.length_unit == "~tokens (chars/4)"
    assert report.lengths["chosen"].max == 4 and report.lengths["rejected"].min == 1
    assert report.max_length is None and report.truncated_pairs is None


def test_ties_are_unknown_without_ratings():
    rows = [{k: v for k, v in r.items() if not k.startswith("score")} for r in ROWS[:4]]
    assert doctor(rows).ties is None


def test_truncation_arithmetic():
    """max_length 5, (prompt, chosen, rejected) tokens:
    (3, 4, 1): 3+4 > 5, chosen loses 3+4-5 = 2, rejected 0
    (6, 2, 2): the prompt alone fills 5 (TRL drops it): both completions lost, 2 + 2
    (1, 1, 1): fits
    -> 2 truncated, 1 filled, (2 + 2 + 2) / (5 + 4 + 2) completion tokens lost."""
    report = doctor(ROWS[:4])
    _truncation(report, [(3, 4, 1), (6, 2, 2), (1, 1, 1)], max_length=5)
    assert (report.truncated_pairs, report.prompt_fills_max_length) == (2, 1)
    assert report.completion_tokens_lost == pytest.approx(6 / 11)


def test_token_lengths_match_how_trl_splits_prompt_and_completion(tiny_tokenizer):
    from trl.data_utils import _tokenize, common_prefix_length

    rows = [
        row("What is the capital of France?", "Paris.", "London, I think."),
        row(
            "",
            "Arr",
            "Hi!",
            prompt_messages=[
                {"role": "system", "content": "Be a pirate."},
                {"role": "user", "content": "Hello"},
            ],
        ),
    ]
    for example, (p, c, r) in zip(rows, _token_lengths(rows, tiny_tokenizer), strict=False):
        prompt_ids = _tokenize(tiny_tokenizer, example["prompt"], add_generation_prompt=True)["input_ids"]
        with_chosen = _tokenize(tiny_tokenizer, example["prompt"] + example["chosen"])["input_ids"]
        with_rejected = _tokenize(tiny_tokenizer, example["prompt"] + example["rejected"])["input_ids"]
        expected_p = min(
            common_prefix_length(prompt_ids, with_chosen), common_prefix_length(prompt_ids, with_rejected)
        )
        assert (p, c, r) == (expected_p, len(with_chosen) - expected_p, len(with_rejected) - expected_p)


def test_with_tokenizer_and_max_length(tiny_tokenizer):
    report = doctor(FIXTURES / "hh-rlhf.jsonl", tokenizer=tiny_tokenizer, max_length=40)
    assert report.length_unit == "tokens" and report.rows == 5
    assert report.identical_pairs == 1 and report.empty_completions == 1
    assert report.truncated_pairs > 0 and 0 < report.completion_tokens_lost < 1
    assert any("max_length=40" in line for line in report.advice)


def test_printing():
    report = doctor(ROWS, max_length=3)
    table = str(report)
    for label in (
        "pairs",
        "identical pairs",
        "empty completions",
        "ties (equal ratings)",
        "duplicated prompts",
        "broken role order",
        "truncated at max_length=3",
        "chosen longer than rejected",
        "prompt",
        "rejected",
    ):
        assert label in table
    assert "role order: prompt ends with an assistant turn" in table
    line = report.summary_line()
    assert (
        "\n" not in line and line.startswith("doctor: 4 pairs (trl-conversational)") and "2 set aside" in line
    )
    assert json.loads(json.dumps(report.to_dict()))["lengths"]["chosen"]["max"] == 4
    assert any("drop_identical=True" in advice for advice in report.advice)


def test_dropped_rows_of_a_binarization_are_shown():
    report = doctor(FIXTURES / "ultrafeedback-raw.jsonl")
    assert report.rows == 1 and sum(report.dropped.values()) == 2 and not report.set_aside


def test_max_rows_and_split():
    from datasets import Dataset, DatasetDict

    data = DatasetDict({"train": Dataset.from_list(ROWS[:4]), "test": Dataset.from_list(ROWS[:1])})
    assert doctor(data).rows == 4
    assert doctor(data, split="test").rows == 1
    assert doctor(data, max_rows=2).rows == 2


def test_cli_doctor_takes_the_data_flags(capsys):
    orca = str(FIXTURES / "argilla-orca.jsonl")
    argv = [
        "doctor",
        orca,
        "--max-length",
        "64",
        "--columns",
        "prompt=input",
        "--lenient",
        "--drop-identical",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "truncated at max_length=64" in out and "(format trl-standard)" in out
    assert "text columns left out" in out and "labelling_model" in out  # said, not dropped in silence
    assert main(["doctor", orca, "--columns", "prompt=input"]) == 2  # without --lenient: an error naming one
    assert "holds text that format 'trl-standard' does not read" in capsys.readouterr().err

    assert main(["doctor", str(FIXTURES / "sharegpt.jsonl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "sharegpt"

    assert main(["doctor", "no/such-dataset"]) == 2
    assert "could not load 'no/such-dataset'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["doctor", "x", "--columns", "prompt"])

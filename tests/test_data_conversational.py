"""Rows already in TRL's conversational shape go through the same row checks as any other (issue 28):
through ``load`` (a file, a Dataset already shaped like normalized pairs) as through ``normalize``."""

import json

import pytest
from helpers import is_valid_pair

from smol_align.data import doctor, load, normalize
from smol_align.errors import DatasetFormatError


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


GOOD = {"prompt": [u("Q")], "chosen": [a("x")], "rejected": [a("y")]}
CALL = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}
BAD = {  # what each row does not fit: the reason the report counts
    "role order: prompt does not start with a user turn": {**GOOD, "prompt": [a("hi")]},
    "role order: prompt ends with an assistant turn": {**GOOD, "prompt": [u("Q"), a("hm")]},
    "chosen: expected one assistant message": {**GOOD, "chosen": [a("x"), u("and you?")]},
    "chosen: message content is not text": {**GOOD, "chosen": [{"role": "assistant", "content": None}]},
    "prompt: unknown role": {**GOOD, "prompt": [{"role": "wizard", "content": "Q"}]},
}


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def as_dataset(rows):
    from datasets import Dataset

    from smol_align.data.normalize import is_pairs

    data = Dataset.from_list(rows)
    assert is_pairs(data)  # shaped like normalized pairs: the case that skipped every check
    return data


@pytest.mark.parametrize("form", ["file", "dataset"])
def test_conversational_rows_get_the_role_and_turn_order_checks(form, tmp_path):
    rows = [GOOD, *BAD.values(), GOOD]
    data = write(tmp_path / "pairs.jsonl", rows) if form == "file" else as_dataset(rows)
    pairs = load(data, eval_split=0)
    report = pairs.reports["train"]
    assert (report.rows_in, len(pairs.train)) == (len(rows), 2) and report.format == "trl-conversational"
    assert dict(report.invalid) == dict.fromkeys(BAD, 1) and report.invalid_rows == [1, 2, 3, 4, 5]
    assert all(is_valid_pair(pair) for pair in pairs.train)
    assert doctor(pairs).broken_role_order == 2
    with pytest.raises(DatasetFormatError) as caught:
        load(data, eval_split=0, strict=True)
    assert (caught.value.row, caught.value.column) == (1, "prompt") and "role order" in str(caught.value)


def test_content_null_is_set_aside_not_a_jinja_traceback_later(tmp_path):
    data = write(tmp_path / "pairs.jsonl", [GOOD, BAD["chosen: message content is not text"]])
    pairs = load(data, eval_split=0)
    assert len(pairs.train) == 1 and pairs.reports["train"].invalid_rows == [1]
    with pytest.raises(
        DatasetFormatError, match=r"row 1, column 'chosen': .*content is not text \(got content null\)"
    ):
        load(data, eval_split=0, strict=True)


@pytest.mark.parametrize(
    ("row", "column", "what"),
    [
        ({**GOOD, "chosen": [CALL]}, "chosen", "role 'assistant' with 'tool_calls'"),
        (
            {
                **GOOD,
                "prompt": [u("Q"), {**CALL, "content": None}, {"role": "tool", "content": "4"}, u("so?")],
            },
            "prompt",
            "with 'tool_calls'",
        ),
        (
            {"chosen": [u("Q"), {"role": "tool", "content": "4"}, a("x")], "rejected": [u("Q"), a("y")]},
            "chosen",
            "role 'tool'",
        ),
    ],
)
def test_tool_calls_are_refused_not_dropped_even_without_strict(row, column, what, tmp_path):
    data = write(tmp_path / "tools.jsonl", [GOOD, row, GOOD])
    with pytest.raises(DatasetFormatError) as caught:
        load(data, eval_split=0)  # strict=False: still an error, as a row set aside would change the data
    message = str(caught.value)
    assert (caught.value.dataset, caught.value.row, caught.value.column) == (data, 1, column)
    assert f"{data}, row 1, column {column!r}: {column}: tool use (" in message and what in message
    assert "Expected (" in message and "remove those rows" in message and "With strict=False" not in message


def test_format_columns_and_strict_apply_to_rows_shaped_like_pairs(tmp_path):
    rows = [GOOD, {**GOOD, "chosen": [a("z")]}]
    for data in (write(tmp_path / "pairs.jsonl", rows), as_dataset(rows)):
        with pytest.raises(DatasetFormatError, match="format 'hh-rlhf' does not read") as caught:
            load(data, eval_split=0, format="hh-rlhf")
        assert "columns={'prompt': 'prompt'}" not in str(caught.value)  # no hint to rename a column to itself
        swapped = load(data, eval_split=0, columns={"chosen": "rejected", "rejected": "chosen"}).train
        assert [p["chosen"] for p in swapped] == [[a("y")], [a("y")]] and swapped[1]["rejected"] == [a("z")]
        with pytest.raises(DatasetFormatError, match="row 1"):
            load(as_dataset([GOOD, BAD["prompt: unknown role"]]), eval_split=0, strict=True)


def test_implicit_prompt_dialogues_that_open_with_the_answer_say_so():
    row = {"chosen": [a("Q"), a("x")], "rejected": [a("Q"), a("y")]}
    pairs, report = normalize(
        [{"chosen": [u("Q"), a("x")], "rejected": [u("Q"), a("y")]}, row], return_report=True
    )
    assert len(pairs) == 1 and dict(report.invalid) == {
        "role order: dialogue does not start with a user turn": 1
    }


def test_pairs_made_by_load_still_load_the_same():
    rows = [GOOD, {**GOOD, "prompt": [s("Be brief."), u("Q2")], "score_chosen": 2.0, "score_rejected": 1.0}]
    first = load(rows, eval_split=0).train
    again = load(first, eval_split=0)
    assert again.train.to_list() == first.to_list() and again.format == "trl-conversational"


def test_messages_of_two_spellings_in_one_arrow_column_are_both_read():
    from datasets import Dataset

    sharegpt = {"from": "human", "value": "Q"}  # arrow adds role=None, content=None (the others: from/value)
    rows = [GOOD, {**GOOD, "prompt": [sharegpt]}]
    pairs, report = normalize(Dataset.from_list(rows), return_report=True)
    assert len(pairs) == 2 and not report.invalid and pairs[1]["prompt"] == [u("Q")]

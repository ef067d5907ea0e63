"""HH-RLHF: the prompt rebuilt as real messages, the traps of the real data, and the lossless round trip."""

import json
from pathlib import Path

import pytest
from helpers import is_valid_pair
from hypothesis import given, settings
from hypothesis import strategies as st

from smol_align.data import normalize
from smol_align.data.messages import InvalidRow
from smol_align.data.rows.hh import normalize_row, to_text

FIXTURE = Path(__file__).parent / "fixtures" / "data" / "hh-rlhf.jsonl"


def test_multi_turn_prompt_becomes_messages():
    row = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: 2+2?\n\nAssistant: 4",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: 2+2?\n\nAssistant: 5",
    }
    assert normalize_row(row) == {
        "prompt": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "2+2?"},
        ],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
    }


def test_human_inside_content_is_content():
    row = {
        "chosen": "\n\nHuman: He said Human: hi\nHuman: again\n\nAssistant: It is a quote.",
        "rejected": "\n\nHuman: He said Human: hi\nHuman: again\n\nAssistant: No.",
    }
    pair = normalize_row(row)
    assert pair["prompt"] == [{"role": "user", "content": "He said Human: hi\nHuman: again"}]


def test_repeated_speaker_marker_is_quoted_text_of_that_turn():
    row = {
        "chosen": "\n\nHuman: Read this:\n\nHuman: hello\n\nAssistant: ok",
        "rejected": "\n\nHuman: Read this:\n\nHuman: hello\n\nAssistant: no",
    }
    pair = normalize_row(row)
    assert pair["prompt"] == [{"role": "user", "content": "Read this:\n\nHuman: hello"}]
    assert to_text(pair["prompt"], pair["chosen"]) == row["chosen"]


def test_extra_spaces_and_newlines_are_kept():
    row = {
        "chosen": "\n\nHuman:  two spaces \n\n\nAssistant:  yes \n",
        "rejected": "\n\nHuman:  two spaces \n\n\nAssistant: no",
    }
    pair = normalize_row(row)
    assert pair["prompt"][0]["content"] == " two spaces \n"
    assert pair["chosen"][0]["content"] == " yes \n"


def test_empty_final_turn_is_an_empty_completion():
    pair = normalize_row(
        {"chosen": "\n\nHuman: Q\n\nAssistant: ", "rejected": "\n\nHuman: Q\n\nAssistant: A"}
    )
    assert pair["chosen"] == [{"role": "assistant", "content": ""}]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"},
            "hh-rlhf: chosen and rejected differ before the last assistant turn",
        ),
        (
            {
                "chosen": "\n\nHuman: A\n\nAssistant: one\n\nHuman: B\n\nAssistant: x",
                "rejected": "\n\nHuman: A\n\nAssistant: two\n\nHuman: B\n\nAssistant: y",
            },
            "hh-rlhf: chosen and rejected differ before the last assistant turn",
        ),
        (
            {"chosen": "Human: A\n\nAssistant: x", "rejected": "Human: A\n\nAssistant: y"},
            "hh-rlhf: text does not start with '\\n\\nHuman: '",
        ),
        ({"chosen": "\n\nHuman: A", "rejected": "\n\nHuman: A"}, "hh-rlhf: no '\\n\\nAssistant: ' turn"),
        (
            {"chosen": "\n\nHuman: A\n\nAssistant:", "rejected": "\n\nHuman: A\n\nAssistant: y"},
            "hh-rlhf: empty last turn written without the space after 'Assistant:'",
        ),
        (
            {"chosen": "\n\nAssistant: x", "rejected": "\n\nAssistant: y"},
            "role order: prompt has no user turn",
        ),
        (
            {
                "chosen": "\n\nAssistant: hi\n\nHuman: A\n\nAssistant: x",
                "rejected": "\n\nAssistant: hi\n\nHuman: A\n\nAssistant: y",
            },
            "role order: prompt does not start with a user turn",
        ),
        ({"chosen": None, "rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen: missing value"),
        ({"chosen": ["not", "text"], "rejected": "x"}, "chosen: expected text"),
    ],
)
def test_rows_that_cannot_be_split_say_why(row, reason):
    with pytest.raises(InvalidRow) as caught:
        normalize_row(row)
    assert caught.value.reason == reason


def test_fixture_round_trips_and_is_valid():
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    pairs, report = normalize(rows, return_report=True)
    assert report.format == "hh-rlhf" and report.rows_out == len(rows)
    for row, pair in zip(rows, pairs, strict=False):
        assert is_valid_pair(pair)
        assert to_text(pair["prompt"], pair["chosen"]) == row["chosen"]
        assert to_text(pair["prompt"], pair["rejected"]) == row["rejected"]


_pieces = [
    "a",
    "b",
    " ",
    ":",
    "\n",
    "Human:",
    "Assistant:",
    "\n\nHuman: ",
    "\n\nAssistant: ",
    "\n\nAssistant:",
]
_speech = st.lists(st.sampled_from(_pieces), max_size=8).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_speech, _speech), min_size=1, max_size=4), _speech, _speech)
def test_every_accepted_row_round_trips(turns, chosen_answer, rejected_answer):
    """Arbitrary dialogues (markers inside contents included): accepted rows rebuild their text exactly."""
    prompt = "".join(f"\n\nHuman: {human}\n\nAssistant: {bot}" for human, bot in turns[:-1])
    prompt += f"\n\nHuman: {turns[-1][0]}\n\nAssistant: "
    row = {"chosen": prompt + chosen_answer, "rejected": prompt + rejected_answer}
    try:
        pair = normalize_row(row)
    except InvalidRow:
        return
    assert is_valid_pair(pair)
    assert to_text(pair["prompt"], pair["chosen"]) == row["chosen"]
    assert to_text(pair["prompt"], pair["rejected"]) == row["rejected"]

"""Every registered format on literal rows written from the schemas in DATASETS.md (offline)."""

import json
from pathlib import Path

import pytest
from helpers import is_valid_pair

from smol_align.data import formats, normalize
from smol_align.data.formats import FORMATS
from smol_align.data.messages import DroppedRow, InvalidRow
from smol_align.data.normalize import normalize_row
from smol_align.errors import DatasetFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def run(name, row, **options):
    return normalize_row(name, row, FORMATS[name].check_options(name, options))


def test_every_format_has_a_fixture_file_and_it_normalizes_cleanly():
    names = [name for name in formats() if FORMATS[name].detect]
    assert sorted(p.stem for p in FIXTURES.glob("*.jsonl")) == sorted(names)
    for name in names:
        rows = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
        pairs, report = normalize(rows, return_report=True)
        assert report.format == name, name
        assert not report.invalid, (name, report.invalid)
        assert len(pairs) == report.rows_out > 0
        assert all(is_valid_pair(pair) for pair in pairs), name


# ---------------------------------------------------------------------------------------------
# UltraFeedback family
# ---------------------------------------------------------------------------------------------


def test_trl_ultrafeedback_implicit_prompt_and_scores():
    row = {
        "chosen": [u("Q"), a("good")],
        "rejected": [u("Q"), a("bad")],
        "score_chosen": 8.5,
        "score_rejected": None,
    }
    assert run("trl-ultrafeedback", row) == {
        "prompt": [u("Q")],
        "chosen": [a("good")],
        "rejected": [a("bad")],
        "score_chosen": 8.5,
        "score_rejected": None,
    }


def test_h4_ultrafeedback_uses_the_messages_not_the_prompt_text():
    row = {
        "prompt": "Q",
        "prompt_id": "p1",
        "chosen": [u("Q"), a("good")],
        "rejected": [u("Q"), a("bad")],
        "messages": [u("Q"), a("good")],
        "score_chosen": 9,
        "score_rejected": 3,
    }
    pair = run("h4-ultrafeedback", row)
    assert pair["prompt"] == [u("Q")] and pair["prompt_id"] == "p1"
    assert pair["score_chosen"] == 9.0 and isinstance(pair["score_chosen"], float)


def _completion(model, response, ratings, overall=None):
    aspects = ("helpfulness", "honesty", "instruction_following", "truthfulness")
    return {
        "model": model,
        "response": response,
        "annotations": {k: {"Rating": r, "Rationale": "."} for k, r in zip(aspects, ratings, strict=False)},
        "overall_score": overall,
    }


RAW = {
    "source": "evol",
    "instruction": "Name a prime.",
    "completions": [
        _completion("m1", "7", ["5", "5", "5", "5"], 9.0),
        _completion("m2", "9", ["1", "1", "N/A", "1"], 2.0),
        _completion("m3", "2", ["4", "4", "4", "4"], 8.0),
        _completion("m4", "11", ["N/A", "N/A", "N/A", "N/A"], 7.0),
    ],
}


def test_raw_ultrafeedback_best_vs_worst_skips_na_ratings():
    pair = run("ultrafeedback-raw", RAW, strategy="best-vs-worst", rating="mean", seed=0)
    assert pair["prompt"] == [u("Name a prime.")]
    assert pair["chosen"] == [a("7")] and pair["rejected"] == [a("9")]
    assert (pair["score_chosen"], pair["score_rejected"]) == (5.0, 1.0)
    assert (pair["model_chosen"], pair["model_rejected"], pair["source"]) == ("m1", "m2", "evol")


def test_raw_ultrafeedback_best_vs_random_is_seeded_and_never_a_tie():
    picks = {
        run("ultrafeedback-raw", RAW, strategy="best-vs-random", seed=seed)["rejected"][0]["content"]
        for seed in range(20)
    }
    assert picks <= {"9", "2"} and len(picks) == 2  # never the best, never the unrated one
    again = run("ultrafeedback-raw", RAW, strategy="best-vs-random", seed=3)
    assert again == run("ultrafeedback-raw", RAW, strategy="best-vs-random", seed=3)


def test_raw_ultrafeedback_other_ratings():
    pair = run("ultrafeedback-raw", RAW, strategy="best-vs-worst", rating="overall_score", seed=0)
    assert (pair["chosen"], pair["rejected"]) == ([a("7")], [a("9")])
    pair = run("ultrafeedback-raw", RAW, strategy="best-vs-worst", rating="instruction_following", seed=0)
    assert pair["rejected"] == [a("2")]  # m2's instruction_following is N/A


def test_raw_ultrafeedback_ties_and_unrated_rows_are_dropped_not_invalid():
    tie = {**RAW, "completions": [_completion("m1", "a", ["3"] * 4), _completion("m2", "b", ["3"] * 4)]}
    with pytest.raises(DroppedRow, match="tie"):
        run("ultrafeedback-raw", tie, strategy="best-vs-worst", rating="mean", seed=0)
    lonely = {**RAW, "completions": [_completion("m1", "a", ["3"] * 4), _completion("m2", "b", ["N/A"] * 4)]}
    with pytest.raises(DroppedRow, match="fewer than two"):
        run("ultrafeedback-raw", lonely, strategy="best-vs-worst", rating="mean", seed=0)
    with pytest.raises(InvalidRow, match="response is not text"):
        run(
            "ultrafeedback-raw",
            {**RAW, "completions": [{"response": None}]},
            strategy="best-vs-worst",
            rating="mean",
            seed=0,
        )


def test_raw_ultrafeedback_options_are_checked():
    from smol_align.errors import ConfigError

    with pytest.raises(ConfigError, match="strategy"):
        normalize([RAW], format="ultrafeedback-raw", strategy="best-vs-everything")
    with pytest.raises(ConfigError, match="no option 'strategy'"):
        normalize(
            [{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}],
            strategy="x",
        )


# ---------------------------------------------------------------------------------------------
# Argilla collection
# ---------------------------------------------------------------------------------------------


def test_argilla_ultrafeedback_instruction_and_responses():
    row = {
        "source": "flan",
        "instruction": "Q",
        "chosen_response": "good",
        "chosen_avg_rating": 4.5,
        "chosen_model": "gpt-4",
        "rejected_response": "bad",
        "rejected_avg_rating": 4.5,
        "rejected_model": "llama",
    }
    assert run("argilla-ultrafeedback", row) == {
        "prompt": [u("Q")],
        "chosen": [a("good")],
        "rejected": [a("bad")],
        "source": "flan",
        "score_chosen": 4.5,
        "score_rejected": 4.5,
        "model_chosen": "gpt-4",
        "model_rejected": "llama",
    }


def test_argilla_cleaned_hyphenated_columns_and_none_rating():
    row = {
        "source": "s",
        "prompt": "Q",
        "chosen": [u("Q"), a("good")],
        "chosen-rating": None,
        "chosen-model": "m1",
        "rejected": [u("Q"), a("bad")],
        "rejected-rating": "3",
        "rejected-model": "m2",
    }
    pair = run("argilla-ultrafeedback-cleaned", row)
    assert pair["score_chosen"] is None and pair["score_rejected"] == 3.0
    assert pair["model_chosen"] == "m1"


def test_capybara_multi_turn_shared_prefix_is_the_prompt():
    dialogue = [u("Hi"), a("Hello!"), u("Joke?")]
    row = {
        "source": "GOAT",
        "chosen": [*dialogue, a("Knock knock.")],
        "rejected": [*dialogue, a("No.")],
        "chosen_rating": 5,
        "rejected_rating": 2,
        "chosen_model": "a",
        "rejected_model": "b",
    }
    pair = run("argilla-capybara", row)
    assert pair["prompt"] == dialogue
    assert pair["chosen"] == [a("Knock knock.")] and pair["score_rejected"] == 2.0


def test_capybara_dialogues_that_differ_before_the_last_turn_are_invalid():
    row = {
        "source": "s",
        "chosen": [u("Hi"), a("Hello!"), u("Joke?"), a("Knock knock.")],
        "rejected": [u("Hi"), a("Go away."), u("Joke?"), a("No.")],
        "chosen_rating": 5,
        "rejected_rating": 2,
    }
    with pytest.raises(InvalidRow, match="differ before the last turn"):
        run("argilla-capybara", row)


def test_argilla_math_and_openhermes():
    pair = run(
        "argilla-math",
        {
            "instruction": "x+1=2",
            "chosen_response": "1",
            "chosen_rating": 9,
            "rejected_response": "2",
            "rejected_rating": None,
        },
    )
    assert pair["prompt"] == [u("x+1=2")] and pair["score_rejected"] is None
    pair = run(
        "argilla-openhermes",
        {
            "source": "s",
            "category": None,
            "prompt": "Hi",
            "chosen_policy": "mistral",
            "rejected_policy": "llama",
            "chosen": [s("Be kind."), u("Hi"), a("Hello")],
            "rejected": [s("Be kind."), u("Hi"), a("Bye")],
        },
    )
    assert pair["prompt"] == [s("Be kind."), u("Hi")]
    assert (pair["model_chosen"], pair["model_rejected"], pair["category"]) == ("mistral", "llama", None)


def test_argilla_orca_keeps_status_and_scores():
    row = {
        "system": "",
        "input": "Capital of Italy?",
        "chosen": "Rome",
        "rejected": "Milan",
        "rating": [7.0, 8.0],
        "status": "swapped",
        "chosen_score": 8.0,
        "in_gsm8k_train": "False",
    }
    pair = run("argilla-orca", row)
    assert pair["prompt"] == [u("Capital of Italy?")]  # empty system: no system message
    assert (pair["score_chosen"], pair["score_rejected"]) == (8.0, 7.0)
    assert (pair["status"], pair["in_gsm8k_train"]) == ("swapped", False)


def test_intel_orca_system_prompt():
    pair = run(
        "intel-orca", {"system": "You are helpful.", "question": "2+2?", "chosen": "4", "rejected": "5"}
    )
    assert pair == {"prompt": [s("You are helpful."), u("2+2?")], "chosen": [a("4")], "rejected": [a("5")]}


def test_dpo_mix_and_orpo_mix():
    pair = run(
        "argilla-dpo-mix",
        {
            "dataset": "capybara",
            "chosen": [u("Q"), a("x")],
            "rejected": [u("Q"), a("y")],
            "chosen_rating": 5,
            "rejected_rating": 1,
        },
    )
    assert pair["source"] == "capybara" and pair["score_chosen"] == 5.0
    assert "model_chosen" not in pair  # only the extras whose columns the data has
    # orpo-dpo-mix columns are unverified: a completion-only chosen with the prompt in `question` works too
    pair = run("orpo-dpo-mix", {"source": "s", "question": "Q", "chosen": [a("x")], "rejected": [a("y")]})
    assert pair["prompt"] == [u("Q")]


# ---------------------------------------------------------------------------------------------
# ShareGPT, TRL, generic
# ---------------------------------------------------------------------------------------------


def test_sharegpt_roles_human_gpt_and_system():
    row = {
        "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}],
        "chosen": {"from": "gpt", "value": "Hello"},
        "rejected": {"from": "gpt", "value": "Bye"},
    }
    assert run("sharegpt", row) == {
        "prompt": [s("Be brief."), u("Hi")],
        "chosen": [a("Hello")],
        "rejected": [a("Bye")],
    }


def test_sharegpt_prompt_ending_with_gpt_is_invalid():
    row = {
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
        "chosen": {"from": "gpt", "value": "x"},
        "rejected": {"from": "gpt", "value": "y"},
    }
    with pytest.raises(InvalidRow, match="role order: prompt ends with an assistant turn"):
        run("sharegpt", row)


def test_trl_formats():
    assert (
        run(
            "trl-conversational",
            {"prompt": [u("Q")], "chosen": [a("x")], "rejected": [a("y")], "score_chosen": 1},
        )["score_chosen"]
        == 1.0
    )
    assert run("trl-conversational-implicit", {"chosen": [u("Q"), a("x")], "rejected": [u("Q"), a("y")]})[
        "prompt"
    ] == [u("Q")]
    assert run("trl-standard", {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}) == {
        "prompt": [u("The sky is")],
        "chosen": [a(" blue.")],
        "rejected": [a(" green.")],
    }
    # the implicit prompt is cut at a word boundary, not mid-word ("The sky is bl" + "ue.")
    assert run("trl-standard-implicit", {"chosen": "The sky is blue.", "rejected": "The sky is black."}) == {
        "prompt": [u("The sky is")],
        "chosen": [a("blue.")],
        "rejected": [a("black.")],
    }
    with pytest.raises(InvalidRow, match="identical texts"):
        run("trl-standard-implicit", {"chosen": "same", "rejected": "same"})


def test_identical_implicit_dialogues_are_a_valid_identical_pair():
    pair = run("trl-conversational-implicit", {"chosen": [u("Q"), a("x")], "rejected": [u("Q"), a("x")]})
    assert pair["chosen"] == pair["rejected"] == [a("x")]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"prompt": [u("Q"), a("hi")], "chosen": [a("x")], "rejected": [a("y")]},
            "role order: prompt ends with an assistant turn",
        ),
        (
            {"prompt": [u("Q"), s("late")], "chosen": [a("x")], "rejected": [a("y")]},
            "role order: system message after the first turn",
        ),
        (
            {"prompt": [u("Q"), u("Q2")], "chosen": [a("x")], "rejected": [a("y")]},
            "role order: two user turns in a row",
        ),
        (
            {"prompt": [u("Q")], "chosen": [a("x"), a("more")], "rejected": [a("y")]},
            "chosen: expected one assistant message",
        ),
        (
            {"prompt": [u("Q")], "chosen": [u("x")], "rejected": [a("y")]},
            "chosen: expected one assistant message",  # the prompt is given: no implicit prompt is looked for
        ),
        ({"prompt": [u("Q")], "chosen": [], "rejected": [a("y")]}, "chosen: empty list of messages"),
        (
            {"prompt": [u("Q")], "chosen": [{"role": "tool", "content": "x"}], "rejected": [a("y")]},
            "chosen: tool use",  # refused (ToolUse), not set aside as an unknown role
        ),
        (
            {"prompt": [u("Q")], "chosen": [{"role": "assistant", "content": None}], "rejected": [a("y")]},
            "chosen: message content is not text",
        ),
        (
            {"prompt": [u("Q")], "chosen": [{"speaker": "gpt"}], "rejected": [a("y")]},
            "chosen: malformed message",
        ),
        ({"prompt": None, "chosen": [a("x")], "rejected": [a("y")]}, "prompt: missing value"),
        ({"prompt": [u("Q")], "chosen": 3, "rejected": [a("y")]}, "chosen: expected text or messages"),
    ],
)
def test_trl_conversational_traps(row, reason):
    with pytest.raises(InvalidRow) as caught:
        run("trl-conversational", row)
    assert caught.value.reason == reason


def test_roles_are_mapped_and_json_string_messages_are_read():
    row = {
        "prompt": json.dumps([{"role": "human", "content": "Q"}]),
        "chosen": json.dumps([{"role": "gpt", "content": "x"}]),
        "rejected": json.dumps([{"role": "bot", "content": "y"}]),
    }
    assert run("trl-conversational", row) == {"prompt": [u("Q")], "chosen": [a("x")], "rejected": [a("y")]}


def test_text_that_happens_to_be_json_stays_text():
    pair = run("trl-standard", {"prompt": "Give JSON", "chosen": '{"answer": 42}', "rejected": "[1, 2]"})
    assert pair["chosen"] == [a('{"answer": 42}')] and pair["rejected"] == [a("[1, 2]")]


def test_generic_columns_mapping():
    rows = [
        {"question": "Q", "good": "x", "bad": "y", "sys": "Be brief.", "stars": "4"},
        {"question": "Q2", "good": "x2", "bad": "y2", "sys": "", "stars": None},
    ]
    mapping = {
        "prompt": "question",
        "chosen": "good",
        "rejected": "bad",
        "system": "sys",
        "score_chosen": "stars",
    }
    pairs = normalize(rows, columns=mapping)
    assert pairs[0] == {
        "prompt": [s("Be brief."), u("Q")],
        "chosen": [a("x")],
        "rejected": [a("y")],
        "score_chosen": 4.0,
    }
    assert pairs[1]["prompt"] == [u("Q2")] and pairs[1]["score_chosen"] is None


def test_columns_renames_then_a_format_fits_and_errors_name_the_column():
    from smol_align.errors import ConfigError, DatasetFormatError

    rows = [{"q": "Q", "good": "x", "bad": "y"}]
    with pytest.raises(DatasetFormatError, match="no known preference format fits its columns") as caught:
        normalize(rows, columns={"prompt": "q", "chosen": "good"})  # 'bad' is still there, no format has it
    assert "'bad'" in str(caught.value)
    with pytest.raises(ConfigError, match="'good' twice"):
        normalize(rows, columns={"answer": "good", "chosen": "good", "rejected": "bad"})
    with pytest.raises(DatasetFormatError, match="no such column") as caught:
        normalize(rows, columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert caught.value.column == "question"
    with pytest.raises(DatasetFormatError, match="already has"):
        normalize(
            [{"prompt": "Q", "question": "Q2", "chosen": "x", "rejected": "y"}],
            columns={"prompt": "question"},
        )
    # a rename can serve any format, not only TRL's names
    alpaca = normalize(
        [{"task": "Add", "input": "1+1", "good": "2", "bad": "3"}],
        columns={"instruction": "task", "chosen": "good", "rejected": "bad"},
        format="alpaca",
    )
    assert alpaca[0]["prompt"] == [u("Add\n1+1")]


# ---------------------------------------------------------------------------------------------
# LLaMA-Factory, axolotl; text columns nothing reads; extras of the schema only
# ---------------------------------------------------------------------------------------------


def test_alpaca_is_not_argilla_orca_and_keeps_the_instruction():
    row = {"instruction": "Translate to French.", "input": "cat", "chosen": "chat", "rejected": "dog"}
    pairs, report = normalize([row, {**row, "input": ""}], return_report=True)
    assert report.format == "alpaca" and pairs.column_names == ["prompt", "chosen", "rejected"]
    assert pairs[0]["prompt"] == [u("Translate to French.\ncat")] and pairs[1]["prompt"] == [
        u("Translate to French.")
    ]
    history = run("alpaca", {**row, "system": "Be brief.", "history": [["Hi", "Hello"]]})
    assert history["prompt"] == [s("Be brief."), u("Hi"), a("Hello"), u("Translate to French.\ncat")]
    with pytest.raises(InvalidRow, match="history"):
        run("alpaca", {**row, "history": "not turns"})


def test_llama_factory_sharegpt_and_axolotl_types_by_their_names():
    sharegpt = {
        "conversations": [{"from": "human", "value": "Q"}],
        "chosen": {"from": "gpt", "value": "x"},
        "rejected": {"from": "gpt", "value": "y"},
    }
    assert run("sharegpt", sharegpt) == {"prompt": [u("Q")], "chosen": [a("x")], "rejected": [a("y")]}
    messages = {"messages": [u("Q")], "chosen": a("x"), "rejected": a("y")}
    assert run("chat_template.default", messages)["prompt"] == [u("Q")]
    intel = {"system": "S", "question": "Q", "chosen": "x", "rejected": "y"}
    for name in ("chatml.intel", "llama3.intel"):
        assert normalize([intel], format=name)[0]["prompt"] == [s("S"), u("Q")]
    ultra = {"prompt": "Q", "chosen": [u("Q"), a("x")], "rejected": [u("Q"), a("y")]}
    assert normalize([ultra], format="chatml.ultra")[0] == {
        "prompt": [u("Q")],
        "chosen": [a("x")],
        "rejected": [a("y")],
    }
    argilla = {"instruction": "Q", "chosen_response": "x", "rejected_response": "y"}
    assert normalize([argilla], format="chatml.argilla")[0]["prompt"] == [u("Q")]
    icr = {"system": "", "input": "Q", "chosen": "x", "rejected": "y"}
    assert normalize([icr], format="chatml.icr")[0]["prompt"] == [u("Q")]
    pairs = {"prompt": "Q", "chosen": "x", "rejected": "y"}
    assert normalize([pairs], format="chatml.prompt_pairs")[0]["chosen"] == [a("x")]
    assert normalize(
        [{"chosen": [u("Q"), a("x")], "rejected": [u("Q"), a("y")]}], format="chatml.argilla_chat"
    )[0]["prompt"] == [u("Q")]


def test_a_format_is_picked_only_with_all_its_signature_columns():
    from smol_align.data.formats import detect

    orca_like = {"system": "", "input": "Q", "chosen": "x", "rejected": "y"}  # no status/chosen_score
    assert detect(list(orca_like), [orca_like]) == "trl-standard-implicit"  # not argilla-orca...
    with pytest.raises(DatasetFormatError, match=r"column 'system' holds text .* \(nor \['input'\]\)"):
        normalize([orca_like])  # ... and then its prompt is not dropped in silence
    assert detect([*orca_like, "instruction"], [{**orca_like, "instruction": "I"}]) == "alpaca"


def test_a_text_column_nothing_reads_is_an_error_or_with_lenient_a_warning(caplog):
    row = {"prompt": "Q", "chosen": "x", "rejected": "y", "notes": "keep me", "stars": 3}
    with pytest.raises(DatasetFormatError, match="column 'notes' holds text") as caught:
        normalize([row])
    assert caught.value.column == "notes"  # the number column 'stars' is no text: not an error
    pairs, report = normalize([row], lenient=True, return_report=True)
    assert report.unused_columns == ["notes"] and "columns left out: notes" in report.summary_line()
    assert "notes" in caplog.text and pairs.column_names == ["prompt", "chosen", "rejected"]


def test_extras_are_only_those_of_the_schema():
    alpaca = normalize([{"instruction": "I", "input": "", "chosen": "x", "rejected": "y"}])
    assert alpaca.column_names == ["prompt", "chosen", "rejected"]  # no None score_chosen, status, ...
    orca = normalize([{"input": "Q", "chosen": "x", "rejected": "y", "status": "tie", "chosen_score": 9}])
    assert orca.column_names == ["prompt", "chosen", "rejected", "score_chosen", "status"]


# ---------------------------------------------------------------------------------------------
# Nothing lost in silence (issue 28): axolotl's history, extra columns, score strings
# ---------------------------------------------------------------------------------------------


def test_axolotl_chat_template_keeps_the_system_prompt_and_history_of_messages():
    history = [s("Be a pirate."), u("Hi"), a("Arr."), u("Where to?")]
    for chosen, rejected in [
        ([u("Where to?"), a("Tortuga")], [u("Where to?"), a("Home")]),  # answers repeating the last user turn
        ([a("Tortuga")], [a("Home")]),  # lists of the answer alone
        (a("Tortuga"), "Home"),  # a message, a text
    ]:
        row = {"messages": history, "chosen": chosen, "rejected": rejected}
        assert run("chat_template.default", row) == {
            "prompt": history,
            "chosen": [a("Tortuga")],
            "rejected": [a("Home")],
        }
    sharegpt = {
        "conversations": [{"from": "system", "value": "Be a pirate."}, {"from": "human", "value": "Hi"}],
        "chosen": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Arr"}],
        "rejected": "Bye",
    }
    assert run("sharegpt", sharegpt)["prompt"] == [s("Be a pirate."), u("Hi")]


def test_axolotl_answers_with_turns_the_prompt_does_not_end_with_do_not_fit():
    row = {
        "messages": [s("Be a pirate."), u("Hi")],
        "chosen": [u("Something else"), a("x")],
        "rejected": [a("y")],
    }
    with pytest.raises(InvalidRow) as caught:
        run("chat_template.default", row)
    assert caught.value.reason == "chosen: turns before the answer that the prompt does not end with"
    assert caught.value.column == "chosen"


def test_stable_columns_are_kept_whatever_the_format_and_others_are_named(caplog):
    row = {"question": "Q", "chosen": "x", "rejected": "y", "score_chosen": 9, "score_rejected": "7.5"}
    rows = [{**row, "id": 1, "reviewed": True}]
    pairs, report = normalize(rows, format="intel-orca", return_report=True)
    assert pairs.column_names == ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"]
    assert (pairs[0]["score_chosen"], pairs[0]["score_rejected"]) == (9.0, 7.5)
    assert report.dropped_columns == ["id", "reviewed"]
    assert "columns left out: id, reviewed" in report.summary_line()
    assert "does not read the column(s) ['id', 'reviewed']: left out" in caplog.text
    from smol_align.data import doctor

    found = doctor(rows, format="intel-orca")
    assert found.dropped_columns == ["id", "reviewed"]
    assert "columns left out: id, reviewed" in found.summary_line()
    assert "other columns left out" in str(found) and any("['id', 'reviewed']" in tip for tip in found.advice)


@pytest.mark.parametrize("value", ["high", "7/10", "inf", [1, 2], True])
def test_a_score_that_is_no_number_is_a_named_row_error_not_a_missing_score(value):
    rows = [{"prompt": "Q", "chosen": "x", "rejected": "y", "score_chosen": 1.0}] * 2
    rows = [rows[0], {**rows[1], "score_chosen": value}]
    pairs, report = normalize(rows, return_report=True)
    assert len(pairs) == 1 and report.invalid_rows == [1]
    assert dict(report.invalid) == {"score_chosen: not a number": 1}
    with pytest.raises(DatasetFormatError, match=r"row 1, column 'score_chosen': score_chosen: not a number"):
        normalize(rows, strict=True)
    for missing in (None, "", " N/A ", float("nan")):  # no score: kept as None
        assert normalize([{**rows[0], "score_chosen": missing}])[0]["score_chosen"] is None
    orca = {"input": "Q", "chosen": "x", "rejected": "y", "status": "tie", "chosen_score": "high"}
    with pytest.raises(InvalidRow, match="chosen_score: not a number"):
        run("argilla-orca", orca)


def test_text_and_flag_extras_that_cannot_be_read_are_named():
    row = {"prompt": "Q", "chosen": "x", "rejected": "y"}
    with pytest.raises(DatasetFormatError, match=r"column 'source': source: expected text \(got list\)"):
        normalize([{**row, "source": ["a", "b"]}], format="trl-standard", strict=True, lenient=True)
    with pytest.raises(
        DatasetFormatError, match="column 'in_gsm8k_train': in_gsm8k_train: expected true or false"
    ):
        normalize([{**row, "in_gsm8k_train": "maybe"}], strict=True)
    kept = normalize([{**row, "in_gsm8k_train": "True", "source": 3}])[0]
    assert kept == {**normalize([row])[0], "in_gsm8k_train": True, "source": "3"}

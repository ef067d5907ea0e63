"""Detection by columns and first rows, known hub ids, forcing a format, and the unknown-schema error."""

import json
from pathlib import Path

import pytest

from smol_align.data import detect_format, formats, normalize
from smol_align.data.formats import FORMATS, detect, guess_columns, hub_format
from smol_align.errors import ConfigError, DatasetFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def fixture_rows(name):
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", [n for n in formats() if FORMATS[n].detect])
def test_each_fixture_is_detected_as_its_format(name):
    assert detect_format(fixture_rows(name)) == name


def test_detection_on_a_dataset_and_a_file():
    from datasets import Dataset

    assert detect_format(Dataset.from_list(fixture_rows("argilla-orca"))) == "argilla-orca"
    assert detect_format(FIXTURES / "sharegpt.jsonl") == "sharegpt"


def test_json_string_messages_are_detected_as_messages():
    rows = [{k: json.dumps(v) for k, v in row.items()} for row in fixture_rows("trl-conversational")]
    assert detect_format(rows) == "trl-conversational"
    rows = [{k: json.dumps(v) for k, v in row.items()} for row in fixture_rows("trl-conversational-implicit")]
    assert detect_format(rows) == "trl-conversational-implicit"


def test_first_rows_decide_between_same_columns():
    hh = [{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}]
    plain = [{"chosen": "The sky is blue.", "rejected": "The sky is red."}]
    assert detect(["chosen", "rejected"], hh) == "hh-rlhf"
    assert detect(["chosen", "rejected"], plain) == "trl-standard-implicit"


def test_scores_make_trl_ultrafeedback_and_without_them_plain_trl():
    rows = fixture_rows("trl-ultrafeedback")
    assert detect_format(rows) == "trl-ultrafeedback"
    bare = [{"chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    assert detect_format(bare) == "trl-conversational-implicit"


def test_known_hub_ids_pick_format_and_splits_without_loading(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("must not load"))
    assert detect_format("Anthropic/hh-rlhf") == "hh-rlhf"
    assert hub_format("anthropic/HH-RLHF/harmless-base") == hub_format("Anthropic/hh-rlhf/harmless-base")
    assert hub_format("Anthropic/hh-rlhf/harmless-base") == (
        "Anthropic/hh-rlhf",
        "harmless-base",
        "hh-rlhf",
        "train",
        "test",
        False,
    )
    assert hub_format("HuggingFaceH4/ultrafeedback_binarized")[2:5] == (
        "h4-ultrafeedback",
        "train_prefs",
        "test_prefs",
    )
    assert hub_format("trl-lib/ultrafeedback_binarized")[2:5] == ("trl-ultrafeedback", "train", "test")
    assert hub_format("argilla/OpenHermesPreferences")[5]
    expected = {
        "argilla/ultrafeedback-binarized-preferences": "argilla-ultrafeedback",
        "argilla/ultrafeedback-binarized-preferences-cleaned": "argilla-ultrafeedback-cleaned",
        "argilla/distilabel-intel-orca-dpo-pairs": "argilla-orca",
        "Intel/orca_dpo_pairs": "intel-orca",
        "argilla/dpo-mix-7k": "argilla-dpo-mix",
        "argilla/Capybara-Preferences": "argilla-capybara",
        "argilla/distilabel-capybara-dpo-7k-binarized": "argilla-capybara-dpo",
        "argilla/distilabel-math-preference-dpo": "argilla-math",
        "mlabonne/orpo-dpo-mix-40k": "orpo-dpo-mix",
        "openbmb/UltraFeedback": "ultrafeedback-raw",
    }
    assert {hub_id: hub_format(hub_id)[2] for hub_id in expected} == expected
    assert hub_format("someone/something") == ("someone/something", None, None, None, None, False)


def test_known_hub_id_loads_its_preference_splits_with_its_format(monkeypatch):
    import datasets

    calls = []
    rows = fixture_rows("h4-ultrafeedback")

    def fake_load(repo, **kwargs):
        calls.append((repo, kwargs))
        splits = ("train_prefs", "test_prefs", "train_sft")
        return datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s in splits})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    pairs, reports = normalize("HuggingFaceH4/ultrafeedback_binarized", return_report=True)
    assert calls == [
        ("HuggingFaceH4/ultrafeedback_binarized", {"data_dir": None, "split": None, "streaming": False})
    ]
    assert list(pairs) == ["train_prefs", "test_prefs"]  # its preference splits, not the sft one
    assert reports["train_prefs"].format == "h4-ultrafeedback"
    assert reports["test_prefs"].dataset == "HuggingFaceH4/ultrafeedback_binarized[test_prefs]"


def test_source_forces_a_format():
    rows = fixture_rows("trl-standard-implicit")
    assert normalize(rows, format="trl-standard-implicit")[0]["prompt"] == [
        {"role": "user", "content": "The sky is"}
    ]
    with pytest.raises(ConfigError, match="Did you mean 'hh-rlhf'"):
        normalize(rows, format="hh-rlfh")
    with pytest.raises(DatasetFormatError, match="needs the column"):
        normalize(rows, format="intel-orca")


def test_unknown_schema_lists_columns_closest_formats_and_columns_hint():
    rows = [{"question": "Q", "good_answer": "x", "bad_answer": "y"}]
    with pytest.raises(DatasetFormatError) as caught:
        normalize(rows)
    message = str(caught.value)
    assert "['bad_answer', 'good_answer', 'question']" in message
    assert "Closest known formats:" in message and "intel-orca" in message
    assert "columns={'prompt': 'question', 'chosen': 'good_answer', 'rejected': 'bad_answer'}" in message
    assert guess_columns(["foo"]) == {
        "prompt": "<your prompt column>",
        "chosen": "<your chosen column>",
        "rejected": "<your rejected column>",
    }
    # ... and the suggested columns= works as it is
    assert normalize(rows, columns=guess_columns(list(rows[0])))[0]["prompt"] == [
        {"role": "user", "content": "Q"}
    ]

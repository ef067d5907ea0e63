"""normalize(): every kind of input, the report of set-aside rows, strict errors, the hub error."""

import json
import logging
from pathlib import Path

import pytest
from helpers import is_valid_pair

from smol_align.data import last_report, normalize
from smol_align.errors import DatasetFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "data"

GOOD = {
    "prompt": [{"role": "user", "content": "Q"}],
    "chosen": [{"role": "assistant", "content": "x"}],
    "rejected": [{"role": "assistant", "content": "y"}],
}
ENDS_WITH_ASSISTANT = {**GOOD, "prompt": GOOD["prompt"] + [{"role": "assistant", "content": "hm"}]}
NO_CONTENT = {**GOOD, "chosen": [{"role": "assistant", "content": None}]}


def mixed_rows():
    """Rows 1 and 3 do not fit: one role-order problem, one missing content."""
    return [GOOD, ENDS_WITH_ASSISTANT, GOOD, NO_CONTENT, GOOD]


def check_report(report):
    assert (report.rows_in, report.rows_out) == (5, 3)
    assert dict(report.invalid) == {
        "role order: prompt ends with an assistant turn": 1,
        "chosen: message content is not text": 1,
    }
    assert report.invalid_rows == [1, 3]
    assert [(e.row, e.column) for e in report.examples] == [(1, "prompt"), (3, "chosen")]


def test_list_in_dataset_out_with_report():
    from datasets import Dataset

    pairs, report = normalize(mixed_rows(), return_report=True)
    assert isinstance(pairs, Dataset) and len(pairs) == 3
    check_report(report)
    assert last_report() is report
    assert "2 invalid set aside" in report.summary_line() and "row 1, column 'prompt'" in str(report)
    json.dumps(report.to_dict())


def test_dataset_path_goes_through_map_and_counts_the_same(caplog):
    from datasets import Dataset

    dataset = Dataset.from_list(mixed_rows())
    with caplog.at_level(logging.WARNING, logger="smol_align.data.normalize"):
        pairs, report = normalize(dataset, return_report=True, batch_size=2)
    check_report(report)
    assert [p["chosen"] for p in pairs] == [GOOD["chosen"]] * 3
    assert (
        "set aside 2 of 5 rows" in caplog.text
        and "role order: prompt ends with an assistant turn: 1" in caplog.text
    )
    assert dataset.select(report.invalid_rows)[0]["prompt"][-1]["role"] == "assistant"  # set aside, not lost


def test_shuffled_dataset_with_indices_mapping():
    from datasets import Dataset

    dataset = Dataset.from_list(mixed_rows()).select([4, 3, 2, 1, 0])
    pairs, report = normalize(dataset, return_report=True)
    assert len(pairs) == 3 and report.invalid_rows == [1, 3]


def test_iterable_dataset_is_lazy_and_counts_while_read():
    from datasets import Dataset, IterableDataset

    stream = Dataset.from_list(mixed_rows()).to_iterable_dataset()
    pairs, report = normalize(stream, return_report=True, batch_size=2)
    assert isinstance(pairs, IterableDataset)
    assert report.rows_in == 0  # nothing read yet
    rows = list(pairs)
    assert len(rows) == 3 and all(is_valid_pair(r) for r in rows)
    check_report(report)


def test_dataset_dict_in_dataset_dict_out():
    from datasets import Dataset, DatasetDict

    data = DatasetDict({"train": Dataset.from_list(mixed_rows()), "test": Dataset.from_list([GOOD])})
    pairs, reports = normalize(data, return_report=True)
    assert isinstance(pairs, DatasetDict) and {k: len(v) for k, v in pairs.items()} == {"train": 3, "test": 1}
    check_report(reports["train"])
    assert normalize(data, split="test").num_rows == 1
    with pytest.raises(DatasetFormatError, match="no split 'dev'"):
        normalize(data, split="dev")


@pytest.mark.parametrize("strict_input", ["list", "dataset", "iterable"])
def test_strict_raises_on_the_first_bad_row_with_where_and_what(strict_input):
    from datasets import Dataset

    data = {
        "list": mixed_rows(),
        "dataset": Dataset.from_list(mixed_rows()),
        "iterable": Dataset.from_list(mixed_rows()).to_iterable_dataset(),
    }[strict_input]
    with pytest.raises(DatasetFormatError) as caught:
        result = normalize(data, strict=True)
        list(result)  # an IterableDataset raises while it is read
    error = caught.value
    assert (error.row, error.column) == (1, "prompt")
    assert error.dataset
    assert "row 1, column 'prompt'" in str(error)
    assert "prompt ends with an assistant turn" in str(error)
    assert "Expected (trl-conversational): `prompt`: messages ending with a user turn" in str(error)


def test_strict_does_not_raise_on_rows_dropped_on_purpose():
    tie = {
        "instruction": "Say yes.",
        "completions": [{"response": "yes", "overall_score": 5}, {"response": "Yes.", "overall_score": 5}],
    }
    good = {
        **tie,
        "completions": [{"response": "yes", "overall_score": 9}, {"response": "no", "overall_score": 1}],
    }
    pairs, report = normalize(
        [tie, good], format="ultrafeedback-raw", rating="overall_score", strict=True, return_report=True
    )
    assert len(pairs) == 1 and sum(report.dropped.values()) == 1 and not report.invalid


def test_all_rows_invalid_is_an_error_not_an_empty_dataset():
    with pytest.raises(DatasetFormatError, match="none of its 2 rows fit") as caught:
        normalize([ENDS_WITH_ASSISTANT, NO_CONTENT])
    assert caught.value.row == 0


def test_non_dict_rows_are_invalid_rows():
    pairs, report = normalize([GOOD, "oops", GOOD], return_report=True)
    assert len(pairs) == 2 and dict(report.invalid) == {"row: expected a dict of columns": 1}
    with pytest.raises(DatasetFormatError, match="list of dicts"):
        normalize(["a", "b"])
    with pytest.raises(DatasetFormatError, match="no rows"):
        normalize([])


def test_metadata_columns_have_stable_types_even_when_empty():
    rows = [
        {
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "x"}],
            "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "y"}],
            "score_chosen": None,
            "score_rejected": None,
        }
    ]
    pairs = normalize(rows, format="trl-ultrafeedback")
    assert pairs.features["score_chosen"].dtype == "float64"
    assert pairs.column_names == ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"]


def test_normalizing_normalized_data_is_a_no_op():
    rows = [json.loads(line) for line in (FIXTURES / "argilla-ultrafeedback.jsonl").read_text().splitlines()]
    once = normalize(rows)
    twice = normalize(once)
    assert once.to_list() == twice.to_list()


def test_local_files_jsonl_json_parquet_csv_and_saved_folder(tmp_path):
    from datasets import Dataset

    rows = mixed_rows()
    pairs = normalize(FIXTURES / "intel-orca.jsonl")
    assert len(pairs) == 2 and pairs[1]["prompt"][0]["role"] == "system"

    (tmp_path / "data.json").write_text(json.dumps(rows))
    assert normalize(str(tmp_path / "data.json")).num_rows == 3
    Dataset.from_list(rows).to_parquet(str(tmp_path / "data.parquet"))
    assert normalize(str(tmp_path / "data.parquet")).num_rows == 3
    # a CSV round trip leaves the messages as JSON strings
    Dataset.from_list([{k: json.dumps(v) for k, v in row.items()} for row in rows]).to_csv(
        str(tmp_path / "data.csv")
    )
    pairs, report = normalize(str(tmp_path / "data.csv"), return_report=True)
    assert report.format == "trl-conversational" and pairs.num_rows == 3 and report.invalid_rows == [1, 3]
    # ... and empty texts as missing cells (Intel's empty `system`), booleans as text
    orca = [json.loads(line) for line in (FIXTURES / "argilla-orca.jsonl").read_text().splitlines()]
    flat = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in orca]
    Dataset.from_list(flat).to_csv(str(tmp_path / "orca.csv"))
    pairs = normalize(str(tmp_path / "orca.csv"))
    assert pairs.num_rows == 4 and pairs[1]["prompt"] == [{"role": "user", "content": "Capital of Italy?"}]
    assert pairs[1]["in_gsm8k_train"] is True and pairs[1]["score_rejected"] == 7.0
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    assert normalize(str(tmp_path / "saved")).num_rows == 3

    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DatasetFormatError, match="one split"):
        normalize(FIXTURES / "intel-orca.jsonl", split="test")
    with pytest.raises(DatasetFormatError, match="file type"):
        normalize(str(tmp_path / "data.txt"))
    with pytest.raises(DatasetFormatError, match="no such file"):
        normalize(str(tmp_path / "missing.jsonl"))
    with pytest.raises(DatasetFormatError, match="no such file"):
        normalize("data/missing.jsonl")  # a relative path, not a hub id
    with pytest.raises(DatasetFormatError, match="neither a local file nor a hub id"):
        normalize("not a dataset")
    with pytest.raises(DatasetFormatError, match="cannot read a int"):
        normalize(3)


def test_hub_out_of_reach_is_a_clear_error():
    # conftest sets HF_DATASETS_OFFLINE=1: datasets refuses to reach the hub
    with pytest.raises(DatasetFormatError) as caught:
        normalize("smol-align-tests/no-such-dataset")
    message = str(caught.value)
    assert "could not load 'smol-align-tests/no-such-dataset' from the Hugging Face Hub" in message
    assert "out of reach" in message and "local file" in message
    assert caught.value.dataset == "smol-align-tests/no-such-dataset"


def test_num_proc():
    from datasets import Dataset

    pairs, report = normalize(
        Dataset.from_list(mixed_rows() * 20), num_proc=2, batch_size=7, return_report=True
    )
    assert len(pairs) == 60 and sum(report.invalid.values()) == 40
    assert report.invalid_rows[:4] == [1, 3, 6, 8]
    with pytest.raises(DatasetFormatError) as caught:  # raised in a worker, attributes intact
        normalize(Dataset.from_list(mixed_rows() * 20), num_proc=2, batch_size=7, strict=True)
    assert caught.value.column == "prompt" and caught.value.row in {
        1,
        51,
    }  # the first bad row of either shard

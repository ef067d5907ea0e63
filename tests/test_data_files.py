"""Files that cannot become pairs say what and where; the real HH-RLHF sample normalizes with the doctor's report."""

import gzip
import json
from pathlib import Path

import pytest
from helpers import is_valid_pair

from smol_align.data import doctor, load, normalize
from smol_align.errors import DatasetFormatError

HH = Path(__file__).parents[1].parent / "shared" / "data" / "hh_rlhf_harmless_base_test_0-1499.jsonl.gz"


def test_empty_file(tmp_path):
    for name in ("empty.jsonl", "empty.csv", "empty.parquet"):
        (tmp_path / name).write_text("")
        with pytest.raises(DatasetFormatError, match=f"{name}: the file is empty") as caught:
            normalize(str(tmp_path / name))
        assert caught.value.dataset.endswith(name)
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(DatasetFormatError, match="blank.jsonl: the file has no rows"):
        normalize(str(tmp_path / "blank.jsonl"))


def test_broken_json_line_names_the_file_the_line_and_the_json_error(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps({"prompt": "Q", "chosen": "x", "rejected": "y"})
    path.write_text(f"{good}\n{good}\n{{\"prompt\": \"Q\", \"chosen\": \n{good}\n")
    with pytest.raises(DatasetFormatError) as caught:
        normalize(str(path))
    message = str(caught.value)
    assert f"{path}, line 3: not valid JSON (Expecting value: line 1 column" in message
    assert caught.value.row == 2


def test_csv_with_only_a_header(tmp_path):
    (tmp_path / "pairs.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(DatasetFormatError, match="pairs.csv: the file has only a header"):
        normalize(str(tmp_path / "pairs.csv"))
    (tmp_path / "pairs.tsv").write_text("prompt\tchosen\trejected\nQ\tx\ty\n")
    assert normalize(str(tmp_path / "pairs.tsv"))[0]["chosen"] == [{"role": "assistant", "content": "x"}]


def test_a_column_of_the_wrong_type_says_which_column_and_row(tmp_path):
    rows = [{"prompt": "Q", "chosen": 1, "rejected": "y"}, {"prompt": "Q", "chosen": 2, "rejected": "y"}]
    with pytest.raises(DatasetFormatError, match="none of its 2 rows fit format 'trl-standard'") as caught:
        normalize(rows, format="trl-standard")
    assert (caught.value.row, caught.value.column) == (0, "chosen") and "chosen: expected text or messages (got int)" in str(caught.value)
    # rows of mixed types in one file (arrow cannot make one table of them) are read row by row
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "chosen": "x", "rejected": "y"}) + "\n"
                    + json.dumps({"prompt": "Q", "chosen": ["x"], "rejected": "y"}) + "\n")  # fmt: skip
    pairs, report = normalize(str(path), return_report=True)
    assert len(pairs) == 1 and report.invalid_rows == [1]


@pytest.mark.skipif(not HH.exists(), reason="the shared HH-RLHF sample is not there")
def test_real_hh_rlhf_sample_normalizes_with_the_doctors_report():
    """Lines 0-1199 train, 1200-1499 held out (see shared/data/README.md); a few rows are malformed."""
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 1500
    pairs = load(rows[:1200], eval_dataset=rows[1200:])
    report = pairs.reports["train"]
    assert pairs.format == "hh-rlhf" and report.rows_in == 1200 and len(pairs.eval) <= 300
    assert report.rows_out == len(pairs.train) == 1200 - sum(report.invalid.values())  # every row counted
    assert len(pairs.train) > 1150 and all(is_valid_pair(p) for p in pairs.train.select(range(50)))
    found = doctor(pairs)
    assert found.rows == len(pairs.train) and found.set_aside == dict(report.invalid)
    assert found.identical_pairs >= 0 and found.lengths["prompt"].max > 0
    assert "doctor: " in found.summary_line() and "hh-rlhf" in str(found)
    assert normalize(str(HH), return_report=True)[1].rows_in == 1500  # the .gz file itself reads too

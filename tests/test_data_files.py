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
    path.write_text(f'{good}\n{good}\n{{"prompt": "Q", "chosen": \n{good}\n')
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
    assert (caught.value.row, caught.value.column) == (
        0,
        "chosen",
    ) and "chosen: expected text or messages (got int)" in str(caught.value)
    # rows of mixed types in one file (arrow cannot make one table of them) are read row by row
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps({"prompt": "Q", "chosen": "x", "rejected": "y"})
        + "\n"
        + json.dumps({"prompt": "Q", "chosen": ["x"], "rejected": "y"})
        + "\n"
    )
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


@pytest.mark.parametrize(
    ("name", "streaming"),
    [
        ("pairs.jsonl", False),
        ("pairs.json", False),
        ("pairs.csv", False),
        ("pairs.tsv", True),
        ("pairs.jsonl.gz", True),
        ("pairs.jsonl", True),
    ],
)
def test_bytes_that_are_not_utf8_name_the_file_the_line_and_the_fix(tmp_path, name, streaming):
    rows = [{"prompt": f"Q{i}", "chosen": "x", "rejected": "y"} for i in range(5)]
    if name.endswith(".csv") or name.endswith(".tsv"):
        sep = "\t" if name.endswith(".tsv") else ","
        text = sep.join(rows[0]) + "\n" + "".join(sep.join(r.values()) + "\n" for r in rows)
        line, column = 5, 2  # the header is line 1
    elif name == "pairs.json":
        text, line, column = json.dumps(rows, indent=1), 18, 15
    else:
        text, line, column = "".join(json.dumps(r) + "\n" for r in rows), 4, 14
    data = text.encode().replace(b"Q3", "Q\xe9".encode("cp1252") + b"3")  # a Latin-1 é
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DatasetFormatError) as caught:
        load(str(path), streaming=streaming)
    message = str(caught.value)
    assert message.startswith(f"{path}: not UTF-8 text: line {line}, column {column} (byte offset ")
    assert "holds the byte(s) e9" in message and "Re-save it as UTF-8" in message and "\n" not in message
    assert caught.value.dataset == str(path)


def test_the_utf8_check_reads_in_chunks_and_a_character_cut_between_two_is_fine(tmp_path, monkeypatch):
    from smol_align.data import sources

    monkeypatch.setattr(sources, "_CHUNK", 4)
    path = tmp_path / "pairs.jsonl"
    path.write_bytes("ab\né🏴‍☠️x\n".encode() * 3)
    assert sources.first_non_utf8(str(path)) is None
    path.write_bytes("ab\né🏴‍☠️x\n".encode() * 3 + b"ok\nab\xff")
    size = len("ab\né🏴‍☠️x\n".encode()) * 3
    assert sources.first_non_utf8(str(path)) == (8, 3, size + 5, b"\xff")
    path.write_bytes("ab\né".encode()[:-1])  # a file that ends inside a character
    assert sources.first_non_utf8(str(path)) == (2, 1, 3, b"\xc3")

"""Fuzz: generated rows and files through normalize and `smol-align doctor`.

Every row becomes a valid pair or is counted with its reason (rows in == pairs out + set aside +
dropped), or the call raises a smol_align error that names the dataset and the row or column:
never a raw traceback, never a row lost or changed in silence. Seeded, so a failure reproduces.
"""

import contextlib
import io
import json
import random
from pathlib import Path

from helpers import is_valid_pair

from smol_align import cli
from smol_align.data import formats, normalize
from smol_align.data.formats import FORMATS
from smol_align.data.normalize import normalize_row
from smol_align.errors import SmolAlignError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
ROWS = [json.loads(line) for name in formats() if FORMATS[name].detect
        for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]  # fmt: skip
ODD = [None, 0, 7.5, True, "", " ", "N/A", "日本語 🏴‍☠️ \u202e\u0000", "x" * 100_000, [], {}, [1, 2],
       [{"role": "user"}], [{"role": "gpt", "content": "hi"}], '[{"role": 1}]', {"from": "human", "value": "Q"},
       "\n\nHuman: hi\n\nAssistant: ", "\n\nAssistant:"]  # fmt: skip


def mutate(rng: random.Random, row: dict) -> dict:
    row = json.loads(json.dumps(row))
    for _ in range(rng.randint(0, 3)):
        what = rng.random()
        keys = list(row)
        if what < 0.3 and keys:
            row[rng.choice(keys)] = rng.choice(ODD)  # a wrong type, an odd value
        elif what < 0.45 and keys:
            del row[rng.choice(keys)]  # a missing column
        elif what < 0.6:
            row[rng.choice(["notes", "extra", "score_chosen"])] = rng.choice(ODD)  # an extra column
        elif what < 0.8 and keys:
            key = rng.choice(keys)
            if isinstance(row[key], str):
                row[key] = row[key] + rng.choice(["ü", "\u200b", "💥", "\r\n", "\\"])  # unicode
    return row


def batch(rng: random.Random) -> list:
    base = rng.choice(ROWS)
    same = [mutate(rng, base) if rng.random() < 0.4 else json.loads(json.dumps(base)) for _ in range(rng.randint(1, 20))]
    if rng.random() < 0.2:  # mixed schemas in one list
        same += [mutate(rng, rng.choice(ROWS)) for _ in range(rng.randint(1, 3))]
    return same


def check_contract(rows: list, **options) -> str:
    try:
        pairs, report = normalize(rows, lenient=True, return_report=True, **options)
    except SmolAlignError as err:
        assert str(err) and (getattr(err, "dataset", None) or "columns=" in str(err) or "format" in str(err)), err
        return "error"
    set_aside = sum(report.invalid.values()) + sum(report.dropped.values())
    assert report.rows_in == len(rows) == len(pairs) + set_aside
    assert len(report.invalid_rows) == sum(report.invalid.values())
    assert all(is_valid_pair(pair) for pair in pairs)
    kept = [i for i in range(len(rows)) if i not in set(report.invalid_rows)]
    if not report.dropped:  # each pair is exactly what the row function makes of its row alone
        fmt = FORMATS[report.format]
        alone = [normalize_row(report.format, rows[i], fmt.check_options(report.format, {}), tuple(pairs.column_names[3:]))
                 for i in kept]  # fmt: skip
        assert pairs.to_list() == alone
    return "pairs"


def test_normalize_on_generated_rows():
    rng = random.Random(0)
    seen, outcomes = 0, []
    while seen < 1500:
        rows = batch(rng)
        outcomes.append(check_contract(rows))
        seen += len(rows)
    assert outcomes.count("pairs") >= 20 and outcomes.count("error") >= 1  # both outcomes exercised


def test_cli_doctor_on_generated_files(tmp_path):
    rng = random.Random(1)
    lines_total, codes = 0, []
    for i in range(30):
        rows = batch(rng) + batch(rng) + batch(rng)
        lines = [json.dumps(r, ensure_ascii=rng.random() < 0.5) for r in rows]
        kind = rng.random()
        if kind < 0.15:  # a broken line
            at = rng.randrange(len(lines))
            lines[at] = lines[at][: len(lines[at]) // 2]
        elif kind < 0.2:
            lines = []  # empty
        path = tmp_path / f"f{i}.jsonl"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["doctor", str(path), "--lenient", "--json"])
        if code == 0:
            report = json.loads(out.getvalue())
            assert report["rows"] + sum(report["set_aside"].values()) + sum(report["dropped"].values()) == len(lines)
        else:
            message = err.getvalue().rpartition("smol-align doctor: error: ")[2]  # after datasets' progress bars
            assert code == 2 and message and str(path) in message and "Traceback" not in err.getvalue()
            if kind < 0.15:
                assert "line " in message and "not valid JSON" in message
        lines_total += len(lines)
        codes.append(code)
    assert lines_total >= 1000 and codes.count(0) >= 10 and codes.count(2) >= 3  # both outcomes exercised

"""Fuzz: generated rows and files through normalize, load and `smol-align doctor`.

Every row becomes a valid pair or is counted with its reason (rows in == pairs out + set aside +
dropped), or the call raises a smol_align error that names the dataset and the row or column:
never a raw traceback, never a row lost or changed in silence. Conversational rows (TRL's message
lists with random roles, orders, null contents, tool calls; explicit and implicit prompts) are
mixed with every format's rows, also as files and as Datasets shaped like normalized pairs. Seeded,
so a failure reproduces.
"""

import contextlib
import io
import json
import random
from pathlib import Path

from helpers import is_valid_pair

from smol_align import cli
from smol_align.data import formats, load, normalize, sources
from smol_align.data.formats import FORMATS
from smol_align.data.messages import RowSetAside
from smol_align.data.normalize import normalize_row
from smol_align.errors import DatasetFormatError, SmolAlignError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
ROWS = [
    json.loads(line)
    for name in formats()
    if FORMATS[name].detect
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()
]
ODD = [
    None,
    0,
    7.5,
    True,
    "",
    " ",
    "N/A",
    "日本語 🏴‍☠️ \u202e\u0000",
    "x" * 100_000,
    [],
    {},
    [1, 2],
    [{"role": "user"}],
    [{"role": "gpt", "content": "hi"}],
    '[{"role": 1}]',
    {"from": "human", "value": "Q"},
    "\n\nHuman: hi\n\nAssistant: ",
    "\n\nAssistant:",
]


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
    same = [
        mutate(rng, base) if rng.random() < 0.4 else json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 20))
    ]
    if rng.random() < 0.2:  # mixed schemas in one list
        same += [mutate(rng, rng.choice(ROWS)) for _ in range(rng.randint(1, 3))]
    return same


ROLES = ["user", "assistant", "system", "human", "gpt", "model", "wizard", ""]
TEXTS = ["Q", "Why?", "Arr, matey.", "", " ", "日本語 🏴‍☠️", "\n\nHuman: hi", '[{"role": "user"}]']
CALL = [{"type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}]


def turn(rng: random.Random, role: str, shaped: bool) -> dict:
    """One message, now and then with a fault: no text, another role; unless ``shaped`` (cells of the
    types of normalized pairs), a role that is no text or a missing key."""
    message = {"role": role, "content": rng.choice(TEXTS)}
    fault = rng.random()
    if fault < 0.02:
        message["content"] = None
    elif fault < 0.04:
        message["role"] = rng.choice(ROLES)
    elif fault < 0.05 and not shaped:
        message["role"] = rng.choice([None, 3])
    elif fault < 0.06 and not shaped:
        del message[rng.choice(["role", "content"])]
    return message


def conversational(rng: random.Random, shaped: bool = False) -> dict:
    """A TRL conversational row (explicit or implicit prompt), well formed but for a few faults; ``shaped``:
    explicit prompt, no extras, cells of the types normalized pairs have (a Dataset of them ``is_pairs``)."""
    prompt = [turn(rng, "system", shaped)] if rng.random() < 0.3 else []
    for _ in range(rng.randint(0, 2)):
        prompt += [turn(rng, "user", shaped), turn(rng, "assistant", shaped)]
    prompt.append(turn(rng, "user", shaped))
    if rng.random() < 0.08:
        rng.shuffle(prompt)  # turns out of order
    if rng.random() < 0.05:
        prompt.append(turn(rng, "assistant", shaped))  # a prompt that ends with the answer
    chosen, rejected = [turn(rng, "assistant", shaped)], [turn(rng, "assistant", shaped)]
    if rng.random() < 0.05:
        chosen.append(turn(rng, "user", shaped))  # an answer that ends with a user turn
    tool = rng.random()
    if tool < 0.01:  # a tool call, or a tool's turn
        rng.choice(prompt + chosen)["tool_calls"] = CALL
    elif tool < 0.02:
        tool_turn = {"role": rng.choice(["tool", "function"]), "content": "42"}
        prompt.insert(rng.randrange(len(prompt) + 1), tool_turn)
    shape = 0 if shaped else rng.random()
    if shape < 0.6:
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    elif shape < 0.9:  # implicit prompt: whole dialogues
        row = {"chosen": prompt + chosen, "rejected": prompt + rejected}
    else:  # TRL's standard shape beside the messages
        row = {"prompt": "Q", "chosen": chosen, "rejected": rng.choice(["y", rejected])}
    if rng.random() < 0.25 and not shaped:  # extras: kept, named, or a row that does not fit
        row["score_chosen"] = rng.choice([1.0, 7, "8.5", "", "N/A", "high", None, True])
        row["id"] = rng.randint(0, 10**6)
    return row


def conversational_batch(rng: random.Random, shaped: bool = False) -> list:
    rows = [conversational(rng, shaped) for _ in range(rng.randint(1, 20))]
    if rng.random() < 0.3 and not shaped:  # mixed with every other shape
        rows += [mutate(rng, rng.choice(ROWS)) for _ in range(rng.randint(1, 3))]
        rng.shuffle(rows)
    return rows


def uses_tools(value) -> bool:
    """A tool call or a tool's turn anywhere in ``value`` (a row, a cell, a message)."""
    if isinstance(value, dict):
        if value.get("tool_calls") or value.get("role") in ("tool", "function"):
            return True
        return any(map(uses_tools, value.values()))
    return isinstance(value, list) and any(map(uses_tools, value))


def check_error(err: SmolAlignError, rows) -> None:
    """A smol_align error names the dataset and, for a row's fault, the row: one that really does not fit."""
    assert str(err) and (getattr(err, "dataset", None) or "columns=" in str(err) or "format" in str(err)), err
    if getattr(err, "row", None) is not None and isinstance(err, DatasetFormatError) and "format" in str(err):
        name = next(name for name in FORMATS if f"({name})" in str(err) or f"format {name!r}" in str(err))
        row = rows[err.row]
        try:
            normalize_row(name, dict(row), FORMATS[name].check_options(name, {}))
        except RowSetAside as fault:
            assert fault.column == err.column, (fault, err)
        else:
            raise AssertionError(f"{err} names row {err.row}, which fits {name!r}: {row}")


def check_contract(rows: list, **options) -> str:
    try:
        pairs, report = normalize(rows, lenient=True, return_report=True, **options)
    except SmolAlignError as err:
        check_error(err, rows)
        return "error"
    set_aside = sum(report.invalid.values()) + sum(report.dropped.values())
    assert report.rows_in == len(rows) == len(pairs) + set_aside
    assert len(report.invalid_rows) == sum(report.invalid.values())
    assert all(is_valid_pair(pair) for pair in pairs)
    kept = [i for i in range(len(rows)) if i not in set(report.invalid_rows)]
    assert not any(uses_tools(rows[i]) for i in kept)  # a tool call never reaches a pair without it
    if not report.dropped:  # each pair is exactly what the row function makes of its row alone
        fmt = FORMATS[report.format]
        alone = [
            normalize_row(
                report.format, rows[i], fmt.check_options(report.format, {}), tuple(pairs.column_names[3:])
            )
            for i in kept
        ]
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


def test_normalize_on_generated_conversational_rows():
    rng = random.Random(3)
    seen, outcomes, reasons = 0, [], set()
    while seen < 1500:
        rows = conversational_batch(rng)
        outcomes.append(check_contract(rows))
        if outcomes[-1] == "pairs":
            reasons.update(normalize(rows, lenient=True, return_report=True)[1].invalid)
        seen += len(rows)
    assert outcomes.count("pairs") >= 20 and outcomes.count("error") >= 5  # both outcomes exercised
    assert any(r.startswith("role order") for r in reasons) and "score_chosen: not a number" in reasons


def check_load(data, rows: list) -> str:
    """``load`` (the path every command takes) on a file or Dataset of ``rows``: the same contract."""
    try:
        pairs = load(data, eval_split=0, lenient=True)
    except SmolAlignError as err:
        as_read = sources.read(data).data
        check_error(err, as_read if isinstance(as_read, list) else as_read.to_list())
        return "error"
    report = pairs.reports["train"]
    reported = sum(report.invalid.values()) + sum(report.dropped.values())
    assert report.rows_in == len(rows) == len(pairs.train) + reported
    assert all(is_valid_pair(pair) for pair in pairs.train)
    return "pairs"


def test_load_on_generated_conversational_files_and_datasets(tmp_path):
    """Files of mixed rows, and rows shaped like normalized pairs as a file and as a Dataset (which once
    skipped every row check)."""
    from datasets import Dataset

    from smol_align.data.normalize import is_pairs

    rng = random.Random(4)
    seen, outcomes, shaped_like_pairs = 0, [], 0
    for i in range(40):
        for shaped in (False, True):
            rows = conversational_batch(rng, shaped) + conversational_batch(rng, shaped)
            path = tmp_path / f"c{i}{'-shaped' * shaped}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            outcomes.append(check_load(str(path), rows))
            if shaped:
                dataset = Dataset.from_list(rows)
                shaped_like_pairs += is_pairs(dataset)
                outcomes.append(check_load(dataset, rows))
            seen += len(rows)
    assert seen >= 1000 and outcomes.count("pairs") >= 40 and outcomes.count("error") >= 5
    assert shaped_like_pairs >= 20


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
            assert report["rows"] + sum(report["set_aside"].values()) + sum(
                report["dropped"].values()
            ) == len(lines)
        else:
            message = err.getvalue().rpartition("smol-align doctor: error: ")[
                2
            ]  # after datasets' progress bars
            assert code == 2 and message and str(path) in message and "Traceback" not in err.getvalue()
            if kind < 0.15:
                assert "line " in message and "not valid JSON" in message
        lines_total += len(lines)
        codes.append(code)
    assert lines_total >= 1000 and codes.count(0) >= 10 and codes.count(2) >= 3  # both outcomes exercised

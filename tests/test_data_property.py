"""Property: whatever rows come in, normalize returns valid TRL pairs or raises DatasetFormatError."""

import copy
import json
from pathlib import Path

import pytest
from helpers import is_valid_pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smol_align.data import formats, normalize
from smol_align.data.formats import FORMATS
from smol_align.errors import DatasetFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
NAMES = [name for name in formats() if FORMATS[name].detect]
FIXTURE_ROWS = {
    name: [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    for name in NAMES
}
COLUMN_SETS = [list(dict.fromkeys((*FORMATS[n].signature, *FORMATS[n].reads))) for n in NAMES]
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "\n\nHuman: hi\n\nAssistant: ",
            "\n\nHuman: hi\n\nAssistant: yo",
            "\n\nAssistant:",
            "N/A",
            "8",
            "[",
            "{}",
        ]
    ),
)
roles = st.sampled_from(["user", "assistant", "system", "human", "gpt", "bot", "tool", "", "USER"])
messages = st.fixed_dictionaries(
    {},
    optional={
        "role": st.one_of(roles, st.none(), st.integers()),
        "content": st.one_of(texts, st.none(), st.integers()),
        "from": roles,
        "value": texts,
    },
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), texts)
cells = st.recursive(
    st.one_of(scalars, messages, st.lists(messages, max_size=4)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["response", "annotations", "Rating", "overall_score", "model"]),
            children,
            max_size=3,
        ),
    ),
    max_leaves=4,
)
cells = st.one_of(cells, cells.map(json.dumps))  # after a CSV round trip


@st.composite
def arbitrary_rows(draw):
    """Columns of some known format (a few of them, plus strangers), cells of any shape."""
    known = draw(st.sampled_from(COLUMN_SETS))
    columns = draw(st.lists(st.sampled_from(known), unique=True, min_size=1)) + draw(
        st.lists(st.text(max_size=5), max_size=2)
    )
    return draw(st.lists(st.fixed_dictionaries({c: cells for c in columns}), min_size=1, max_size=4))


def _mutate(draw, value):
    """A nearby cell: a message with another role or content, a list cut short, JSON text, or junk."""
    action = draw(st.sampled_from(["keep", "keep", "keep", "json", "junk", "none", "shrink", "message"]))
    if action == "json":
        return json.dumps(value)
    if action == "junk":
        return draw(cells)
    if action == "none":
        return None
    if action == "shrink" and isinstance(value, (list, str)):
        return value[: draw(st.integers(0, max(0, len(value) - 1)))]
    if action == "message" and isinstance(value, list) and value and isinstance(value[0], dict):
        value = copy.deepcopy(value)
        value[draw(st.integers(0, len(value) - 1))] = draw(messages)
    return value


@st.composite
def mutated_fixture_rows(draw):
    """Real-looking rows of one format (from the fixtures), some cells nudged or broken."""
    name = draw(st.sampled_from(NAMES))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        row = dict(draw(st.sampled_from(FIXTURE_ROWS[name])))
        for key in list(row):
            if draw(st.integers(0, 9)) == 0:
                del row[key]
            else:
                row[key] = _mutate(draw, row[key])
        rows.append(row)
    return rows


def holds(data, **kwargs):
    try:
        result = normalize(data, **kwargs)
    except DatasetFormatError:
        return
    assert all(is_valid_pair(pair) for pair in result)


@settings(max_examples=80, **SETTINGS)
@given(arbitrary_rows(), st.sampled_from(["auto", *NAMES]))
def test_arbitrary_rows(data, source):
    holds(data, format=source)


@settings(max_examples=150, **SETTINGS)
@given(mutated_fixture_rows(), st.sampled_from(["auto", "auto", *NAMES]))
def test_nudged_real_rows(data, source):
    holds(data, format=source)


@settings(max_examples=40, **SETTINGS)
@given(st.one_of(arbitrary_rows(), mutated_fixture_rows()))
def test_same_contract_through_datasets_map(data):
    from datasets import Dataset

    try:
        dataset = Dataset.from_list(data)
    except Exception:  # noqa: BLE001  (arrow refuses mixed types before normalize is called)
        return
    holds(dataset)


@pytest.mark.parametrize("value", [None, 3, "x", [], {}, [1, 2], [{"role": "user"}], '[{"role": 1}]'])
def test_hostile_cells_in_every_column_of_every_format(value):
    for name in NAMES:
        holds([{column: value for column in FORMATS[name].signature}], format=name)

"""Filters: off by default, each one on literal rows, the Argilla Orca recipe, counts in the report."""

from pathlib import Path

import pytest

from smol_align.data import filters, normalize
from smol_align.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def pair(prompt="Q", chosen="x", rejected="y", **meta):
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        **meta,
    }


def test_predicates():
    assert filters.is_identical(pair(chosen="same", rejected="same"))
    assert filters.is_empty(pair(chosen="  \n")) and filters.is_empty(pair(rejected=""))
    assert filters.is_tie(pair(score_chosen=4.0, score_rejected=4.0)) and filters.is_tie(pair(status="tie"))
    assert not filters.is_tie(pair(score_chosen=None, score_rejected=4.0))
    assert filters.margin(pair(score_chosen=5.0, score_rejected=3.5)) == 1.5
    assert filters.argilla_orca_keeps(pair(status="unchanged", score_chosen=8.0, in_gsm8k_train=False))
    assert not filters.argilla_orca_keeps(pair(status="tie", score_chosen=9.0, in_gsm8k_train=False))
    assert not filters.argilla_orca_keeps(pair(status="unchanged", score_chosen=7.5, in_gsm8k_train=False))
    assert not filters.argilla_orca_keeps(pair(status="unchanged", score_chosen=9.0, in_gsm8k_train=True))
    assert not filters.argilla_orca_keeps(pair(status="unchanged", score_chosen=None, in_gsm8k_train=False))
    assert (
        filters.prompt_key(pair())
        == filters.prompt_key(pair(chosen="other"))
        != filters.prompt_key(pair(prompt="R"))
    )


def test_first_matching_filter_names_the_reason():
    active = filters.resolve("clean", min_margin=1.0)
    assert filters.drop_reason(pair(chosen="", rejected=""), active) == "empty completion"
    assert filters.drop_reason(pair(chosen="a", rejected="a"), active) == "identical pair"
    assert filters.drop_reason(pair(score_chosen=3.0, score_rejected=3.0), active) == "tie"
    assert filters.drop_reason(pair(score_chosen=3.5, score_rejected=3.0), active) == "low margin"
    assert filters.drop_reason(pair(score_chosen=None, score_rejected=3.0), active) is None  # no rating: kept


ROWS = [
    pair("Q1", "a", "b", score_chosen=5.0, score_rejected=1.0),
    pair("Q2", "same", "same", score_chosen=5.0, score_rejected=1.0),
    pair("Q3", "", "b", score_chosen=5.0, score_rejected=1.0),
    pair("Q4", "a", "b", score_chosen=3.0, score_rejected=3.0),
    pair("Q5", "a", "b", score_chosen=3.5, score_rejected=3.0),
    pair("Q1", "c", "d", score_chosen=5.0, score_rejected=1.0),
]


def test_everything_is_kept_unless_asked():
    pairs, report = normalize(ROWS, return_report=True)
    assert len(pairs) == 6 and not report.dropped


@pytest.mark.parametrize("stream", [False, True])
def test_filters_drop_and_count(stream):
    from datasets import Dataset

    data = Dataset.from_list(ROWS)
    data = data.to_iterable_dataset() if stream else data
    options = {
        "drop_identical": True,
        "drop_empty": True,
        "drop_ties": True,
        "min_margin": 1.0,
        "dedupe_prompts": True,
    }
    pairs, report = normalize(data, return_report=True, **options)
    kept = [p["prompt"][0]["content"] for p in pairs]
    assert kept == ["Q1"]
    assert dict(report.dropped) == {
        "identical pair": 1,
        "empty completion": 1,
        "tie": 1,
        "low margin": 1,
        "duplicate prompt": 1,
    }
    assert report.rows_out == 1


def test_argilla_orca_recipe_on_the_fixture():
    pairs, report = normalize(FIXTURES / "argilla-orca.jsonl", filters="argilla-orca", return_report=True)
    assert [p["prompt"][-1]["content"] for p in pairs] == ["What is 2+2?"]
    assert dict(report.dropped) == {"argilla-orca recipe": 3}  # in gsm8k train, a tie, a score of 7


def test_rating_filters_need_ratings_and_bad_filters_are_named():
    plain = [pair()]
    with pytest.raises(ConfigError, match="drop_ties needs the columns"):
        normalize(plain, drop_ties=True)
    with pytest.raises(ConfigError, match="argilla_orca needs"):
        normalize([pair(score_chosen=1.0, score_rejected=0.0)], filters="argilla-orca")
    with pytest.raises(ConfigError, match="unknown filters='tidy'"):
        normalize(plain, filters="tidy")
    with pytest.raises(ConfigError, match="min_margin must be a number"):
        normalize(plain, min_margin="big")

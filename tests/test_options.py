"""Options as types (issue 29 item 1): the keywords of train_dpo & co. and the flags of `smol-align dpo` build the
same RunOptions, DataOptions, ModelOptions and TRL config keywords; an unknown or misplaced one is an error naming
the closest option."""

from __future__ import annotations

import dataclasses

import pytest

from smol_align.api import options_for
from smol_align.cli import option_objects
from smol_align.data import DATA_OPTIONS
from smol_align.errors import ConfigError
from smol_align.options import DataOptions, ModelOptions, RunOptions, split_options
from smol_align.presets import EXTRA_KEYS

# The same settings, as a command line and as Python keywords
SAME = [
    (
        "dpo",
        "--max-steps 3 --eval-split 0.2 --beta 0.2 --overwrite",
        {"max_steps": 3, "eval_split": 0.2, "beta": 0.2, "overwrite": True},
    ),
    (
        "orpo",
        "--dataset pairs.jsonl --columns prompt=q,chosen=good,rejected=bad --strict --drop-identical "
        "--eval-split test --learning_rate 1e-5 --max-time 2 --resume --quiet --no_evaluate",
        {
            "dataset": "pairs.jsonl",
            "columns": {"prompt": "q", "chosen": "good", "rejected": "bad"},
            "strict": True,
            "drop_identical": True,
            "eval_split": "test",
            "learning_rate": 1e-5,
            "max_time": 2.0,
            "resume": True,
            "quiet": True,
            "evaluate": False,
        },
    ),
    (
        "kto",
        "--dataset pairs.jsonl --preset lora --lora_r 8 --min-margin 1.5 --max-eval-pairs 16 --tokenizer tok "
        "--desirable_weight 2.0 --split_seed 3",
        {
            "dataset": "pairs.jsonl",
            "preset": "lora",
            "lora_r": 8,
            "min_margin": 1.5,
            "max_eval_pairs": 16,
            "tokenizer": "tok",
            "desirable_weight": 2.0,
            "split_seed": 3,
        },
    ),
]


@pytest.mark.parametrize("method, argv, keywords", SAME)
def test_the_cli_and_python_build_the_same_options(method, argv, keywords):
    """`smol-align dpo --max-steps 3 --eval-split 0.2 --beta 0.2 --overwrite` and
    `train_dpo(max_steps=3, eval_split=0.2, beta=0.2, overwrite=True)` run with equal option objects."""
    keywords = dict(keywords)
    dataset, preset = keywords.pop("dataset", None), keywords.pop("preset", "auto")
    from_cli = option_objects(method, argv.split())
    from_python = options_for(method, dataset, preset, **keywords)
    assert from_cli.run == from_python.run
    assert from_cli.data == from_python.data
    assert from_cli.model == from_python.model
    assert from_cli.config == from_python.config
    # and each setting landed where it belongs (not both dropped alike)
    for key, value in keywords.items():
        place = next(
            (part for part in ("run", "data", "model") if key in {f.name for f in _fields(from_cli, part)}),
            None,
        )
        got = getattr(getattr(from_cli, place), key) if place else from_cli.config[key]
        assert got == value, key


def _fields(options, part):
    return dataclasses.fields(getattr(options, part))


def test_split_options_sorts_each_keyword_into_its_place():
    options = split_options(
        "dpo",
        {
            "max_steps": 3,
            "eval_split": 0.2,
            "overwrite": True,
            "ref_model": "ref",
            "lora_r": 4,
            "drop_ties": True,
        },
        "train_dpo",
    )
    assert options.run == RunOptions(overwrite=True)
    assert options.data == DataOptions(eval_split=0.2, drop_ties=True)
    assert options.data.keywords() == {"eval_split": 0.2, "drop_ties": True}  # load's defaults stay load's
    assert options.model == ModelOptions(ref_model="ref", lora_r=4)
    assert options.model.preset_keywords() == {"lora_r": 4}
    assert options.config == {"max_steps": 3}


@pytest.mark.parametrize(
    "keyword, where, closest",
    [
        ("batch_size", "train_dpo", "per_device_train_batch_size"),  # not datasets.map's batch size
        ("learnig_rate", "train_dpo", "learning_rate"),
        ("max_eval_pair", "train_dpo", "max_eval_pairs"),
        ("colums", "train_dpo", "columns"),
    ],
)
def test_an_unknown_keyword_names_the_closest_option(keyword, where, closest):
    with pytest.raises(
        ConfigError, match=f"Unknown option '{keyword}' for {where}. Did you mean '{closest}'"
    ):
        split_options("dpo", {keyword: 1}, where)


def test_a_misplaced_keyword_is_refused():
    """A runner option given to a builder, or compare's own given as a keyword, is refused by name."""
    from smol_align.options import RUN_NAMES

    with pytest.raises(
        ConfigError, match="Unknown option 'resume' for build_dpo_trainer: it is an option of train"
    ):
        split_options("dpo", {"resume": True}, "build_dpo_trainer", refuse=RUN_NAMES)
    with pytest.raises(ConfigError, match="Unknown option 'baseline' for compare"):
        split_options("dpo", {"baseline": object()}, "compare (DPO)", refuse=RUN_NAMES)
    with pytest.raises(ConfigError, match="Pass the tokenizer once"):
        split_options("dpo", {"tokenizer": "a", "processing_class": "b"}, "train_dpo")
    with pytest.raises(ConfigError, match="max_time is minutes of training and must be positive"):
        split_options("dpo", {"max_time": 0}, "train_dpo")


def test_every_option_has_help_and_the_data_options_are_loads():
    for cls in (RunOptions, DataOptions, ModelOptions):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
    assert {f.name for f in dataclasses.fields(DataOptions)} == DATA_OPTIONS  # load's, all of them
    assert EXTRA_KEYS <= {
        f.name for f in dataclasses.fields(ModelOptions)
    }  # every model setting presets read


def test_compare_from_the_cli_and_python_builds_the_same_options():
    """`smol-align compare --methods dpo,kto --beta 0.2 --eval-split 0.2 --max_steps 3 --overwrite --no-save` and
    `compare(methods="dpo,kto", beta=0.2, eval_split=0.2, max_steps=3, overwrite=True, save=False)`: compare's
    own parameters equal, and each method's options (split as compare splits them) equal."""
    import inspect

    from smol_align.cli import compare_options
    from smol_align.compare import COMPARES_OWN, compare

    argv = "--methods dpo,kto --beta 0.2 --eval-split 0.2 --max_steps 3 --overwrite --no-save --drop-ties".split()
    python = {"methods": "dpo,kto", "beta": 0.2, "eval_split": 0.2, "max_steps": 3, "overwrite": True}
    python |= {"save": False, "drop_ties": True}
    cli = compare_options(argv)
    own = set(inspect.signature(compare).parameters)
    assert {k: v for k, v in cli.items() if k in own} == {k: v for k, v in python.items() if k in own}
    for method in ("dpo", "kto"):
        typed = [
            split_options(
                method, {k: v for k, v in kw.items() if k not in own}, "compare", refuse=COMPARES_OWN
            )
            for kw in (cli, python)
        ]
        assert typed[0] == typed[1]
        assert (
            typed[0].data.eval_split == 0.2 and typed[0].data.drop_ties and typed[0].config == {"beta": 0.2}
        )

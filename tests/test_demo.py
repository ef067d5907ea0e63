"""The demo: one recipe for `smol-align dpo|orpo` and `train_dpo()`/`train_orpo()`; answer figures; the demo
apart from the core (its own package, the runner's neutral ``voice`` hook, the old names kept)."""

import ast
from pathlib import Path

import pytest
from datasets import DatasetDict

import smol_align
from smol_align import presets, train_dpo, train_orpo
from smol_align.demo import demo, demo_recipe, demo_rows, pirate_voice
from smol_align.evaluate import answer_figures
from smol_align.testing import tiny_preference_rows


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Arr, th' capital o' Peru be Lima, matey!", True),
        ("Ahoy, a spider has got eight legs, savvy?", True),
        ("Yo ho, the answer be four, ye landlubber!", True),
        ("The capital of Peru is Lima.", False),
        ("I hope this helps you with your studies.", False),
        ("Yes, the year has twelve months.", False),  # 'ye' only as a whole word
        ("", False),
    ],
)
def test_pirate_voice_on_literal_answers(text, expected):
    assert pirate_voice(text) is expected


def test_pirate_voice_separates_the_demo_pairs():
    rows = demo_rows()["test"]
    assert all(pirate_voice(r["chosen"][0]["content"]) for r in rows)
    assert not any(pirate_voice(r["rejected"][0]["content"]) for r in rows)


def test_answer_figures_by_hand():
    # "a b c d a b c d": 5 four-grams, of which (a b c d) once more -> 1 repeated of 5 = 0.2;
    # "x y z": no 4-gram -> 0. Mean 0.1; words (8 + 3) / 2 = 5.5; voice 1 of 2.
    figures = answer_figures(["a b c d a b c d", "Arr x y"], voice=pirate_voice)
    assert figures == pytest.approx({"repeated_4gram_rate": 0.1, "answer_words": 5.5, "voice_rate": 0.5})
    assert "voice_rate" not in answer_figures(["plain"])


@pytest.mark.parametrize("method, train", [("dpo", train_dpo), ("orpo", train_orpo)])
def test_no_data_runs_the_demo_recipe_and_reports_answer_figures(
    method, train, tiny_model, tiny_tokenizer, capsys
):
    recipe = demo_recipe(method)
    result = train(
        tiny_model,
        None,
        "cpu",
        tokenizer=tiny_tokenizer,
        save=False,
        answer_prompts=4,
        max_eval_pairs=8,
        per_device_train_batch_size=2,
    )
    assert result.trainer.args.max_steps == recipe["max_steps"]
    assert result.trainer.args.beta == recipe["beta"]
    rate = recipe.get(
        "learning_rate", presets.build(method, "cpu").args.learning_rate
    )  # the recipe's, else the mode's
    assert result.trainer.args.learning_rate == rate
    assert len(result.answers["start"]) == len(result.answers["trained"]) == 4
    for figures in (result.before, result.after):
        assert {"voice_rate", "repeated_4gram_rate", "answer_words"} <= set(figures)
    assert result.metrics["eval_voice_rate"] == result.after["voice_rate"]
    out = capsys.readouterr().out
    assert "pirate voice" in out and "repeated 4-grams" in out
    # Learning: 30 steps of the demo recipe on a tiny random model still move the held-out margin.
    assert result.after["reward_margin"] > 0


def test_a_step_count_replaces_the_recipe_budget_only(tiny_model, tiny_tokenizer):
    result = train_dpo(
        tiny_model,
        None,
        "cpu",
        tokenizer=tiny_tokenizer,
        save=False,
        evaluate=False,
        max_steps=2,
        per_device_train_batch_size=2,
    )
    # No held-out figures here (evaluate=False): this checks the recipe merge, not learning.
    assert result.trainer.args.max_steps == 2
    assert result.trainer.args.beta == demo_recipe("dpo")["beta"]


def test_each_mode_gets_its_own_demo_rate():
    """The demo recipe's rates are per mode, so --preset lora never trains at the full fine-tune rate."""
    for method in ("dpo", "orpo"):
        rates = {
            mode: presets.build(
                method, f"cpu+{mode}", **demo_recipe(method, f"cpu+{mode}")
            ).args.learning_rate
            for mode in ("full", "lora", "qlora-4bit")
        }
        lora = 2e-4 if method == "dpo" else 4e-4  # measured: see the recipes
        assert rates == {"full": 2e-5, "lora": lora, "qlora-4bit": 4e-4}, (method, rates)
    assert demo_recipe("dpo", "auto") == demo_recipe("dpo", "full")  # auto: the full mode
    # A recipe without a rate for a mode leaves that mode's own rate.
    assert (
        presets.build(
            "dpo", "lora", **{k: v for k, v in demo_recipe("dpo", "cpu").items() if k != "learning_rate"}
        ).args.learning_rate
        == 5e-5
    )


def test_your_loss_type_replaces_the_recipe_loss_and_its_weights(tiny_model, tiny_tokenizer):
    assert demo_recipe("dpo")["loss_type"] == ["sigmoid", "sft"]  # the demo's RPO
    result = train_dpo(
        tiny_model,
        None,
        "cpu",
        tokenizer=tiny_tokenizer,
        save=False,
        evaluate=False,
        max_steps=1,
        per_device_train_batch_size=2,
        loss_type="sigmoid",
    )
    # No held-out figures here (evaluate=False): this checks the recipe merge, not learning.
    assert result.trainer.args.loss_type == ["sigmoid"] and result.trainer.args.loss_weights is None


# The core: every module below the entry points (cli, api, compare, iterate) and the demo package itself.
CORE = (
    "run",
    "trainers",
    "evaluate",
    "estimate",
    "presets",
    "rundir",
    "report",
    "models",
    "reference",
    "_compat",
    "soft_dpo",
)


def _demo_imports(path: Path) -> set[str]:
    """The imports in ``path``, at the top or deferred, that name the demo (``.demo``, ``.data.demo``...)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found |= {f"{node.module or ''}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if "demo" in name.split(".")}


def test_the_core_never_names_the_demo():
    package = Path(smol_align.__file__).parent
    for module in CORE:
        named = _demo_imports(package / f"{module}.py")
        assert not named, f"smol_align/{module}.py imports the demo ({named}): pass it in from the demo side"


def test_voice_is_the_runners_neutral_hook_on_any_data(tiny_model, tiny_tokenizer):
    """Any data takes a voice check (its share of the greedy answers: voice_rate); without one, none."""
    options = {
        "tokenizer": tiny_tokenizer,
        "save": False,
        "quiet": True,
        "max_steps": 1,
        "answer_prompts": 2,
        "max_eval_pairs": 4,
        "per_device_train_batch_size": 2,
        "eval_split": 0.25,
    }
    rows = tiny_preference_rows(8)
    checked = train_dpo(tiny_model, rows, "cpu", voice=lambda answer: True, **options)
    assert checked.before["voice_rate"] == checked.after["voice_rate"] == 1.0
    assert "voice_rate" not in train_dpo(tiny_model, rows, "cpu", **options).after


def test_the_demo_pairs_passed_as_data_keep_their_voice_check(tiny_model, tiny_tokenizer):
    """``train_dpo(demo())`` (or its splits, as the notebooks pass them) is scored for the voice too."""
    data = demo()
    small = DatasetDict({"train": data["train"].select(range(8)), "test": data["test"].select(range(4))})
    result = train_dpo(
        tiny_model,
        small,
        "cpu",
        tokenizer=tiny_tokenizer,
        save=False,
        quiet=True,
        max_steps=1,
        answer_prompts=2,
        per_device_train_batch_size=2,
    )
    assert "voice_rate" in result.after


def test_the_demo_keeps_its_old_names():
    """Notebooks and scripts import the demo from where it was: smol_align.data and smol_align.iterate."""
    from smol_align import data
    from smol_align import demo as package
    from smol_align.data.demo import NAME
    from smol_align.data.demo import demo_rows as rows
    from smol_align.iterate import DEMO_SYSTEM, demo_prompts, demo_reward

    assert data.demo is package.demo and data.pirate_voice is package.pirate_voice
    assert rows is package.demo_rows
    assert NAME == package.NAME == "smol_align-demo"
    assert demo_reward is package.demo_reward and demo_prompts is package.demo_prompts
    assert DEMO_SYSTEM == package.DEMO_SYSTEM

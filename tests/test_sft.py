"""SFT (issue 30 item 1): train_sft / build_sft_trainer / smol-align sft on TRL's SFTTrainer, through the same
presets, data path, runner and report as DPO. It learns (the held-out NLL of the targets falls) on
instruction rows and on the chosen answers of pairs; a run that does not learn says NOT LEARNED; bad rows are
clear errors."""

from __future__ import annotations

import json

import pytest

import smol_align
from smol_align.api import options_for
from smol_align.cli import main, option_objects
from smol_align.errors import ConfigError, DatasetFormatError
from smol_align.testing import tiny_preference_rows
from tests.helpers import tiny_model_dir_and_pairs

FAST = {"max_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "quiet": True}


def _pairs():
    """Pairs, and held-out pairs asking about numbers no training pair asks about."""
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {
            "train": Dataset.from_list(tiny_preference_rows(16)),
            "test": Dataset.from_list(tiny_preference_rows(204)[200:]),
        }
    )


def _instruction_rows(kind: str, ids) -> list[dict]:
    """The same instruction/answer rows in each SFT format the data path reads."""
    rows = []
    for i in ids:
        question, answer = f"What is {i} plus {i}?", f"Arr, it be {2 * i}, matey!"
        rows.append(
            {
                "prompt-completion": {"prompt": question, "completion": answer},
                "messages": {
                    "messages": [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer},
                    ]
                },
                "alpaca": {"instruction": question, "input": "", "output": answer},
                "text": {"text": f"{question} {answer}"},
            }[kind]
        )
    return rows


def test_sft_on_pairs_trains_the_chosen_answers_and_learns(tiny_model, tiny_tokenizer, tmp_path):
    """Pairs train on prompt + chosen (the loss on the answer only); the held-out NLL of the chosen answers
    falls, and the DPO figures of the trained model against the start model come beside it."""
    from trl import SFTTrainer

    out = tmp_path / "run"
    result = smol_align.train_sft(
        tiny_model, _pairs(), "cpu", output_dir=str(out), tokenizer=tiny_tokenizer, **FAST
    )

    assert isinstance(result.trainer, SFTTrainer) and result.method == "sft"
    m = result.metrics
    assert m["start_nll"] > m["eval_nll"] + 0.05, (m["start_nll"], m["eval_nll"])
    assert m["learned"] is True and m["learning_verdict"] == "learned" and m["heldout_nll_change"] < 0
    assert m["eval_nll"] == pytest.approx(m["eval_nll_chosen"])  # the targets are the chosen answers
    assert m["start_rewards/accuracies"] == 0.0 and m["eval_rewards/accuracies"] >= 0.75  # vs the start model
    summary = result.summary()
    assert "held-out NLL" in summary and "reward accuracy" in summary and "NOT LEARNED" not in summary
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["method"] == "sft" and saved["eval_nll"] < saved["start_nll"]
    report = (out / "report.md").read_text()
    assert "| nll |" in report and (out / "model.safetensors").exists()


def test_the_loss_is_on_the_chosen_answer_only(tiny_model, tiny_tokenizer):
    """The tokenized training rows: prompt tokens masked (-100), the chosen answer learned, the rejected
    answer nowhere."""
    trainer = smol_align.build_sft_trainer(tiny_model, _pairs(), "cpu", tokenizer=tiny_tokenizer, max_steps=1)
    row = trainer.train_dataset[0]
    learned = tiny_tokenizer.decode([t for t in row["labels"] if t != -100])
    first = _pairs()["train"][0]
    assert first["chosen"][0]["content"] in learned and first["rejected"][0]["content"] not in learned
    assert first["prompt"][-1]["content"] not in learned  # the question is context, not a target
    assert row["labels"][0] == -100


@pytest.mark.parametrize("kind", ["prompt-completion", "messages", "alpaca", "text"])
def test_each_sft_format_learns(kind, tiny_model, tiny_tokenizer, tmp_path):
    train, heldout = _instruction_rows(kind, range(24)), _instruction_rows(kind, range(200, 204))
    result = smol_align.train_sft(
        tiny_model, train, "cpu", save=False, eval_dataset=heldout, tokenizer=tiny_tokenizer, **FAST
    )
    assert result.before["n_rows"] == 4 and result.after["nll"] < result.before["nll"] - 0.05
    assert result.metrics["learning_verdict"] == "learned"


def test_no_data_is_the_demo_sft_on_its_chosen_answers(tiny_model, tiny_tokenizer, capsys):
    """train_sft() with no data: the demo's pairs, their chosen answers trained (recipes/demo-sft.yaml), the
    pirate voice of the answers measured before and after."""
    from smol_align.demo import demo_recipe

    recipe = demo_recipe("sft")
    assert recipe["max_steps"] == 30 and recipe["learning_rate"] == 2e-5
    result = smol_align.train_sft(
        tiny_model,
        None,
        "cpu",
        tokenizer=tiny_tokenizer,
        save=False,
        answer_prompts=4,
        max_eval_pairs=8,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
    )  # the tiny random model needs a higher rate than the recipe's to move in 30 steps of 2
    assert result.trainer.args.max_steps == 30
    assert {"voice_rate", "nll"} <= set(result.after) and result.after["nll"] < result.before["nll"]
    assert "pirate voice" in capsys.readouterr().out


def test_a_run_that_does_not_learn_says_so(tiny_model, tiny_tokenizer):
    """lr 0 is refused before anything loads; a rate whose steps move nothing says NOT LEARNED."""
    with pytest.raises(ConfigError, match="learning_rate=0"):
        smol_align.train_sft(
            tiny_model, _pairs(), "cpu", save=False, tokenizer=tiny_tokenizer, learning_rate=0
        )
    rates = {**FAST, "learning_rate": 1e-12}
    result = smol_align.train_sft(tiny_model, _pairs(), "cpu", save=False, tokenizer=tiny_tokenizer, **rates)
    assert result.metrics["learned"] is False and result.metrics["learning_verdict"] == "no_change"
    assert "NOT LEARNED: the held-out NLL of the targets did not fall" in result.summary()


def test_bad_sft_rows_are_errors_naming_row_and_column(tiny_model, tiny_tokenizer):
    rows = _instruction_rows("messages", range(8))
    rows[3] = {"messages": [{"role": "user", "content": "a question, and no answer"}]}
    with pytest.raises(DatasetFormatError) as err:
        smol_align.train_sft(
            tiny_model, rows, "cpu", save=False, tokenizer=tiny_tokenizer, strict=True, **FAST
        )
    assert "row 3, column 'messages'" in str(err.value) and "not the assistant's" in str(err.value)
    assert "trl-messages" in str(err.value)


def test_sft_rows_are_refused_by_dpo_and_kto_rows_by_sft(tiny_model, tiny_tokenizer):
    rows = _instruction_rows("prompt-completion", range(12))
    with pytest.raises(ConfigError, match="train them with train_sft"):
        smol_align.build_dpo_trainer(tiny_model, rows, "cpu", tokenizer=tiny_tokenizer)
    unpaired = [{"prompt": f"q{i}", "completion": f"a{i}", "label": i % 2 == 0} for i in range(12)]
    with pytest.raises(ConfigError, match="KTO's rows"):
        smol_align.build_sft_trainer(tiny_model, unpaired, "cpu", tokenizer=tiny_tokenizer)


def test_presets_build_sft_configs_with_sft_rates():
    from trl import SFTConfig

    full, lora = smol_align.presets.build("sft", "cpu"), smol_align.presets.build("sft", "cpu+lora")
    assert isinstance(full.args, SFTConfig) and full.args.learning_rate == 2e-5
    assert lora.args.learning_rate == 2e-4 and lora.peft_config is not None
    assert smol_align.presets.build("sft", "cpu", learning_rate=1e-4).args.learning_rate == 1e-4
    import torch

    assert full.dtype == torch.float32  # fp32 master weights; bf16 only autocasts


def test_the_cli_and_python_build_the_same_sft_options():
    argv = "--dataset rows.jsonl --max-steps 3 --learning_rate 1e-4 --eval-split 0.2 --overwrite --lora_r 8"
    keywords = {"max_steps": 3, "learning_rate": 1e-4, "eval_split": 0.2, "overwrite": True, "lora_r": 8}
    from_cli, from_python = option_objects("sft", argv.split()), options_for("sft", "rows.jsonl", **keywords)
    assert from_cli == from_python
    assert from_cli.run.overwrite and from_cli.data.eval_split == 0.2 and from_cli.model.lora_r == 8
    assert from_cli.config == {"max_steps": 3, "learning_rate": 1e-4}
    with pytest.raises(ConfigError, match="beta"):  # SFT has no beta: a DPO keyword is refused
        options_for("sft", "rows.jsonl", beta=0.1)


def test_smol_align_sft_then_dpo_from_its_run_folder(tmp_path, capsys):
    base, pairs = tiny_model_dir_and_pairs(tmp_path, n_pairs=24)
    fast = ["--max-steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "5e-3", "--quiet"]
    sft, dpo = tmp_path / "sft", tmp_path / "dpo"
    argv = ["sft", "--model", str(base), "--dataset", str(pairs), "--output-dir", str(sft), *fast]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((sft / "metrics.json").read_text())
    assert metrics["method"] == "sft" and metrics["eval_nll"] < metrics["start_nll"]
    argv = ["dpo", "--model", str(sft), "--dataset", str(pairs), "--output-dir", str(dpo), *fast]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((dpo / "metrics.json").read_text())
    assert metrics["model"] == str(sft) and metrics["start_model_path"] == str(sft)


@pytest.mark.slow
def test_embedded_sft_then_dpo_learn(tmp_path):
    """The demo's order on the embedded SmolLM2-135M: `smol-align sft` on the chosen answers (the held-out
    NLL of the test split's chosen answers falls), then `smol-align dpo --model <sft run>` (reward accuracy
    rises against the SFT model, prefers-chosen does not fall, the margin grows)."""
    budget = ["--max-steps", "6", "--max-eval-pairs", "32", "--answer-prompts", "0", "--quiet"]
    sft, dpo = tmp_path / "sft", tmp_path / "dpo"
    assert main(["sft", "--output-dir", str(sft), *budget]) == 0
    m = json.loads((sft / "metrics.json").read_text())
    assert m["eval_nll"] < m["start_nll"] - 0.1 and m["learned"] is True, m
    assert main(["dpo", "--model", str(sft), "--output-dir", str(dpo), *budget]) == 0
    m = json.loads((dpo / "metrics.json").read_text())
    assert m["eval_rewards/accuracies"] > 0.8 and m["learned"] is True, m
    # prefers-chosen (log p(chosen) > log p(rejected)) may be high after SFT: it must not fall
    assert m["eval_preference_accuracy"] >= m["start_preference_accuracy"], m
    assert m["eval_rewards/margins"] > 0.1, m

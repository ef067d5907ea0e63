"""After training: `smol-align chat` (piped, two models side by side, /reset, /exit), `smol-align generate`,
TrainResult.generate, and a LoRA run folder loaded on its base."""

import io
import json
import sys

from helpers import tiny_model_dir_and_pairs

import smol_align
from smol_align import cli
from smol_align.testing import tiny_model_and_tokenizer


def _other(tmp_path):
    """A second tiny model that answers differently (another seed)."""
    import torch

    model, tokenizer = tiny_model_and_tokenizer(seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path / "other")
    tokenizer.save_pretrained(tmp_path / "other")
    return tmp_path / "other"


def test_piped_chat_answers_with_both_models_resets_and_exits(tmp_path, monkeypatch, capsys):
    import importlib

    base, _ = tiny_model_dir_and_pairs(tmp_path, n_pairs=4)
    other = _other(tmp_path)
    evaluate = importlib.import_module("smol_align.evaluate")
    real, conversations = evaluate.generate, []

    def recording(model, prompts, tokenizer=None, **options):
        conversations.append([dict(m) for m in prompts[0]])
        return real(model, prompts, tokenizer, **options)

    monkeypatch.setattr(evaluate, "generate", recording)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\nAnd then?\n/reset\nHi again\n/exit\nnever read\n"))
    assert cli.main(["chat", str(base), "--compare", str(other), "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"[{base}]") == out.count(f"[{other}]") == 3  # three messages, each answered by both
    assert "never read" not in out
    first, second, after_reset = conversations[0], conversations[2], conversations[4]
    assert [m["content"] for m in first] == ["Hello"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"] and second[-1][
        "content"
    ] == "And then?"
    assert [m["content"] for m in after_reset] == ["Hi again"]  # /reset started the conversation over


def test_generate_cli_writes_both_models_answers(tmp_path, capsys):
    base, _ = tiny_model_dir_and_pairs(tmp_path, n_pairs=4)
    other = _other(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "What is 2 plus 2?"})
        + "\n"
        + json.dumps({"prompt": [{"role": "user", "content": "Say hi"}]})
        + "\n"
    )
    argv = [
        "generate",
        "--model",
        str(base),
        "--model",
        str(other),
        "--prompts",
        str(prompts),
        "--max-new-tokens",
        "5",
    ]
    assert cli.main(argv) == 0
    markdown = capsys.readouterr().out
    assert "### 1. What is 2 plus 2?" in markdown and "### 2. Say hi" in markdown
    assert markdown.count(f"**{base}**") == markdown.count(f"**{other}**") == 2
    assert cli.main([*argv, "--output", str(tmp_path / "answers.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [list(r["answers"]) for r in rows] == [[str(base), str(other)]] * 2
    assert rows[0]["prompt"] == "What is 2 plus 2?" and all(
        isinstance(a, str) for r in rows for a in r["answers"].values()
    )


def test_a_lora_run_folder_loads_on_its_base_and_train_result_generates(tmp_path):
    base, pairs = tiny_model_dir_and_pairs(tmp_path, n_pairs=8)
    result = smol_align.train_dpo(
        str(base),
        str(pairs),
        "cpu+lora",
        bf16=False,
        max_steps=2,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        output_dir=str(tmp_path / "run"),
        evaluate=False,
        quiet=True,
    )
    assert (tmp_path / "run" / "adapter_config.json").exists()
    trained = result.generate(["What is 3 plus 3?"], max_new_tokens=5)
    model, tokenizer = smol_align.load_model(str(tmp_path / "run"))
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    assert smol_align.generate(model, ["What is 3 plus 3?"], tokenizer, max_new_tokens=5) == trained

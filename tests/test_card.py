"""Ready for the Hub after every run: the model card in each run folder (base model by its Hub id), a LoRA run
merged into its base (same log-probs as adapter + base), the folder pushed with its card (to a stand-in of
the Hub's HTTP API on this machine: tests/helpers.py, LocalHub)."""

import json
import os

import pytest
import torch
from helpers import tiny_model_dir_and_pairs
from huggingface_hub import ModelCard

import smol_align
from smol_align import cli
from smol_align.errors import ConfigError
from smol_align.merge import merged_line
from smol_align.models import DEFAULT_MODEL

RUN = {"max_steps": 2, "per_device_train_batch_size": 4, "answer_prompts": 0, "quiet": True}
SECRET = "hf_smolalignCARDsecret42"


@pytest.fixture
def embedded_dir(tmp_path, monkeypatch):
    """The embedded model's converted folder as models.embedded_checkpoint writes it (under $SMOL_ALIGN_CACHE),
    holding the tiny model: a run loads it from this local path, yet its base is the embedded Hub id."""
    monkeypatch.setenv("SMOL_ALIGN_CACHE", str(tmp_path / "cache"))
    folder, pairs = tiny_model_dir_and_pairs(tmp_path)
    target = tmp_path / "cache" / DEFAULT_MODEL.replace("/", "--")
    target.parent.mkdir()
    folder.rename(target)
    return target, pairs


def _card(folder):
    text = (folder / "README.md").read_text()
    return ModelCard(text), text


def _front_matter(text: str) -> str:
    return text.split("---", 2)[1]


@pytest.mark.parametrize("preset, library", [("cpu", "transformers"), ("lora", "peft")])
def test_a_run_folder_has_a_card_with_the_base_hub_id(embedded_dir, tmp_path, preset, library):
    """A full run had no card (TRL writes one with a checkpoint only) and a LoRA run PEFT's blank template with
    ``base_model:`` the local folder the base was loaded from."""
    base, pairs = embedded_dir
    out = tmp_path / f"pirate-{preset}"
    result = smol_align.train_dpo(str(base), str(pairs), preset, output_dir=str(out), **RUN)

    card, text = _card(out)
    assert card.data.base_model == DEFAULT_MODEL and card.data.library_name == library
    assert {"trl", "smol-align", "dpo"} <= set(card.data.tags)
    assert str(tmp_path) not in _front_matter(text)  # never a local path where the Hub reads
    assert "Model Card for Model ID" not in text  # not PEFT's template
    m = json.loads((out / "metrics.json").read_text())
    assert m["base_model"] == DEFAULT_MODEL and result.files["card"] == str(out / "README.md")
    # method, data, preset, the held-out table from the run's own figures, the verdict, the command
    assert "## Training" in text and f"{m['train_pairs']} pairs trained" in text and m["preset"] in text
    row = next(line for line in text.splitlines() if line.startswith("| reward accuracy"))
    assert row.endswith(f"| {m['start_rewards/accuracies']:g} | {m['eval_rewards/accuracies']:g} |"), row
    assert "## Verdict" in text and m["learning_verdict"] in text
    assert (
        f"smol_align.train_dpo(\n    model={str(base)!r},\n    dataset={str(pairs)!r},\n    preset={preset!r}"
        in text
    )
    if preset == "lora":  # the adapter still loads its base from where it was trained (PEFT's record)
        assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)


def test_a_run_from_a_run_folder_names_the_first_base_and_a_plain_folder_none(embedded_dir, tmp_path):
    base, pairs = embedded_dir
    first = tmp_path / "first"
    smol_align.train_dpo(str(base), str(pairs), "cpu", output_dir=str(first), **RUN)
    second = tmp_path / "second"
    smol_align.train_orpo(str(first), str(pairs), "cpu", output_dir=str(second), **RUN)
    card, text = _card(second)
    assert card.data.base_model == DEFAULT_MODEL and "orpo" in card.data.tags

    plain, _ = tiny_model_dir_and_pairs(tmp_path / "plain")  # a folder with no known Hub id
    third = tmp_path / "third"
    smol_align.train_dpo(str(plain), str(pairs), "cpu", output_dir=str(third), **RUN)
    card, text = _card(third)
    assert card.data.base_model is None and "base_model:" not in _front_matter(text)
    assert "`base_model` is not set" in text and "records no Hugging Face Hub id" in text


def test_the_cli_card_gives_the_command_and_never_the_token(tmp_path):
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "cli-run"
    argv = ["dpo", "--model", str(base), "--dataset", str(pairs), "--preset", "cpu", "--output-dir", str(out)]
    argv += ["--max-steps", "1", "--answer_prompts", "0", "--quiet", "--hub_token", SECRET]
    assert cli.main(argv) == 0
    _, text = _card(out)
    assert f"smol-align dpo --model {base} --dataset {pairs} --preset cpu --output-dir {out}" in text
    assert "--hub_token" not in text
    assert not [p for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_the_unfinished_runs_record_leaves_the_token_out(tmp_path, monkeypatch):
    """The marker names the command running the folder; transformers' checkpoint pushes upload the folder."""
    from smol_align.rundir import MARKER, RunDir

    monkeypatch.setattr(
        "sys.argv", ["smol-align", "dpo", "--hub_token", SECRET, "--hub-token=" + SECRET, "-q"]
    )
    with RunDir(tmp_path / "run"):
        record = json.loads((tmp_path / "run" / MARKER).read_text())
    assert record["command"] == "smol-align dpo -q"


# --- merge ---
def _logps(model, tokenizer) -> torch.Tensor:
    """Per-token log-probs of a few fixed texts under ``model`` (fp32, eval mode)."""
    batch = tokenizer(
        ["Arr, it be 4, matey!", "The answer is 42. What is 2 plus 2?"], return_tensors="pt", padding=True
    )
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits[:, :-1].float()
    return (
        logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
        * batch["attention_mask"][:, 1:]
    )


def test_a_merged_lora_run_loads_plainly_with_the_same_logps(embedded_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    base, pairs = embedded_dir
    out = tmp_path / "lora-run"
    options = {**RUN, "max_steps": 3, "learning_rate": 1e-2, "quiet": False}
    smol_align.train_dpo(str(base), str(pairs), "lora", output_dir=str(out), merge=True, **options)
    assert f"Merged model saved to {out / 'merged'}" in capsys.readouterr().out

    adapter, tokenizer = smol_align.load_model(str(out))  # the base, the adapter on it
    with_adapter = _logps(adapter, tokenizer)
    plain_base = _logps(AutoModelForCausalLM.from_pretrained(base), tokenizer)
    assert (with_adapter - plain_base).abs().max() > 1e-3  # the adapter moved the model: a merge must show it
    for merged in (out / "merged", tmp_path / "merged-by-cli"):
        if merged.name == "merged-by-cli":
            assert cli.main(["merge", str(out), "--output", str(merged)]) == 0
        assert "model.safetensors" in os.listdir(merged) and "adapter_config.json" not in os.listdir(merged)
        model = AutoModelForCausalLM.from_pretrained(merged)  # plain transformers
        torch.testing.assert_close(_logps(model, tokenizer), with_adapter, atol=1e-4, rtol=0)
        card, _ = _card(merged)
        assert card.data.base_model == DEFAULT_MODEL and card.data.library_name == "transformers"
        assert "merged" in card.data.tags
    # a run folder holding its merged model is still smol_align's own: overwrite replaces it
    smol_align.train_dpo(str(base), str(pairs), "lora", output_dir=str(out), overwrite=True, **RUN)
    assert not (out / "merged").exists()


def test_merge_refuses_a_full_run_and_a_folder_it_did_not_make(tmp_path, capsys):
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    full = tmp_path / "full"
    smol_align.train_dpo(str(base), str(pairs), "cpu", output_dir=str(full), **RUN)
    with pytest.raises(ConfigError, match="no adapter_config.json, so there is no LoRA adapter to merge"):
        smol_align.merge(full)
    capsys.readouterr()
    assert cli.main(["merge", str(full)]) == 2
    assert capsys.readouterr().err.startswith(
        f"smol-align merge: error: Cannot merge {full}: it has no adapter"
    )

    lora = tmp_path / "lora"
    smol_align.train_dpo(str(base), str(pairs), "lora", output_dir=str(lora), **RUN)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="mine"):
            smol_align.merge(lora, mine, overwrite=overwrite)
    assert os.listdir(mine) == ["notes.txt"]
    smol_align.merge(lora)
    with pytest.raises(ConfigError, match="exists and is not empty"):
        smol_align.merge(lora)
    smol_align.merge(lora, overwrite=True)  # its own merged folder: replaced
    assert (lora / "merged" / "model.safetensors").is_file()


def test_merge_true_on_a_full_run_or_without_saving_is_refused_before_training(tmp_path):
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "full-merge"
    with pytest.raises(
        ConfigError, match="merge=True merges a LoRA adapter into its base, and this run trains"
    ):
        smol_align.train_dpo(str(base), str(pairs), "cpu", output_dir=str(out), merge=True, **RUN)
    assert not out.exists()  # nothing trained, nothing left
    with pytest.raises(ConfigError, match="merge=True needs a saved run"):
        smol_align.train_dpo(str(base), str(pairs), "lora", save=False, merge=True, **RUN)


def test_a_qlora_run_merges_into_its_base_loaded_in_full_precision(tmp_path):
    """bitsandbytes' 4-bit runs on this CPU; the merge loads the base in fp32 (not 4-bit) and says so."""
    pytest.importorskip("bitsandbytes")
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "qlora"
    options = {**RUN, "max_steps": 3, "learning_rate": 1e-2}
    smol_align.train_dpo(str(base), str(pairs), "qlora-4bit", output_dir=str(out), **options)
    assert json.loads((out / "metrics.json").read_text())["base_4bit"] is True
    merged = smol_align.merge(out)
    line = merged_line(out, merged)
    assert "4-bit (NF4) base" in line and "fp32 (dequantized)" in line
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not getattr(model, "is_quantized", False) and model.dtype == torch.float32
    adapter, tokenizer = smol_align.load_model(str(out))  # the adapter on the base in fp32
    with_adapter = _logps(adapter, tokenizer)
    assert (with_adapter - _logps(AutoModelForCausalLM.from_pretrained(base), tokenizer)).abs().max() > 1e-3
    torch.testing.assert_close(_logps(model, tokenizer), with_adapter, atol=1e-4, rtol=0)
    _, text = _card(merged)
    assert "4-bit (NF4) copy of the base" in text


# --- push ---
def test_push_to_hub_sends_the_card_and_weights_and_never_the_token(tmp_path, local_hub, monkeypatch):
    base, pairs = tiny_model_dir_and_pairs(tmp_path)
    out = tmp_path / "pirate-run"
    smol_align.train_dpo(
        str(base),
        str(pairs),
        "lora",
        output_dir=str(out),
        push_to_hub=True,
        hub_token=SECRET,
        merge=True,
        **RUN,
    )
    repo, files = local_hub.commits[-1]
    assert repo == "me/pirate-run"  # hub_model_id's default: the run folder's name
    assert {"README.md", "adapter_model.safetensors", "adapter_config.json", "metrics.json"} <= set(files)
    assert files["README.md"] == (out / "README.md").read_bytes() and b"smol-align" in files["README.md"]
    assert not [p for p in files if p.startswith(("merged/", ".smol_align"))]
    assert not [p for p, content in files.items() if SECRET.encode() in content]
    assert not [p for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    sent = [
        headers.get("authorization") or headers.get("Authorization")
        for _, _, headers, _ in local_hub.requests
    ]
    assert f"Bearer {SECRET}" in sent  # the token went where it belongs: the request headers
    assert os.environ.get("HF_TOKEN") != SECRET

    monkeypatch.setenv("HF_TOKEN", SECRET)  # hf auth login's token, as huggingface_hub reads it
    assert cli.main(["push", str(out / "merged"), "--repo-id", "me/pirate-merged"]) == 0
    repo, files = local_hub.commits[-1]
    assert repo == "me/pirate-merged" and {"README.md", "model.safetensors", "config.json"} <= set(files)
    assert ModelCard(files["README.md"].decode()).data.library_name == "transformers"


# --- the card's parts, without training ---
def test_base_model_id_of_names_folders_and_objects(tmp_path, tiny_model):
    from smol_align.card import base_model_id

    assert base_model_id("HuggingFaceTB/SmolLM2-360M-Instruct") == ("HuggingFaceTB/SmolLM2-360M-Instruct", "")
    snapshot = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-360M" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    assert base_model_id(str(snapshot)) == ("HuggingFaceTB/SmolLM2-360M", "")  # a Hub cache copy
    hub_id, why = base_model_id(tiny_model)  # built in memory: no name to go by
    assert hub_id is None and "object that records no name" in why
    tiny_model.config._name_or_path = str(snapshot)  # loaded from that copy
    assert base_model_id(tiny_model)[0] == "HuggingFaceTB/SmolLM2-360M"


def test_a_card_is_generic_over_the_method_and_names_a_hub_dataset():
    """An SFT run's figures (no pairs): the table shows what was held out before and after; data from a Hub id
    goes in the front matter's datasets."""
    from smol_align.card import card_text

    metrics = {
        "method": "sft",
        "base_model": DEFAULT_MODEL,
        "dataset": "HuggingFaceTB/smoltalk[train]",
        "dataset_hub_id": "HuggingFaceTB/smoltalk",
        "heldout_from": "split 'test'",
        "train_rows": 100,
        "preset": "cpu+full",
        "start_nll": 2.5,
        "eval_nll": 1.25,
        "command": "smol-align sft --dataset HuggingFaceTB/smoltalk",
    }
    text = card_text(metrics, "sft-run")
    card = ModelCard(text)
    assert card.data.datasets == ["HuggingFaceTB/smoltalk"] and "sft" in card.data.tags
    assert "| NLL of the targets | 2.5 | 1.25 |" in text and "100 rows trained" in text
    assert "```bash\nsmol-align sft --dataset HuggingFaceTB/smoltalk\n```" in text


def test_push_refuses_an_unfinished_run_and_a_folder_without_a_card(tmp_path, capsys):
    from smol_align.rundir import MARKER

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / MARKER).write_text("{}")
    (unfinished / "README.md").write_text("a card")
    with pytest.raises(ConfigError, match="its run has not finished"):
        smol_align.push_to_hub(unfinished)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model.safetensors").write_bytes(b"")
    assert cli.main(["push", str(plain), "--repo-id", "me/plain"]) == 2
    said = capsys.readouterr().err
    assert said.startswith(
        f"smol-align push: error: Cannot push {plain}: it has no model card (README.md)"
    ), said

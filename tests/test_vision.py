"""Vision-language DPO: image pairs (paths, PIL, bytes) on a tiny random Idefics3 (SmolVLM's architecture) and its
processor built locally; the held-out figures on image pairs; a bad image is an error naming its row.

The demo's drawn pairs (smol_align.demo.images) prefer the Captain's voice and the right colour, so a run learns
even with a random vision tower: the held-out margin grows, and does not with lr=0 or chosen/rejected swapped.
"""

from __future__ import annotations

import io
import os
import socket

import pytest

from smol_align.demo.images import draw, image_pairs
from smol_align.errors import DatasetFormatError


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """The folder of a saved tiny Idefics3 and its processor (built once for the module)."""
    from smol_align.testing import tiny_vlm_and_processor

    folder = tmp_path_factory.mktemp("vlm") / "tiny-vlm"
    tiny_vlm_and_processor(folder)
    return folder


def _train(model, rows, heldout, **keywords):
    import smol_align

    settings = dict(preset="cpu", max_steps=12, learning_rate=1e-3, per_device_train_batch_size=4)
    settings.update(save=False, quiet=True, logging_steps=100, eval_dataset=heldout)
    settings.update(keywords)
    model = os.fspath(model) if isinstance(model, os.PathLike) else model  # a folder, or a loaded model
    return smol_align.train_dpo(model, rows, **settings)


def _learned(result) -> bool:
    """The demo's bar for a tiny run: the held-out margin grew, and most held-out pairs rank chosen first."""
    before, after = result.before, result.after
    return after["reward_margin"] > before["reward_margin"] + 0.1 and after["reward_accuracy"] >= 0.75


def _swapped(rows):
    return [{**row, "chosen": row["rejected"], "rejected": row["chosen"]} for row in rows]


def test_load_model_returns_the_processor(tiny_vlm):
    from transformers import ProcessorMixin

    from smol_align.models import is_vision_language, load_model

    model, processor = load_model(str(tiny_vlm))
    assert is_vision_language(model) and isinstance(processor, ProcessorMixin)
    assert next(model.parameters()).dtype.is_floating_point and str(model.dtype) == "torch.float32"
    from smol_align.evaluate import check_same_tokenizer

    check_same_tokenizer(processor, processor)  # smol-align eval checks a reference's: its tokenizer's


def test_vision_dpo_learns(tiny_vlm):
    result = _train(tiny_vlm, image_pairs(24, seed=0), image_pairs(8, seed=1))
    assert result.before["n_pairs"] == 8 and result.before["reward_margin"] == 0.0
    assert _learned(result), (result.before, result.after)
    # the trained model generates (text prompts, through the processor's template; _compat.forward_without_autocast)
    assert len(result.generate(["What colour is the circle?"], max_new_tokens=2)) == 1
    assert result.trainer.args.bf16 == ("avx512_bf16" in open("/proc/cpuinfo").read())  # the cpu preset's


def test_heldout_figures_on_image_pairs_are_trls(tiny_vlm, tmp_path):
    """evaluate() on image pairs gives trainer.evaluate()'s eval_rewards/* (TRL's collator and forward)."""
    import copy
    import warnings

    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from smol_align.evaluate import evaluate
    from smol_align.models import load_model

    ref, processor = load_model(str(tiny_vlm))
    policy = copy.deepcopy(ref)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    rows = image_pairs(8, seed=4)
    rows = [
        row if i % 2 else {**row, "chosen": row["rejected"], "rejected": row["chosen"]}
        for i, row in enumerate(rows)
    ]
    ours = evaluate(policy, Dataset.from_list(rows), ref_model=ref, tokenizer=processor, batch_size=3)
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=4,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = Dataset.from_list(rows)
        trainer = DPOTrainer(
            model=policy, ref_model=ref, args=args, train_dataset=data, processing_class=processor
        )
        trl = trainer.evaluate(data)
    assert 0.0 < ours["reward_accuracy"] < 1.0 and ours["n_pairs"] == 8  # a figure worth comparing
    for ours_key, trl_key in [
        ("reward_accuracy", "eval_rewards/accuracies"),
        ("reward_margin", "eval_rewards/margins"),
        ("rewards_chosen", "eval_rewards/chosen"),
        ("logps_rejected", "eval_logps/rejected"),
    ]:
        assert ours[ours_key] == pytest.approx(trl[trl_key], abs=1e-4), ours_key


@pytest.mark.parametrize("broken", ["lr=0", "swapped"])
def test_vision_dpo_without_learning_is_seen(tiny_vlm, broken):
    """The bar of test_vision_dpo_learns fails when nothing is learned (lr=0: 1e-12, as smol_align refuses 0) or the wrong
    side is (swapped)."""
    rows, lr = image_pairs(24, seed=0), 1e-3
    rows, lr = (rows, 1e-12) if broken == "lr=0" else (_swapped(rows), lr)  # 0 itself is refused
    result = _train(tiny_vlm, rows, image_pairs(8, seed=1), learning_rate=lr)
    assert not _learned(result)
    if broken == "swapped":
        assert result.after["reward_margin"] < 0


def test_images_as_paths_pil_and_bytes_all_train(tiny_vlm, tmp_path):
    """One dataset mixing the three forms (with LoRA; its run folder reloads with the processor) and TRL's single
    `image` column in another (on a loaded model) train and evaluate."""
    rows = image_pairs(6, seed=2)
    for i, row in enumerate(rows):
        image = row["images"][0]
        if i % 3 == 1:
            path = tmp_path / f"{i}.png"
            image.save(path)
            row["images"] = [str(path)]
        elif i % 3 == 2:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            row["images"] = [buffer.getvalue()]
    single = [{**{k: v for k, v in row.items() if k != "images"}, "image": row["images"][0]} for row in rows]
    from transformers import ProcessorMixin

    from smol_align.models import load_model

    loaded, processor = load_model(str(tiny_vlm))  # a loaded model takes its processor as tokenizer=
    lora = {"preset": "lora", "save": True, "output_dir": str(tmp_path / "lora")}  # the run folder reloads
    for data, model, more in ((rows, tiny_vlm, lora), (single, loaded, {"tokenizer": processor})):
        result = _train(model, data, data[:2], max_steps=1, **more)
        assert result.trainer.state.global_step == 1 and result.after["n_pairs"] == 2
    adapter, its_processor = load_model(str(tmp_path / "lora"))
    assert hasattr(adapter, "peft_config") and isinstance(its_processor, ProcessorMixin)


def test_doctor_counts_images_and_tells_pictures_apart():
    """The same question about another picture is another prompt (dedupe_prompts keeps it); a repeat is not."""
    from smol_align.data import doctor, load

    rows = image_pairs(6, seed=5)
    same_question = [{**row, "prompt": rows[0]["prompt"]} for row in rows]
    report = doctor(same_question + same_question[:2])
    assert (report.images, report.duplicated_prompts) == (8, 2)
    assert "| 8 images, all load |" in report.summary_line()
    assert len(load(same_question, eval_split=0, dedupe_prompts=True).train) == 6


def test_trls_typed_messages_read_as_their_text():
    """TRL's vision messages ([{"type": "image"}, {"type": "text", ...}]) read as text; an image inside a message
    (not in the images column) is not read, so such a row is not taken as text."""
    from smol_align.data import load

    rows = image_pairs(3, seed=6)
    question = rows[0]["prompt"][0]["content"]
    rows[0]["prompt"] = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    pairs = load(rows, eval_split=0).train
    assert pairs[0]["prompt"] == [{"role": "user", "content": question}] and len(pairs[0]["images"]) == 1
    rows[1]["prompt"] = [{"role": "user", "content": [{"type": "image", "image": "x.png"}]}]
    with pytest.raises(
        DatasetFormatError, match="row 1, column 'prompt': prompt: message content is not text"
    ):
        load(rows, strict=True)


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("missing.png", "image file not found"),
        (b"these bytes are not an image", "not an image file"),
        ("corrupt", "image does not load"),
        (None, "not an image"),
    ],
)
def test_a_bad_image_names_its_row(bad, reason, tmp_path, monkeypatch):
    from smol_align.data.load import load

    monkeypatch.chdir(tmp_path)
    if bad == "corrupt":  # a PNG cut in half
        buffer = io.BytesIO()
        draw("circle", "red").save(buffer, format="PNG")
        bad = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    rows = image_pairs(5, seed=3)
    rows[3]["images"] = [rows[3]["images"][0], bad]
    with pytest.raises(DatasetFormatError) as caught:
        load(rows, strict=False)  # refused even when misfit rows would be set aside
    message = str(caught.value)
    assert message.startswith(f"<list of rows>, row 3, column 'images': images: {reason} (image 1")
    assert "a path to an image file" in message and caught.value.row == 3
    if reason == "image file not found":
        assert f"read from the current folder {tmp_path}" in message


def test_image_pairs_on_a_text_model_are_refused(tmp_path):
    from smol_align.errors import ConfigError
    from tests.helpers import tiny_model_dir_and_pairs

    base, _ = tiny_model_dir_and_pairs(tmp_path, n_pairs=2)
    with pytest.raises(
        ConfigError, match="holds images .* cannot read: image pairs train with train_dpo on a"
    ):
        _train(base, image_pairs(4), None, eval_split=0)


SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"
HUB_RUN = """
import sys

import smol_align
from transformers import ProcessorMixin
from smol_align.demo.images import image_pairs

model, processor = smol_align.load_model(sys.argv[1])
assert isinstance(processor, ProcessorMixin), type(processor)
result = smol_align.train_dpo(
    sys.argv[1], image_pairs(8), preset="cpu", max_steps=2, per_device_train_batch_size=2, learning_rate=5e-6,
    max_length=None, eval_dataset=image_pairs(4, seed=1), save=False, quiet=True,
)
assert result.trainer.state.global_step == 2 and result.after["n_pairs"] == 4, result.after
print("figures", result.before["reward_margin"], result.after["reward_margin"])
"""


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(
    os.environ.get("SMOL_ALIGN_HUB_TESTS") != "1",
    reason=f"the real {SMOLVLM} comes from the Hub: set SMOL_ALIGN_HUB_TESTS=1 where the Hub can be reached",
)
def test_real_smolvlm_from_the_hub():
    """The documented path: SmolVLM-256M's weights and processor from the Hub, two DPO steps on drawn pairs. In a
    child process: the tests' offline switches are read when huggingface_hub is imported."""
    import subprocess
    import sys

    if not _hub_reachable():
        pytest.skip("huggingface.co cannot be reached from here")
    offline = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if k not in offline}
    done = subprocess.run(
        [sys.executable, "-c", HUB_RUN, SMOLVLM], env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "figures" in done.stdout

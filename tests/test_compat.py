"""What smol_align changes in TRL's behaviour on CPU gives the same numbers."""

import copy
import re

import pytest
import torch

from smol_align.testing import tiny_model, tiny_preference_rows, tiny_tokenizer


def _loss_and_grads(compact: bool, monkeypatch, tmp_path):
    import trl.trainer.utils as trl_utils

    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: device.type in ("cuda", "xpu"))  # TRL's own answer
    scored = []
    chunked = getattr(trl_utils._ChunkedLogProbFunction, "original", trl_utils._ChunkedLogProbFunction)

    class Recording:
        original = chunked

        @staticmethod
        def apply(hidden, *args):
            scored.append(hidden.shape[0])
            return chunked.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Recording)
    from smol_align._compat import compact_lm_head_while

    with compact_lm_head_while("cpu" if compact else "cuda") as on:
        assert on == compact
        return _one_step(tmp_path, scored)


def _one_step(tmp_path, scored):
    from trl import DPOTrainer

    from smol_align import presets

    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, seed=1)
    ref = copy.deepcopy(model)
    with torch.no_grad():  # a policy that differs from its reference, so log-ratios are not 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    built = presets.build("dpo", "cpu", output_dir=str(tmp_path), per_device_train_batch_size=4)
    trainer = DPOTrainer(model=model, ref_model=ref, args=built.args, processing_class=tokenizer,
                         train_dataset=__import__("datasets").Dataset.from_list(tiny_preference_rows(4)))
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return loss.detach(), grads, trainer._metrics["train"], scored


def test_compact_lm_head_changes_no_number(monkeypatch, tmp_path):
    loss_full, grads_full, metrics_full, scored_full = _loss_and_grads(False, monkeypatch, tmp_path / "a")
    loss_compact, grads_compact, metrics_compact, scored_compact = _loss_and_grads(True, monkeypatch, tmp_path / "b")
    # policy and reference forwards: the compact head scores only completion positions
    assert len(scored_full) == len(scored_compact) == 2
    assert all(c < f for c, f in zip(scored_compact, scored_full, strict=True)), (scored_compact, scored_full)
    torch.testing.assert_close(loss_compact, loss_full, rtol=0, atol=1e-6)
    for name, grad in grads_full.items():
        torch.testing.assert_close(grads_compact[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    for key in ("rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "entropy"):
        assert metrics_compact[key] == pytest.approx(metrics_full[key], abs=1e-5), key


def test_switch_is_undone_on_the_way_out_even_on_error():
    import trl.trainer.utils as trl_utils

    from smol_align._compat import compact_lm_head_while

    trl_own = trl_utils._use_triton
    assert trl_own(torch.device("cpu")) is False
    with pytest.raises(RuntimeError), compact_lm_head_while(torch.device("cpu")) as on:
        assert on and trl_utils._use_triton(torch.device("cpu")) is True
        with compact_lm_head_while("cpu"):  # nested: still on, and the outer one restored on the way out
            assert trl_utils._use_triton(torch.device("cpu")) is True
        assert trl_utils._use_triton(torch.device("cpu")) is True
        raise RuntimeError
    assert trl_utils._use_triton is trl_own


def test_the_hooked_trl_names_still_exist():
    """compact_lm_head_while() leaves a TRL without ``_use_triton`` alone (silently, by design);
    this fails loudly instead when TRL renames or moves the private names it hooks."""
    import inspect

    import trl.trainer.utils as trl_utils

    from smol_align._compat import compact_lm_head_while

    for name in ("_use_triton", "_ChunkedLogProbFunction"):
        assert hasattr(trl_utils, name), f"TRL renamed trl.trainer.utils.{name}: update smol_align._compat"
    assert callable(trl_utils._use_triton) and hasattr(trl_utils._ChunkedLogProbFunction, "apply")
    # the fused LM head still decides "compact" by that name, looked up in that module at call time
    source = inspect.getsource(trl_utils)
    assert "compact = _use_triton(hidden_states.device)" in source
    assert "_ChunkedLogProbFunction.apply(" in source
    with compact_lm_head_while("cpu") as on:
        assert on, "the switch found nothing to hook"
    # held-out evaluation tokenizes with TRL's own DPOTrainer._prepare_dataset, reading only these of `self`/args
    from trl import DPOTrainer

    prepare = inspect.getsource(DPOTrainer._prepare_dataset)
    assert list(inspect.signature(DPOTrainer._prepare_dataset).parameters) == [
        "self", "dataset", "processing_class", "args", "dataset_name",
    ], "TRL changed DPOTrainer._prepare_dataset: update _compat.dpo_tokenized"  # fmt: skip
    used = set(re.findall(r"self\.(\w+)", prepare)) | {f"args.{a}" for a in re.findall(r"args\.(\w+)", prepare)}
    assert used <= {"_tokenizer", "args.dataset_num_proc", "args.max_length", "args.truncation_mode"}, used


def test_one_switch_turns_the_trl_patch_off(monkeypatch):
    import trl.trainer.utils as trl_utils

    from smol_align import _compat

    monkeypatch.setattr(_compat, "HOOKS", False)
    trl_own = trl_utils._use_triton
    with _compat.compact_lm_head_while("cpu") as on:
        assert not on and trl_utils._use_triton is trl_own


def _nf4_layer_and_reference():
    import torch

    bnb = pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    dense = torch.nn.Linear(64, 32, bias=False)
    layer = bnb.nn.Linear4bit(64, 32, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(dense.weight.data.clone(), requires_grad=False, quant_type="nf4")
    layer = layer.to("cpu")
    weight = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
    return layer, weight


def _input_grad_error(layer, weight, x) -> float:
    import torch

    layer.train()
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    scale = torch.arange(32.0)
    (layer(x1).float() * scale).sum().backward()
    (x2 @ weight.t() * scale).sum().backward()
    assert x1.grad is not None, "no gradient reached the input of the 4-bit layer"
    return (x1.grad - x2.grad).abs().max().item() / x2.grad.abs().mean().item()


@pytest.mark.parametrize("packed_first", [False, True])
def test_4bit_layers_pass_gradients_after_an_evaluation(packed_first):
    """bitsandbytes repacks a 4-bit weight for CPU inference on the first eval-mode no-grad forward (AVX512-BF16
    CPUs) and then passes no gradient through it: QLoRA stopped learning after smol_align's held-out evaluation.
    keep_4bit_layers_trainable must stop that, and undo a packing already done. Fails loudly if bitsandbytes
    renames the switch."""
    import torch

    from smol_align._compat import keep_4bit_layers_trainable

    layer, weight = _nf4_layer_and_reference()
    assert hasattr(layer, "support_avx512bf16_for_cpu"), "bitsandbytes renamed it: update smol_align._compat"
    x = torch.randn(2, 5, 64)
    if packed_first:
        if not layer.support_avx512bf16_for_cpu:
            pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never packs here")
        layer.eval()
        with torch.no_grad():
            layer(x)
        assert layer.weight.quant_state.packing_format_for_cpu
    assert keep_4bit_layers_trainable(layer) == 1
    layer.eval()
    with torch.no_grad():
        layer(x)  # the evaluation before training
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    assert _input_grad_error(layer, weight, x) < 0.05


def test_the_lm_head_patch_lasts_only_while_the_runner_trains(tiny_model, tiny_tokenizer):
    """Building a trainer patches nothing; train_dpo switches TRL's LM head to compact for its training steps
    only and puts TRL's own function back afterwards."""
    import trl.trainer.utils as trl_utils
    from transformers import TrainerCallback

    import smol_align
    from smol_align.testing import tiny_preference_rows

    trl_own = trl_utils._use_triton

    def patched():
        return trl_utils._use_triton is not trl_own

    seen = []

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(patched())

    rows = tiny_preference_rows(8)
    smol_align.build_dpo_trainer(tiny_model, rows, "cpu", tokenizer=tiny_tokenizer, bf16=False)
    assert not patched()
    smol_align.train_dpo(tiny_model, rows, "cpu", tokenizer=tiny_tokenizer, bf16=False, save=False, evaluate=False,
                         max_steps=2, per_device_train_batch_size=2, callbacks=[Probe()], quiet=True)  # fmt: skip
    assert seen == [True, True] and not patched()


def test_cudnn_attention_is_off_only_inside_the_block_and_only_for_cuda():
    """On CUDA the runner trains and evaluates without SDPA's cuDNN backend (it re-plans for every new sequence
    length: two thirds of a GPU step, README "Speed"); the flags are torch's own, put back on the way out."""
    from smol_align._compat import no_cudnn_attention_while

    before = torch.backends.cuda.cudnn_sdp_enabled()
    with no_cudnn_attention_while("cpu") as on:
        assert on is False and torch.backends.cuda.cudnn_sdp_enabled() == before
    with no_cudnn_attention_while(torch.device("cuda")) as on:
        assert on is True and not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
    with pytest.raises(RuntimeError), no_cudnn_attention_while("cuda"):
        raise RuntimeError("an error inside")
    assert torch.backends.cuda.cudnn_sdp_enabled() == before

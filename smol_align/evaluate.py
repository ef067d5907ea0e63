"""Held-out evaluation of a preference-tuned model: preference and DPO implicit-reward figures.

:func:`evaluate` scores held-out preference pairs the way TRL's ``DPOTrainer`` does (same
tokenization, same completion tokens, same sums of token log-probabilities), so its
``reward_accuracy``, ``reward_margin``, ``rewards_chosen``/``rewards_rejected`` agree with the
``eval_rewards/*`` figures of ``trainer.evaluate()`` on the same model, reference and data
(``tests/test_evaluate.py`` checks it to 1e-4). On top it reports figures that need no reference:

* ``preference_accuracy``: share of pairs where the policy finds the chosen answer more likely
  than the rejected one (summed log-probs); ``preference_accuracy_normalized`` the same with
  per-token means, which removes the bias towards shorter answers;
* ``nll_chosen``: per-token negative log-likelihood of the chosen answers (all chosen tokens
  pooled), to watch the model "forgetting" good answers while it pushes pairs apart;
* ``drift`` / ``drift_rejected``: mean log-ratio ``log pi(y|x) - log pi_ref(y|x)`` of the chosen /
  rejected answers: how far the policy moved from the reference on this data.

The reference. A forward pass of SmolLM2-135M over ~130 pairs costs tens of seconds on a CPU,
so the usual flow evaluates the start model once and hands its log-probs on::

    start = evaluate(model0, test, tokenizer=tok)  # reference = itself: rewards 0 by definition
    dpo = evaluate(trained, test, tokenizer=tok, ref_logps=start["logps"])

With neither ``ref_model`` nor ``ref_logps`` the reference is the model itself (all implicit
rewards, margins and drifts are 0 and ``reward_accuracy`` is 0, since it counts strict wins:
at the start of training, by definition), except for a PEFT model, whose reference is the same
model with its adapters disabled, as in TRL (an adapter saved under the name ``"ref"`` is not
looked for: pass ``ref_logps`` then).

Efficiency: ``torch.no_grad``, batches of pairs sorted by length, ``model.eval()`` (the training
mode is restored afterwards), each prompt run once with chosen and rejected continuing from its
KV cache, and the LM head applied only at completion positions (the backbone's hidden states are
gathered there first) instead of building ``(batch, seq, vocab)`` logits. On the demo test split
(131 pairs, SmolLM2-135M, fp32, one CPU thread) that is ~56 s of CPU time against ~83 s for the
full forward of the concatenated sequences, with summed log-probs equal to ~1e-6 relative. Models
this shortcut cannot serve exactly (prompt-learning PEFT, logit soft-capping or scaling) take the
full forward, which ``fused=False`` also forces.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from ._compat import trl_tokenize

logger = logging.getLogger(__name__)

LOGPS_KEYS = ("chosen", "rejected", "chosen_tokens", "rejected_tokens")
"""Per-pair lists of a ``logps`` dict (besides ``index``, the pairs' positions in the data)."""

_HEAD_CHUNK = 2048
"""Completion tokens projected through the LM head at once (bounds the (tokens, vocab) buffer)."""

_SCALING_ATTRS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


# --------------------------------------------------------------------------------------------
# Data: rows and tokenization, as TRL's DPOTrainer does it
# --------------------------------------------------------------------------------------------


def first_rows(dataset, max_pairs: int | None) -> list[dict]:
    """The first ``max_pairs`` rows of a ``datasets.Dataset`` or a list of dicts, as dicts."""
    if isinstance(dataset, dict):
        raise TypeError(
            f"Pass one split (a Dataset or a list of rows), not a dict of splits {list(dataset)}."
        )
    n = len(dataset) if max_pairs is None else min(max_pairs, len(dataset))
    if hasattr(dataset, "select") and hasattr(dataset, "to_list"):
        return dataset.select(range(n)).to_list()
    return [dict(row) for row in list(dataset)[:n]]


def tokenize_pair(example: dict, tokenizer) -> dict[str, list[int]]:
    """``prompt_ids``, ``chosen_ids``, ``rejected_ids`` of one pair, as TRL 1.16's ``DPOTrainer``.

    Mirrors ``DPOTrainer._prepare_dataset``: the prompt is extracted when implicit, an EOS is
    appended to string completions that lack one, conversational pairs go through the chat
    template (prompt with the generation prompt; prompt + completion without), and the completion
    starts where the tokenized prompt and prompt + completion diverge.
    """
    from trl.data_utils import common_prefix_length, extract_prompt, is_conversational

    if "prompt" not in example:
        example = {**example, **extract_prompt(example)}
    tools = example.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    kwargs = {"tools": tools, **(example.get("chat_template_kwargs") or {})}
    prompt, chosen, rejected = example["prompt"], example["chosen"], example["rejected"]
    if is_conversational(example):
        prompt_ids = trl_tokenize(tokenizer, prompt, add_generation_prompt=True, **kwargs)
        prompt_chosen = trl_tokenize(tokenizer, prompt + chosen, **kwargs)
        prompt_rejected = trl_tokenize(tokenizer, prompt + rejected, **kwargs)
    else:
        eos = tokenizer.eos_token
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
        prompt_ids = trl_tokenize(tokenizer, prompt)
        prompt_chosen = trl_tokenize(tokenizer, prompt + chosen)
        prompt_rejected = trl_tokenize(tokenizer, prompt + rejected)
    prompt_len = min(
        common_prefix_length(prompt_ids, prompt_chosen), common_prefix_length(prompt_ids, prompt_rejected)
    )
    return {
        "prompt_ids": prompt_ids[:prompt_len],
        "chosen_ids": prompt_chosen[prompt_len:],
        "rejected_ids": prompt_rejected[prompt_len:],
    }


def tokenize_pairs(
    dataset, tokenizer, max_pairs: int | None = None, max_length: int | None = None
) -> list[dict]:
    """Tokenized pairs (see :func:`tokenize_pair`), each with its ``index`` in ``dataset``.

    With ``max_length`` set, pairs whose prompt alone fills it are dropped, as TRL does with its
    default ``truncation_mode="keep_start"`` (the rest is truncated later, in the collator).
    """
    pairs = []
    for index, row in enumerate(first_rows(dataset, max_pairs)):
        pair = tokenize_pair(row, tokenizer)
        if max_length is not None and len(pair["prompt_ids"]) >= max_length:
            continue
        pairs.append({**pair, "index": index})
    dropped = (len(dataset) if max_pairs is None else min(max_pairs, len(dataset))) - len(pairs)
    if dropped:
        logger.warning("%d pair(s) dropped: their prompt alone fills max_length=%s.", dropped, max_length)
    return pairs


# --------------------------------------------------------------------------------------------
# Log-probabilities of completions
# --------------------------------------------------------------------------------------------


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def _device(model):
    return next(model.parameters()).device


def _backbone_and_head(model):
    """``(backbone, lm_head)`` when logits are exactly ``lm_head(backbone(...))``, else None."""
    base = model
    if _is_peft(model):
        if (
            getattr(model, "active_peft_config", None) is not None
            and model.active_peft_config.is_prompt_learning
        ):
            return None  # virtual tokens are prepended by the PeftModel forward
        base = model.get_base_model()
    config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    for attr in _SCALING_ATTRS:
        if getattr(config, attr, None) not in (None, 1.0):
            return None
    prefix = getattr(base, "base_model_prefix", "")
    backbone = getattr(base, prefix, None) if prefix else None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if backbone is None or head is None or backbone is base:
        return None
    return backbone, head


def _token_logps(logits, labels):
    """``log softmax(logits)[labels]`` in float32, as ``logit - logsumexp`` (more exact on CPU)."""
    import torch

    logits = logits.float()
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _project(head, hidden, targets):
    """Log-probs of ``targets`` (N,) from the hidden states (N, H) that predict them, in chunks."""
    import torch

    chunks = [
        _token_logps(head(hidden[i : i + _HEAD_CHUNK]), targets[i : i + _HEAD_CHUNK])
        for i in range(0, hidden.size(0), _HEAD_CHUNK)
    ]
    return torch.cat(chunks) if chunks else hidden.new_zeros(0, dtype=torch.float32)


def _sum_per_row(mask, token_logps):
    """Scatter the flat log-probs back to ``mask``'s rows and sum them: ``(sums, counts)`` on CPU."""
    import torch

    per_token = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_scatter(
        mask, token_logps
    )
    return per_token.sum(dim=1).cpu(), mask.sum(dim=1).cpu()


def _concatenated_logps(model, batch: dict, parts):
    """Log-probs of a batch collated by TRL (rows: all chosen, then all rejected), as TRL feeds it.

    With ``parts = (backbone, lm_head)`` only the completion positions go through the head; with
    None the model's own forward builds the full logits (the naive path).
    """
    device = _device(model)
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    labels = input_ids[:, 1:]
    mask = batch["completion_mask"][:, 1:].to(device).bool()
    if parts is not None:
        backbone, head = parts
        hidden = backbone(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        token_logps = _project(head, hidden[:, :-1][mask], labels[mask])
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        logits = logits[:, -input_ids.size(1) :][:, :-1]  # prompt-learning PEFT prepends virtual tokens
        token_logps = _token_logps(logits, labels.masked_fill(~mask, 0))[mask]
    return _sum_per_row(mask, token_logps)


def _pad_right(seqs: list[list[int]], pad_id: int, device):
    """``(ids, mask)`` of right-padded sequences."""
    import torch

    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def _shared_prompt_logps(backbone, head, pairs: list[dict], pad_id: int, max_length: int | None, device):
    """Log-probs with each prompt run once: chosen and rejected continue from its KV cache.

    Rows of the result alternate chosen, rejected (pair by pair). The numbers are those of the
    concatenated sequences TRL builds (same positions, same attention), up to float rounding,
    for about 60% of the tokens when prompts are long (a system prompt) and answers short.
    Completions are cut at ``max_length`` like TRL's collator (``keep_start``).
    """
    import torch

    prompt_lens = [len(p["prompt_ids"]) for p in pairs]
    completions = []
    for pair, n in zip(pairs, prompt_lens, strict=True):
        room = None if max_length is None else max(0, max_length - n)
        completions += [pair["chosen_ids"][:room], pair["rejected_ids"][:room]]
    prompt_ids, prompt_mask = _pad_right([p["prompt_ids"] for p in pairs], pad_id, device)
    comp_ids, comp_mask = _pad_right(completions, pad_id, device)
    if comp_ids.size(1) == 0:
        return torch.zeros(len(completions)), comp_mask.sum(dim=1).cpu()

    out = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, use_cache=True)
    lens = torch.tensor(prompt_lens, device=device)
    # the hidden state at the prompt's last token predicts the completion's first token
    last = out.last_hidden_state[torch.arange(len(pairs), device=device), lens - 1].repeat_interleave(
        2, dim=0
    )
    cache = out.past_key_values
    cache.batch_repeat_interleave(2)
    positions = lens.repeat_interleave(2)[:, None] + torch.arange(comp_ids.size(1), device=device)
    hidden = backbone(
        input_ids=comp_ids,
        attention_mask=torch.cat([prompt_mask.repeat_interleave(2, dim=0), comp_mask], dim=1),
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    ).last_hidden_state
    predicting = torch.cat([last[:, None], hidden[:, :-1]], dim=1)
    mask = comp_mask.bool()
    return _sum_per_row(mask, _project(head, predicting[mask], comp_ids[mask]))


def _batch_logps(model, chunk: list[dict], collator, pad_id: int, max_length: int | None, fused: bool):
    """``(chosen, rejected, chosen_tokens, rejected_tokens)`` tensors of one batch of pairs."""
    parts = _backbone_and_head(model) if fused else None
    if parts is not None and all(p["prompt_ids"] for p in chunk):
        sums, counts = _shared_prompt_logps(*parts, chunk, pad_id, max_length, _device(model))
        return sums[0::2], sums[1::2], counts[0::2], counts[1::2]
    batch = collator([{k: p[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for p in chunk])
    sums, counts = _concatenated_logps(model, batch, parts)
    k = len(chunk)
    return sums[:k], sums[k:], counts[:k], counts[k:]


def logps_of_pairs(
    model,
    pairs: list[dict],
    pad_token_id: int,
    batch_size: int = 8,
    max_length: int | None = None,
    fused: bool = True,
) -> dict[str, list]:
    """Per-pair summed completion log-probs of tokenized ``pairs`` (from :func:`tokenize_pairs`).

    Pairs are sorted by length and batched, so padding is small; the results come back in the
    order of ``pairs``. ``fused=True`` (when the model allows it) runs each prompt once and
    projects only completion positions through the LM head; ``fused=False`` feeds TRL's
    ``DataCollatorForPreference`` batches to the model's own forward (full logits).

    Returns:
        ``{"chosen", "rejected", "chosen_tokens", "rejected_tokens", "index"}``, lists of one entry
        per pair (floats, floats, ints, ints, and the pairs' ``index``).
    """
    import torch
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    collator = DataCollatorForPreference(pad_token_id=pad_token_id, max_length=max_length)
    n = len(pairs)

    def length(i):
        pair = pairs[i]
        return len(pair["prompt_ids"]) + max(len(pair["chosen_ids"]), len(pair["rejected_ids"]))

    order = sorted(range(n), key=lambda i: -length(i))
    out = {key: [None] * n for key in LOGPS_KEYS}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mixed_precision(model):
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                values = _batch_logps(
                    model, [pairs[i] for i in idx], collator, pad_token_id, max_length, fused
                )
                for key, tensor in zip(LOGPS_KEYS, values, strict=True):
                    for i, value in zip(idx, tensor.tolist(), strict=True):
                        out[key][i] = value
    finally:
        model.train(was_training)
    out["index"] = [pair["index"] for pair in pairs]
    return out


def mixed_precision(model):
    """bf16 autocast for a model whose floating weights mix bf16 and fp32, else nothing.

    Training ran such a model under autocast (a bf16 LoRA base under fp32 adapters; the bf16 head
    and fp32 norms that TRL's ORPO gives a 4-bit model), so its forward needs it here too.
    """
    import contextlib

    import torch

    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if {torch.bfloat16, torch.float32} <= dtypes:
        return torch.autocast(_device(model).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _pad_token_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    return pad if pad is not None else (tokenizer.eos_token_id or 0)


def completion_logps(
    model,
    tokenizer,
    dataset,
    batch_size: int = 8,
    max_pairs: int | None = None,
    max_length: int | None = None,
    fused: bool = True,
) -> dict[str, list]:
    """Tokenize ``dataset`` like TRL and return its per-pair log-probs (see :func:`logps_of_pairs`).

    ``fused=False`` computes full ``(batch, seq, vocab)`` logits instead of projecting only the
    completion positions: the naive path, kept for checking and for unusual models.
    """
    pairs = tokenize_pairs(dataset, tokenizer, max_pairs=max_pairs, max_length=max_length)
    return logps_of_pairs(
        model, pairs, _pad_token_id(tokenizer), batch_size=batch_size, max_length=max_length, fused=fused
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def preference_metrics(
    logps: dict[str, list], ref_logps: dict[str, list], beta: float = 0.1
) -> dict[str, Any]:
    """The held-out figures from per-pair log-probs of the policy and of the reference.

    Definitions follow TRL's ``DPOTrainer`` logs: rewards ``beta * (log pi - log pi_ref)``,
    ``reward_accuracy`` the share of pairs with chosen reward *strictly* above rejected.
    Means are over pairs, except ``nll_chosen``, which pools all chosen tokens.
    """
    c, r = logps["chosen"], logps["rejected"]
    nc, nr = logps["chosen_tokens"], logps["rejected_tokens"]
    rc = [beta * (a - b) for a, b in zip(c, ref_logps["chosen"], strict=True)]
    rr = [beta * (a - b) for a, b in zip(r, ref_logps["rejected"], strict=True)]
    total_chosen_tokens = sum(nc)
    return {
        "n_pairs": len(c),
        "beta": beta,
        "preference_accuracy": _mean(float(a > b) for a, b in zip(c, r, strict=True)),
        "preference_accuracy_normalized": _mean(
            float(a / max(na, 1) > b / max(nb, 1)) for a, b, na, nb in zip(c, r, nc, nr, strict=True)
        ),
        "reward_accuracy": _mean(float(a > b) for a, b in zip(rc, rr, strict=True)),
        "reward_margin": _mean(a - b for a, b in zip(rc, rr, strict=True)),
        "rewards_chosen": _mean(rc),
        "rewards_rejected": _mean(rr),
        "nll_chosen": -sum(c) / total_chosen_tokens if total_chosen_tokens else float("nan"),
        "logps_chosen": _mean(c),
        "logps_rejected": _mean(r),
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
    if tokenizer is not None:
        return tokenizer
    from transformers import AutoTokenizer

    name = getattr(getattr(model, "config", None), "_name_or_path", None)
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - any loading failure means "pass it yourself"
        raise ValueError(
            f"Pass `tokenizer=`: none could be loaded from the model's path {name!r} ({exc})."
        ) from exc


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
    fused: bool = True,
) -> dict[str, Any]:
    """Preference and implicit-reward figures of ``model`` on held-out pairs.

    Args:
        model: causal LM (a PEFT model too) to evaluate.
        dataset: ``datasets.Dataset`` or list of dicts in a TRL preference format: conversational
            or standard, explicit or implicit prompt; or anything else :func:`smol_align.data.load`
            reads (a file, a hub id, a ``DatasetDict``, ``Pairs``): its test split if it has one,
            else all of it, normalized.
        ref_model: reference model for the implicit rewards. See the reference rules below.
        tokenizer: the model's tokenizer (with its chat template); loaded from the model's path
            when omitted.
        max_pairs: evaluate only the first ``max_pairs`` pairs.
        beta: DPO's beta, which scales the implicit rewards (TRL's default 0.1).
        batch_size: pairs per forward pass (each pass holds ``2 * batch_size`` sequences).
        ref_logps: the ``logps`` dict of an earlier call on the same pairs (e.g. the start model):
            used as the reference log-probs, so no reference forward pass is run.
        max_length: truncate sequences to this many tokens like ``DPOConfig.max_length`` (pass the
            trainer's value to match it on long data); None keeps them whole.
        fused: project only completion positions through the LM head (False: full logits).

    Reference rules: ``ref_logps`` if given, else ``ref_model`` if given, else for a PEFT model
    the model with its adapters disabled (as TRL does), else the model itself. In that last case
    the rewards, margin and drifts are 0 and ``reward_accuracy`` is 0 (a strict win is needed):
    the figures of the start model, by definition.

    Returns:
        A dict with ``preference_accuracy``, ``preference_accuracy_normalized``,
        ``reward_accuracy``, ``reward_margin``, ``rewards_chosen``, ``rewards_rejected``,
        ``nll_chosen``, ``logps_chosen``, ``logps_rejected``, ``drift``, ``drift_rejected``,
        ``n_pairs``, ``beta``, ``reference`` (which reference was used), ``seconds`` and
        ``logps`` (per-pair lists ``chosen``, ``rejected``, ``chosen_tokens``,
        ``rejected_tokens``, ``index``: pass it as ``ref_logps`` later).
    """
    started = time.perf_counter()
    import datasets

    if not isinstance(dataset, (list, datasets.Dataset)):
        from .data.load import heldout_pairs

        dataset = heldout_pairs(dataset)
    tokenizer = _resolve_tokenizer(model, tokenizer)
    pairs = tokenize_pairs(dataset, tokenizer, max_pairs=max_pairs, max_length=max_length)
    if not pairs:
        raise ValueError("No preference pairs to evaluate.")
    pad_id = _pad_token_id(tokenizer)

    def run(m):
        return logps_of_pairs(m, pairs, pad_id, batch_size=batch_size, max_length=max_length, fused=fused)

    logps = run(model)
    if ref_logps is not None:
        _check_ref_logps(ref_logps, logps)
        reference = "ref_logps"
    elif ref_model is not None:
        ref_logps, reference = run(ref_model), "ref_model"
    elif _is_peft(model):
        with model.disable_adapter():
            ref_logps = run(model)
        reference = "adapter disabled"
    else:
        ref_logps, reference = logps, "model itself"
    result = preference_metrics(logps, ref_logps, beta=beta)
    result["reference"] = reference
    result["seconds"] = time.perf_counter() - started
    result["logps"] = logps
    logger.info(
        "Evaluated %d pairs in %.1f s (reference: %s): preference accuracy %.3f, reward accuracy %.3f, margin %.4f.",
        result["n_pairs"], result["seconds"], reference,
        result["preference_accuracy"], result["reward_accuracy"], result["reward_margin"],
    )  # fmt: skip
    if any(math.isnan(v) for v in (result["reward_margin"], result["nll_chosen"])):
        logger.warning("Some held-out figures are NaN (no completion tokens?).")
    return result


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _as_messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def generate_answers(model, tokenizer, prompts, max_new_tokens: int = 48, batch_size: int = 8) -> list[str]:
    """Greedy answers to ``prompts`` (lists of messages, or strings taken as one user message).

    Batched with left padding and bounded by ``max_new_tokens``; the answers are decoded without
    special tokens and stripped. The model's training mode and the tokenizer's padding side are
    restored afterwards.
    """
    import torch

    texts = [
        tokenizer.apply_chat_template(_as_messages(p), add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    pad_id = _pad_token_id(tokenizer)
    answers: list[str] = []
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        with torch.no_grad(), mixed_precision(model):
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(_device(model))
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=pad_id,
                )
                new_tokens = out[:, enc["input_ids"].size(1) :]
                answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        model.train(was_training)
        tokenizer.padding_side = padding_side
    return answers


def answer_figures(answers: list[str], voice=None) -> dict[str, float]:
    """Readability figures of generated answers: repetition, length and (optionally) a voice rate.

    ``repeated_4gram_rate``: per answer, the share of its word 4-grams that already occurred
    earlier in the same answer (0 for an answer that never repeats itself; the degenerate
    "... a double-whacking of the alphabet, and it's a double-whacking of the alphabet" scores
    high), averaged over answers. ``answer_words``: mean length in words. ``voice_rate``: share of
    answers for which ``voice(answer)`` is true (the demo passes its pirate-voice check).
    """
    rates = []
    for answer in answers:
        words = answer.lower().split()
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        rates.append(1 - len(set(grams)) / len(grams) if grams else 0.0)
    figures = {
        "repeated_4gram_rate": _mean(rates),
        "answer_words": _mean([len(a.split()) for a in answers]),
    }
    if voice is not None:
        figures["voice_rate"] = _mean([float(bool(voice(a))) for a in answers])
    return figures


"""Tiny models and tokenizers built locally, for tests, smoke runs and parity checks.

Nothing here touches the network: the tokenizer is a byte-level BPE trained in memory on a
few sentences, the model a few-layer Llama with random weights. Both follow the conventions
of SmolLM2 (ChatML chat template, ``<|im_end|>`` as end of turn) so code paths match the real
model.
"""

from __future__ import annotations

from .models import CHATML_TEMPLATE  # the tiny tokenizer speaks SmolLM2's ChatML

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Arr, matey! The answer be forty-two, savvy?",
    "Human: hello there. Assistant: Hi! How can I help you today?",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ! ? : ; ' \" ( ) - _",
    "Please answer in one short sentence. Sure, here is a short answer.",
]


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer with ChatML special tokens, trained in memory (milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_model(tokenizer=None, hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """A randomly initialised few-layer Llama sized to ``tokenizer`` (fp32, on CPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def tiny_model_and_tokenizer(**kwargs):
    """``(model, tokenizer)``: the pair most tests want."""
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer, **kwargs), tokenizer


def tiny_preference_rows(n: int = 16) -> list[dict]:
    """``n`` conversational preference rows (explicit prompt) in TRL's format."""
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
            "chosen": [{"role": "assistant", "content": f"Arr, it be {2 * i}, matey!"}],
            "rejected": [{"role": "assistant", "content": f"The answer is {2 * i}."}],
        }
        for i in range(n)
    ]


# ChatML (as tiny_tokenizer's) over typed content too: a vision-language processor's template sees
# [{"type": "image"}, {"type": "text", "text": ...}] and puts the image token where the image part is.
VLM_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_vlm_and_processor(path=None, hidden_size: int = 32, image_size: int = 32, seed: int = 0):
    """``(model, processor)``: a randomly initialised Idefics3 (SmolVLM's architecture: a SigLIP-style
    vision tower, a pixel-shuffle connector, a Llama text model) with a one-layer vision tower and the tiny
    Llama's text part, and its ``Idefics3Processor`` (images resized to ``image_size``, not split; each image
    is 4 ``<image>`` tokens), built in memory in about a second. ``path``: also saved there, so that
    ``load_model(path)`` and ``train_dpo(path, ...)`` read it as they read a Hub model."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor

    try:  # the torch backend needs torchvision; the PIL one is the same processor without it
        from transformers import Idefics3ImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import Idefics3ImageProcessor as ImageProcessor

    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<global-img>"]}
    )
    tokenizer.chat_template = VLM_CHAT_TEMPLATE
    size = {"longest_edge": image_size}
    images = ImageProcessor(size=size, max_image_size=size, do_image_splitting=False)
    patch, scale = image_size // 4, 2  # 4x4 patches, pixel-shuffled 2x2: 4 image tokens
    processor = Idefics3Processor(images, tokenizer, image_seq_len=4, chat_template=VLM_CHAT_TEMPLATE)
    text = tiny_model(tokenizer, hidden_size=hidden_size).config  # sized to the tokens the processor added
    text.tie_word_embeddings = True
    vision = dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
    )
    config = Idefics3Config(
        text_config=text.to_dict(),
        vision_config=vision,
        scale_factor=scale,
        image_token_id=processor.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    if path is not None:
        model.save_pretrained(path)
        processor.save_pretrained(path)
    return model, processor

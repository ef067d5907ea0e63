import os

import pytest

# Tests never touch the network, whatever the caller's environment says.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
os.environ["WANDB_DISABLED"] = "true"


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from smol_align.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture
def tiny_model(tiny_tokenizer):
    """A fresh tiny Llama for each test (tests train it in place)."""
    from smol_align.testing import tiny_model

    return tiny_model(tiny_tokenizer)


@pytest.fixture
def local_hub(monkeypatch):
    """A stand-in of the Hub's HTTP API on this machine (tests/helpers.py, LocalHub), huggingface_hub pointed at it."""
    from helpers import LocalHub

    hub = LocalHub(monkeypatch)
    yield hub
    hub.close()

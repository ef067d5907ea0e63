import os
import sys

import pytest

# Tests never touch the network, whatever the caller's environment says.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
os.environ["WANDB_DISABLED"] = "true"


@pytest.fixture(autouse=True)
def _trl_lm_head_restored():
    """The runner switches TRL's fused LM head to compact on CPU only while it trains
    (smol_align._compat.compact_lm_head_while); tests that switch it by hand, or fail midway, are
    undone here, so every test starts from TRL's own function and no result depends on test order."""
    yield
    if "trl.trainer.utils" in sys.modules:  # nothing to undo (and nothing to import) otherwise
        from smol_align._compat import restore_lm_head

        restore_lm_head()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from smol_align.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture
def tiny_model(tiny_tokenizer):
    """A fresh tiny Llama for each test (tests train it in place)."""
    from smol_align.testing import tiny_model

    return tiny_model(tiny_tokenizer)

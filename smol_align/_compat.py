"""Everything that differs across TRL / transformers releases lives here.

TRL 1.x moved ORPO to ``trl.experimental.orpo`` (importing it warns), dropped
``DPOConfig.max_prompt_length`` and ``setup_chat_format``. Code elsewhere in smol_align imports
these names from this module only.
"""

from __future__ import annotations

import os
import warnings


def import_orpo():
    """Return ``(ORPOConfig, ORPOTrainer)`` wherever the installed TRL keeps them.

    TRL >= 1.0 keeps ORPO in ``trl.experimental.orpo`` and warns on import; smol_align pins the
    version it tests against, so that notice is silenced here rather than shown to learners.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*trl.experimental.*")
            os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    except ImportError:  # TRL < 1.0
        from trl import ORPOConfig, ORPOTrainer
    return ORPOConfig, ORPOTrainer

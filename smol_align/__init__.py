"""smol_align: one-line preference alignment (DPO, ORPO) of small language models, on TRL."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

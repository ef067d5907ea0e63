"""The demo data's old home, kept for ``from smol_align.data.demo import ...``: see :mod:`smol_align.demo`."""

from ..demo.data import NAME, demo, demo_rows, pirate_voice

__all__ = ["NAME", "demo", "demo_rows", "pirate_voice"]

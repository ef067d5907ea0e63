"""``python -m smol_align``: the same as the ``smol-align`` command."""

import sys

from .cli import main

sys.exit(main())

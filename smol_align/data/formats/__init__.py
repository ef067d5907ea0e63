"""One module per dataset family; importing this package registers every format.

The order is the registry's order, which breaks detection ties: specific families first, TRL's
generic formats last.
"""

# ruff: noqa: I001, F401
from . import hh_rlhf
from . import ultrafeedback
from . import argilla
from . import orca
from . import mixes
from . import sharegpt
from . import trl
from . import generic

"""Pure row functions, one module per dataset family: one input row (a dict) in, one TRL pair out.

Each function returns ``{"prompt", "chosen", "rejected"}`` (lists of ``{"role", "content"}``)
plus the extras its schema has under stable names (``score_chosen``, ``source``, ...), or
raises :class:`~smol_align.data.messages.InvalidRow` (the row does not fit) or
:class:`~smol_align.data.messages.DroppedRow` (skipped on purpose). They know nothing of
datasets, files or the format table (``smol_align/data/formats.py``), and are tested on literal rows.
"""

"""Pure row functions, one module per dataset family: one row (a dict) in, one TRL pair (plus the
extras its schema has, under stable names) out, or ``InvalidRow`` / ``DroppedRow``. Tested on literal rows.
"""

"""Exceptions raised by smol_align for bad user input."""


class SmolAlignError(ValueError):
    """Base class: a user-facing error whose message says what to do."""


class DatasetFormatError(SmolAlignError):
    """A dataset (or one of its rows) does not fit the expected format; the message names the dataset, the row index,
    the column and what was expected."""

    def __init__(
        self, message: str, *, dataset: str | None = None, row: int | None = None, column: str | None = None
    ):
        super().__init__(message)
        self.dataset = dataset
        self.row = row
        self.column = column


class ConfigError(SmolAlignError):
    """An unknown or retired configuration key, or a bad value for one."""


class ModelNotFoundError(SmolAlignError, FileNotFoundError):
    """A model or tokenizer that cannot be loaded from where it was named (no such folder, not a model
    folder, no tokenizer files, the embedded copy not installed); the message names the path and the fix."""

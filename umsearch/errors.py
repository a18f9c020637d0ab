"""Errors that reach the user as one line of text (the CLI prints them without a traceback)."""


class UmsearchError(Exception):
    """Base class: the message is a single line that says what went wrong and, where possible, the fix."""


class ModelError(UmsearchError):
    """The model cannot be found, fetched or loaded."""


class ImageLoadError(UmsearchError):
    """A file could not be decoded as an image; the message is the reason."""


class StoreError(UmsearchError):
    """The index database cannot be opened, is foreign or corrupt, or belongs to another model."""


class ModelMismatchError(StoreError):
    """The index was built with a different model or embedding settings."""

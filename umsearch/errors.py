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


class DiskFullError(StoreError):
    """The disk holding the index has no room left; what was committed before stays, consistent."""

    def __init__(self, folder: str, saved: int | None = None) -> None:
        self.folder = folder
        self.saved = saved
        super().__init__(f"the disk holding the index ({folder}) is full{saved_text(saved)}; free space and run again")


def saved_text(saved: int | None) -> str:
    """'; 1 photo was saved' / '; 12 photos were saved' (empty when unknown)."""
    if saved is None:
        return ""
    return f"; {saved} photo was saved" if saved == 1 else f"; {saved} photos were saved"


class IndexGoneError(StoreError):
    """The index file was deleted or replaced under a running process: nothing more is written to it."""

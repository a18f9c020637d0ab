"""How file system paths are stored as SQLite text (reversibly, keeping folder prefixes sortable)."""

from __future__ import annotations

import re

# File names are bytes on Linux; Python keeps undecodable bytes as lone surrogates (U+DC80-U+DCFF), which
# SQLite's UTF-8 text cannot hold. Each becomes ESCAPE + a private-use character (and a literal ESCAPE is
# doubled), character by character, so the mapping is reversible and keeps folder prefixes (range scans).
_ESCAPE = "\U0010fe00"
_SURROGATE_BASE = 0x10FE00 - 0xDC00  # U+DC80..U+DCFF <-> U+10FE80..U+10FEFF
_TO_DB = re.compile("[\udc80-\udcff\U0010fe00]")
_FROM_DB = re.compile("\U0010fe00(.)", re.DOTALL)


def path_to_db(path: str) -> str:
    """The one place that turns a file system path into the text stored in the index."""
    if path.isascii():
        return path
    return _TO_DB.sub(_escape_char, path)


def path_from_db(text: str) -> str:
    if text.isascii() or _ESCAPE not in text:
        return text
    return _FROM_DB.sub(_unescape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPE + (char if char == _ESCAPE else chr(ord(char) + _SURROGATE_BASE))


def _unescape_char(match: re.Match[str]) -> str:
    char = match.group(1)
    return char if char == _ESCAPE else chr(ord(char) - _SURROGATE_BASE)

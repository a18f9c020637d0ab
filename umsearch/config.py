"""Where things live and the defaults, each with an environment override."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"
DEFAULT_LIMIT = 20
DEFAULT_BATCH_SIZE = 8
DEFAULT_MIN_IMAGE_TOKENS = 256
DEFAULT_MAX_IMAGE_TOKENS = 1280


def data_dir() -> Path:
    """The per-user folder for the index (UMSEARCH_HOME overrides the platform's user data folder)."""
    override = os.environ.get("UMSEARCH_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("umsearch", appauthor=False))


def default_db_path() -> Path:
    override = os.environ.get("UMSEARCH_DB")
    if override:
        return Path(override).expanduser()
    return data_dir() / "index.db"


def default_model() -> str:
    return os.environ.get("UMSEARCH_MODEL") or DEFAULT_MODEL


def normalize_model_spec(spec: str) -> str:
    """The id an index records for a model: a hub id as given, or a local folder as an absolute path."""
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    return spec

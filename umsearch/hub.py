"""The model in the Hugging Face cache: what is downloaded, where, how big, and fetching it ahead of use.

huggingface_hub itself honours HF_HOME / HF_HUB_CACHE (where), HF_HUB_OFFLINE (never ask the network) and
HF_ENDPOINT (a mirror); nothing here overrides them. Only safetensors weights, configs, tokenizer files and
templates are fetched (modelfiles.HUB_PATTERNS): no pickled weights, no code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .modelfiles import HUB_PATTERNS, check_model_dir, resolve_model


@dataclass(frozen=True)
class ModelInfo:
    spec: str  # the hub id or folder asked about
    source: str  # "hub" or "local"
    downloaded: bool  # every file the embedder needs is present
    path: str | None  # the snapshot (or local) folder, when one exists
    revision: str | None  # the hub commit of the cached snapshot
    size_bytes: int  # bytes on disk of the model's files (0 when absent)
    problem: str | None  # why a present folder is not usable (partial download, say)
    cache_dir: str  # the Hugging Face cache this would live in
    endpoint: str  # where downloads come from (HF_ENDPOINT)

    def as_dict(self) -> dict:
        return dict(vars(self))


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def model_info(spec: str) -> ModelInfo:
    """Describe `spec` (hub id or local folder) from the disk alone: never touches the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    base = dict(spec=spec, cache_dir=hub_cache_dir(), endpoint=hub_endpoint())
    local = Path(spec).expanduser()
    if local.is_dir():
        problem = _problem(local)
        return ModelInfo(
            source="local",
            downloaded=problem is None,
            path=str(local.resolve()),
            revision=None,
            size_bytes=_size(local),
            problem=problem,
            **base,
        )
    try:
        snapshot = Path(snapshot_download(spec, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except HFValidationError:
        raise ModelError(f"model '{spec}' is neither an existing directory nor a valid Hugging Face model id") from None
    except LocalEntryNotFoundError:
        return ModelInfo(source="hub", downloaded=False, path=None, revision=None, size_bytes=0, problem=None, **base)
    problem = _problem(snapshot)
    return ModelInfo(
        source="hub",
        downloaded=problem is None,
        path=str(snapshot),
        revision=snapshot.name,
        size_bytes=_size(snapshot),
        problem=problem,
        **base,
    )


def download_model(spec: str) -> ModelInfo:
    """Make sure `spec` is fully downloaded (with huggingface_hub's progress bars), then describe it.

    Raises ModelError, one line, when it cannot be fetched (offline, unknown id, gated, no network).
    """
    info = model_info(spec)
    if info.source == "local":
        if info.problem:
            raise ModelError(info.problem)
        return info
    if not info.downloaded:
        resolve_model(spec)  # the same fetch (and the same one-line failures) as first use
        info = model_info(spec)
    return info


def _problem(folder: Path) -> str | None:
    try:
        check_model_dir(folder)
    except ModelError as exc:
        return str(exc)
    return None


def _size(folder: Path) -> int:
    """Bytes of the model's files; the hub cache's symlinks are followed to the blobs they name."""
    total = 0
    for entry in folder.iterdir():
        try:
            if entry.is_file():
                total += os.stat(entry).st_size
        except OSError:
            continue  # a dangling link in a half-deleted cache counts as nothing
    return total

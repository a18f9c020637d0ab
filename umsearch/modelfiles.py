"""Turn a ``--model`` value (a local directory or a Hugging Face hub id) into a checked local directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ModelError

# Only configs, safetensors weights, tokenizer text and templates: never pickled .bin weights or code.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja"]

# Seconds to wait for each metadata answer from the hub: a firewalled network must fail fast, not hang.
_HUB_TIMEOUT_S = 10

_LAYOUT_HINT = "(expected a Hugging Face gme-Qwen2-VL layout)"


def resolve_model(spec: str) -> Path:
    """Return an absolute local directory holding the model named by `spec`, downloading it if needed.

    Raises ModelError (one line, naming the model and the fix) for anything that goes wrong.
    """
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        return check_model_dir(path.resolve())
    if path.exists():
        raise ModelError(f"model path {spec} is not a directory {_LAYOUT_HINT}")
    if looks_like_path(spec):
        raise ModelError(f"model directory {spec} does not exist")
    return _resolve_hub_id(spec)


def check_model_dir(path: Path) -> Path:
    """Check that `path` has every file the embedder loads; return it unchanged."""
    for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json"):
        _require(path, name)
    if not (path / "tokenizer.json").is_file():
        for name in ("vocab.json", "merges.txt"):
            if not (path / name).is_file():
                raise ModelError(f"model directory {path} is missing tokenizer.json (or {name}) {_LAYOUT_HINT}")
    _check_weights(path)
    return path


def _require(path: Path, name: str) -> None:
    if not (path / name).is_file():
        raise ModelError(f"model directory {path} is missing {name} {_LAYOUT_HINT}")


def _check_weights(path: Path) -> None:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise ModelError(f"model directory {path} has an unreadable model.safetensors.index.json ({exc})") from None
        for shard in sorted(shards):
            if not (path / shard).is_file():
                raise ModelError(f"model directory {path} is missing weight shard {shard} (incomplete download?)")
        return
    if any(path.glob("*.safetensors")):
        return
    if any(path.glob("*.bin")):
        raise ModelError(f"model directory {path} has only .bin weights; umsearch loads safetensors weights only")
    raise ModelError(f"model directory {path} is missing model.safetensors {_LAYOUT_HINT}")


def looks_like_path(spec: str) -> bool:
    if spec.startswith(("/", ".", "~")):
        return True
    # "owner/name" is a hub id unless its parent is a local directory.
    return os.sep in spec and Path(spec).parent.is_dir()


def _resolve_hub_id(repo_id: str) -> Path:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        cached = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
        return check_model_dir(cached)
    except HFValidationError:
        raise ModelError(
            f"model '{repo_id}' is neither an existing directory nor a valid Hugging Face model id"
        ) from None
    except (LocalEntryNotFoundError, ModelError):
        pass  # not downloaded, or only partly: try to fetch it

    if hub_offline():
        raise ModelError(_offline_by_setting(repo_id))
    try:
        # huggingface_hub's HTTP client has no default timeout and snapshot_download's first request
        # uses none, so a silent network would hang it for good: probe the hub with a timeout first.
        # (Passing the probed commit on would skip that request, but then the cache's refs/main is
        # never written and later offline runs could not find the download.)
        HfApi().repo_info(repo_id, timeout=_HUB_TIMEOUT_S)
        fetched = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=_HUB_TIMEOUT_S)
    except Exception as exc:  # network stacks raise many types; the user needs one line, not a traceback
        raise _hub_failure(repo_id, exc) from None
    return check_model_dir(Path(fetched))


def _hub_failure(repo_id: str, exc: Exception) -> ModelError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return ModelError(
            f"model '{repo_id}' is gated: accept its terms on huggingface.co, log in with 'hf auth login', and retry"
        )
    if isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError)):
        return ModelError(
            f"model '{repo_id}' was not found on the Hugging Face Hub: check the name, or pass --model DIR"
        )
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return ModelError(_offline_by_setting(repo_id) if hub_offline() else _unreachable(repo_id, "offline"))
    # Connection errors and timeouts come from the HTTP stack (httpx, or httpx2 in huggingface_hub 2).
    if not isinstance(exc, HfHubHTTPError) and type(exc).__module__.startswith("httpx"):
        return ModelError(_unreachable(repo_id, f"no answer from the Hugging Face Hub: {first_line(exc)}"))
    return ModelError(f"model '{repo_id}' could not be downloaded: {first_line(exc)}")


def _unreachable(repo_id: str, why: str) -> str:
    return (
        f"model '{repo_id}' is not downloaded and could not be fetched ({why}): connect to the internet "
        f"and run 'umsearch model download {repo_id}', or pass --model DIR with a local copy"
    )


def _offline_by_setting(repo_id: str) -> str:
    # The usual advice (run 'umsearch model download') is the very command that fails while HF_HUB_OFFLINE is set.
    return (
        f"model '{repo_id}' is not downloaded, and HF_HUB_OFFLINE is set (offline), so it cannot be fetched: "
        f"unset HF_HUB_OFFLINE and run 'umsearch model download {repo_id}' with a network connection, "
        "or pass --model DIR with a local copy"
    )


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line, for ModelError texts."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

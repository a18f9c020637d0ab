"""Runtime policy shared by the CLI and the TUI: device, quantisation and image-budget (quality) choices.

Cheap to import (no torch): the CLI resolves presets and checks an index's recorded settings before any
model is loaded. `choose_runtime` in embed.py does the part that needs torch (what the machine can run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UmsearchError
from .families import GME, Family, family_named
from .settings import AUTO_QUALITY, DEFAULT_QUALITY, DEVICE_CHOICES, DTYPE_CHOICES, QUANT_CHOICES
from .settings import QUALITY_PRESETS as QUALITY_PRESETS  # re-exported: GME's presets, read by tests and benchmarks

if TYPE_CHECKING:
    from .embed import EmbedderInfo
    from .store import IndexSettings, Store

# Index meta keys written next to the model settings (IndexSettings covers model, dim and budget).
META_DEVICE, META_DTYPE, META_QUANT, META_QUALITY = "device", "dtype", "quant", "quality"


@dataclass(frozen=True)
class RuntimeRequest:
    """What the user asked for on the command line (or the TUI's settings): 'auto' means let us choose."""

    device: str = "auto"
    quant: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICE_CHOICES:
            raise UmsearchError(f"unknown device '{self.device}' (expected one of {', '.join(DEVICE_CHOICES)})")
        if self.quant not in QUANT_CHOICES:
            raise UmsearchError(f"unknown quantization '{self.quant}' (expected one of {', '.join(QUANT_CHOICES)})")
        if self.dtype not in DTYPE_CHOICES:
            raise UmsearchError(f"unknown dtype '{self.dtype}' (expected one of {', '.join(DTYPE_CHOICES)})")


def quality_budget(quality: str, family: Family = GME) -> tuple[int, int]:
    return family.budget(quality)


def quality_name(min_tokens: int, max_tokens: int, family: Family = GME) -> str:
    """The preset a budget belongs to, or 'custom' (--min/--max-image-tokens given by hand)."""
    return family.quality_name(min_tokens, max_tokens)


def resolve_budget(
    settings: IndexSettings | None,
    quality: str | None = None,
    min_tokens: int | None = None,
    max_tokens: int | None = None,
    family: Family | None = None,
    *,
    device: str | None = None,
) -> tuple[int, int]:
    """The image budget for a run: explicit token limits over --quality over the index's own over the default.

    `quality` None or "auto" keeps the index's budget; for a new index it is the device's preset
    (AUTO_QUALITY) when `device` is given, else the reference default. Token limits given by hand refine a
    preset (or the index's budget), so `--quality fast --max-image-tokens 320` means 128-320. Presets are
    the family's: the index's, else `family`, else GME's.
    """
    if family is None:
        family = family_named(settings.family) if settings is not None else GME
    if quality is not None and quality != "auto":
        low, high = quality_budget(quality, family)
    elif settings is not None:
        low, high = settings.min_image_tokens, settings.max_image_tokens
    else:
        low, high = quality_budget(auto_quality(device) if device else DEFAULT_QUALITY, family)
    low, high = min_tokens or low, max_tokens or high
    if low > high:
        raise UmsearchError(f"the smallest image budget ({low} tokens) is larger than the largest ({high})")
    return low, high


def auto_quality(device: str) -> str:
    """The preset `--quality auto` gives a new index on this device ("cpu", "cuda", "mps")."""
    return AUTO_QUALITY.get(device, DEFAULT_QUALITY)


def runs_on(request: RuntimeRequest) -> str:
    """The device a model would run on for this request (imports torch to look)."""
    from .embed import choose_runtime

    return choose_runtime(request.device, request.quant, request.dtype)[0]


def check_index_budget(settings: IndexSettings | None, budget: tuple[int, int], where: str) -> None:
    """Refuse, before any model loads, to add photos to an index at a different image budget."""
    from .errors import ModelMismatchError

    if settings is None or (settings.min_image_tokens, settings.max_image_tokens) == budget:
        return
    recorded = (settings.min_image_tokens, settings.max_image_tokens)
    family = family_named(settings.family)
    raise ModelMismatchError(
        f"index {where} was built at quality {quality_name(*recorded, family)} ({recorded[0]}-{recorded[1]} visual "
        f"tokens), not {quality_name(*budget, family)} ({budget[0]}-{budget[1]}): drop --quality / the token "
        "options to keep its setting, or use --db NEW_FILE for a separate index"
    )


def record_runtime(store: Store, info: EmbedderInfo) -> None:
    """Write how the index's vectors are being made (shown by `status`; compared by queries)."""
    with store.transaction():
        store.set_meta(META_DEVICE, info.device)
        store.set_meta(META_DTYPE, info.dtype)
        store.set_meta(META_QUANT, info.quant)
        store.set_meta(
            META_QUALITY, quality_name(info.min_image_tokens, info.max_image_tokens, family_named(info.family))
        )


def index_dim(settings: IndexSettings | None) -> int | None:
    """The vector length queries must shorten to: an index of a family trained for shorter vectors (MRL)
    keeps its recorded --dim; None means the model's own."""
    if settings is None or not family_named(settings.family).shortens:
        return None
    return settings.dim


@dataclass(frozen=True)
class RecordedRuntime:
    device: str | None
    dtype: str | None
    quant: str | None
    quality: str | None


def recorded_runtime(store: Store) -> RecordedRuntime:
    return RecordedRuntime(
        store.meta(META_DEVICE), store.meta(META_DTYPE), store.meta(META_QUANT), store.meta(META_QUALITY)
    )


def query_mismatch(store: Store, info: EmbedderInfo, *, has_image: bool = True) -> str | None:
    """One line saying how a query's embedding settings differ from the index's, or None when they agree.

    Different budgets or quantisation still give comparable vectors (same model), just slightly different
    ones, so this is a warning: scores shift a little and near-ties may swap.
    """
    settings = store.settings()
    if settings is None:
        return None
    diffs = []
    budget = (info.min_image_tokens, info.max_image_tokens)
    if has_image and (settings.min_image_tokens, settings.max_image_tokens) != budget:
        diffs.append(
            f"image budget {info.min_image_tokens}-{info.max_image_tokens} tokens "
            f"(index: {settings.min_image_tokens}-{settings.max_image_tokens})"
        )
    recorded = store.meta(META_QUANT)
    if recorded is not None and recorded != info.quant:
        diffs.append(f"quantization {info.quant} (index: {recorded})")
    recorded = store.meta(META_DTYPE)
    if recorded is not None and recorded != info.dtype:
        diffs.append(f"{info.dtype} (index: {recorded})")
    if not diffs:
        return None
    return "this query uses " + " and ".join(diffs) + "; scores may differ slightly from an exact match"

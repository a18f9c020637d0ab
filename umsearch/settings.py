"""The one home of umsearch's defaults and their environment overrides.

Everything here is cheap to import (no torch, no numpy): the CLI reads it to print help and to check an
index's settings before any model is loaded. Runtime *policy* (which device, which dtype) lives in
runtime.py; this module only says what the defaults are and where things live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

DEFAULT_MODEL: Final = "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"
DEFAULT_RERANK_MODEL: Final = "Qwen/Qwen3-VL-Reranker-2B"  # `query --rerank` (any index's family)
DEFAULT_RERANK_TOP: Final = 30  # candidates `query --rerank` rescores when no number is given
DEFAULT_LIMIT: Final = 20  # results per query (CLI, TUI and service alike)
MAX_LIMIT: Final = 4096
DEFAULT_BATCH_SIZE: Final = 8  # images per model call while indexing
FAILURES_SHOWN: Final = 20  # failed files listed by `index` and `status` before "… and N more"
# Photos rescored exactly per search, after the sign-bit scan (benchmarks/search_scale.py chose it).
DEFAULT_SHORTLIST: Final = 400

# GME (Qwen2-VL) turns each 28x28 pixel square into one visual token (14-pixel patches merged 2x2).
PIXELS_PER_TOKEN: Final = 28 * 28

# Visual-token budget (min, max) per quality preset. Cost grows a little faster than linearly with tokens
# (the vision tower's attention is quadratic per image), so "fast" is roughly 4x cheaper than "best" per
# photo. "best" is the reference gme_inference.py budget (256-1280): an index built with it matches the
# published model's evaluation setting. See BENCHMARKS.md for measured speeds.
QUALITY_PRESETS: Final[dict[str, tuple[int, int]]] = {
    "fast": (128, 256),
    "balanced": (256, 576),
    "best": (256, 1280),
}
DEFAULT_QUALITY: Final = "best"  # the reference budget: what a budget means when no device or index says
# What `--quality auto` (the default) gives a new index on each device. A 2-core CPU embeds a photo in about
# 4 s at fast, 13 s at balanced and 48 s at best (bfloat16; float32 2-5x slower; best's attention over 5,000
# patches is slow on CPUs), so a CPU gets fast; Apple GPUs are several times faster than CPUs but well short of CUDA cards (balanced,
# from FLOP counts: no Mac was measured); CUDA GPUs take GME's reference budget. See BENCHMARKS.md.
AUTO_QUALITY: Final[dict[str, str]] = {"cuda": "best", "mps": "balanced", "cpu": "fast"}
QUALITY_CHOICES: Final = ("auto", *QUALITY_PRESETS)
DEFAULT_MIN_IMAGE_TOKENS, DEFAULT_MAX_IMAGE_TOKENS = QUALITY_PRESETS[DEFAULT_QUALITY]

# Screenshots and documents hold text, which needs more pixels than a scene: they get twice the visual
# tokens of the index's quality (best: up to 2560, a phone screenshot at 0.8 of its width, an A4 page at
# ~130 dpi). Derived from the photo budget, so an index still records one budget. See BENCHMARKS.md.
TEXT_BUDGET_FACTOR: Final = 2

# Videos keep at most this many frames each (video.SamplingPolicy), PDFs this many pages (pdfpages).
DEFAULT_MAX_FRAMES: Final = 32
DEFAULT_MAX_PAGES: Final = 10

DEVICE_CHOICES: Final = ("auto", "cpu", "cuda", "mps")
QUANT_CHOICES: Final = ("auto", "nf4", "int8", "int8-dynamic", "none")
DTYPE_CHOICES: Final = ("auto", "float32", "bfloat16", "float16")


def max_pixels(max_image_tokens: int) -> int:
    """The most pixels an image keeps for the model at this budget (loader threads shrink to this)."""
    return max_image_tokens * PIXELS_PER_TOKEN


def text_budget(min_image_tokens: int, max_image_tokens: int) -> tuple[int, int]:
    """The visual-token budget of screenshots and documents in an index whose photos get (min, max)."""
    return min_image_tokens * TEXT_BUDGET_FACTOR, max_image_tokens * TEXT_BUDGET_FACTOR


def max_frames() -> int:
    """Frames kept per video (UMSEARCH_MAX_FRAMES overrides; 1 to 1023)."""
    return _bounded_env("UMSEARCH_MAX_FRAMES", DEFAULT_MAX_FRAMES, 1, 1023)


def max_pages() -> int:
    """Pages indexed per PDF (UMSEARCH_MAX_PAGES overrides; 1 to 1023)."""
    return _bounded_env("UMSEARCH_MAX_PAGES", DEFAULT_MAX_PAGES, 1, 1023)


def _bounded_env(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        from .errors import UmsearchError

        raise UmsearchError(f"{name}={text} is not a whole number (expected {low} to {high})") from None
    return min(high, max(low, value))


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


def rescore_shortlist() -> int:
    """UMSEARCH_SHORTLIST: more photos rescored exactly per search (slower, finds more; `doctor --search`)."""
    try:
        return max(50, int(os.environ.get("UMSEARCH_SHORTLIST") or DEFAULT_SHORTLIST))
    except ValueError:
        return DEFAULT_SHORTLIST


def default_model() -> str:
    return os.environ.get("UMSEARCH_MODEL") or DEFAULT_MODEL


def default_rerank_model() -> str:
    return os.environ.get("UMSEARCH_RERANK_MODEL") or DEFAULT_RERANK_MODEL


def normalize_model_spec(spec: str) -> str:
    """The id an index records for a model: a hub id as given, or a local folder as an absolute path."""
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    return spec

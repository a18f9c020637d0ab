"""Model families: what tells GME and Qwen3-VL-Embedding apart before (or without) loading a model.

A family is found from a model folder's config.json (``model_type``): ``qwen2_vl`` is GME (gme-Qwen2-VL),
``qwen3_vl`` is Qwen3-VL-Embedding. An index records its family; each family has its own visual token
(28x28 pixels for GME, 32x32 for Qwen3-VL), its own quality presets ("best" is always the family's
reference budget) and its own resizing, which the indexer's loader threads run ahead of the model.

Cheap to import (no torch, no numpy): the CLI resolves budgets before any model is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError, UmsearchError
from .settings import QUALITY_PRESETS

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Family:
    name: str  # recorded in the index: "gme", "qwen3-vl"
    label: str  # for people: "GME", "Qwen3-VL-Embedding"
    module: str  # the module with load(), fit_image() and image_token_count()
    pixels_per_token: int
    presets: Mapping[str, tuple[int, int]]  # quality preset -> (min, max) visual tokens
    shortens: bool  # Matryoshka (MRL) training: a vector's first N values are a vector (--dim)
    clips: bool = False  # embeds a video's sampled frames as one video input too (the clip's own vector)

    def budget(self, quality: str) -> tuple[int, int]:
        try:
            return self.presets[quality]
        except KeyError:
            raise UmsearchError(f"unknown quality '{quality}' (expected one of {', '.join(self.presets)})") from None

    def quality_name(self, min_tokens: int, max_tokens: int) -> str:
        """The preset a budget belongs to, or 'custom' (--min/--max-image-tokens given by hand)."""
        for name, budget in self.presets.items():
            if budget == (min_tokens, max_tokens):
                return name
        return "custom"

    def fit_image(self, image: Image.Image, min_tokens: int, max_tokens: int) -> Image.Image:
        """The family's resizes, done ahead of the model (on a loader thread)."""
        return self.code().fit_image(image, min_tokens, max_tokens)

    def image_token_count(self, width: int, height: int, min_tokens: int, max_tokens: int) -> int:
        return self.code().image_token_count(width, height, min_tokens, max_tokens)

    def max_pixels(self, max_tokens: int) -> int:
        """The most pixels an image keeps for the model at this budget (loader threads shrink to this)."""
        return max_tokens * self.pixels_per_token

    def code(self) -> Any:
        """The family's module (imported on first use; importing it does not import torch)."""
        return import_module(self.module)


GME = Family("gme", "GME", "umsearch.gme", 28 * 28, QUALITY_PRESETS, shortens=False)
QWEN3_VL = Family(
    "qwen3-vl",
    "Qwen3-VL-Embedding",
    "umsearch.qwen3vl",
    32 * 32,
    # "best" is the reference Qwen3VLEmbedder's 4-1800 tokens (its published evaluation setting).
    {"fast": (128, 256), "balanced": (256, 576), "best": (4, 1800)},
    shortens=True,
    clips=True,
)
FAMILIES = {family.name: family for family in (GME, QWEN3_VL)}
_MODEL_TYPES = {"qwen2_vl": GME, "qwen3_vl": QWEN3_VL}


def family_named(name: str | None) -> Family:
    """The family an index recorded (indexes from before families existed are GME)."""
    if name is None:
        return GME
    try:
        return FAMILIES[name]
    except KeyError:
        raise UmsearchError(f"unknown model family '{name}' (this umsearch knows {', '.join(FAMILIES)})") from None


def family_of_dir(path: Path) -> Family:
    """The family of a model folder, from its config.json; ModelError when it is neither."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot read {path / 'config.json'}: {exc}"
        ) from None  # names the file, as a user would open it
    model_type = config.get("model_type") if isinstance(config, dict) else None
    family = _MODEL_TYPES.get(str(model_type))
    if family is None:
        raise ModelError(
            f"model in {path} is a '{model_type}' model; umsearch runs gme-Qwen2-VL (qwen2_vl) and "
            "Qwen3-VL-Embedding (qwen3_vl) models"
        )
    return family


def family_of_spec(spec: str) -> Family:
    """The family of a --model value without downloading anything: the local folder's or the Hugging Face
    cache's config.json when there is one, else the hub id's name (Qwen3-VL-Embedding ids), else GME.

    Loading checks the real config.json again, so a wrong guess here fails then, never silently.
    """
    local = Path(spec).expanduser()
    if local.is_dir():
        return family_of_dir(local)
    cached = _cached_config(spec)
    if cached is not None:
        try:
            return family_of_dir(cached.parent)
        except ModelError:
            pass
    return QWEN3_VL if "qwen3-vl" in spec.lower() else GME


def _cached_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # not a valid repo id, an unreadable cache: no hint
        return None
    return Path(found) if isinstance(found, str) else None

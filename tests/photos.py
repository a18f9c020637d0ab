"""Make real image files for tests: distinct, deterministic pictures in any format and mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def picture(seed: int, size: tuple[int, int] = (96, 64), mode: str = "RGB") -> Image.Image:
    """A distinct picture per seed: smooth colour gradients plus blocks, so images really differ."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-2, 2, (3, 2))
    channels = [np.clip(base[c] + slope[c, 0] * x + slope[c, 1] * y, 0, 255) for c in range(3)]
    arr = np.stack(channels, axis=-1).astype(np.uint8)
    for _ in range(3):
        bx, by = int(rng.integers(0, max(1, w - 8))), int(rng.integers(0, max(1, h - 8)))
        arr[by : by + h // 3, bx : bx + w // 3] = rng.integers(0, 255, 3)
    img = Image.fromarray(arr, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def write_photo(path: Path, seed: int = 0, size: tuple[int, int] = (96, 64), **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed, size).save(path, **save_args)
    return path

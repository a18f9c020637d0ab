"""The rescale step both Qwen-VL model families share: qwen-vl-utils' `smart_resize` after rounding.

GME (Qwen2-VL, 28 px per merged patch) and Qwen3-VL-Embedding (32 px) differ only in the factor and in
what they do around this step, so each family keeps its own rounding and ratio rules and calls this.
"""

from __future__ import annotations

import math


def into_pixel_range(
    height: float, width: float, rounded: tuple[int, int], min_pixels: float, max_pixels: float, factor: int
) -> tuple[int, int]:
    """`rounded` (height, width on multiples of `factor`) brought within [min_pixels, max_pixels], the aspect
    ratio of `height` x `width` kept and the sides still multiples of `factor`."""
    h_bar, w_bar = rounded
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        # max(): the reference floors a hair-thin panorama to 0 and then divides by it.
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar

"""Make real videos, screenshots and PDFs for tests: known scenes, known text, known pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Codec and pixel format per container, all encoders that PyAV's wheels ship.
CODECS = {
    ".mp4": "libx264",
    ".mov": "libx264",
    ".m4v": "libx264",
    ".mkv": "libx264",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
    ".3gp": "mpeg4",
}


@dataclass(frozen=True)
class Scene:
    """`seconds` of one look: a base colour with a small square drifting across it (motion, not a cut)."""

    colour: tuple[int, int, int]
    seconds: float
    pattern: int = 0  # a seed for a few fixed blocks, so scenes of similar colour still differ
    fade_to: tuple[int, int, int] | None = None  # the base colour drifts to this over the scene: change, no cut
    still: bool = False  # no moving square: a tripod shot of a still subject


def scene_frame(scene: Scene, t: float, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    frame = np.empty((height, width, 3), dtype=np.uint8)
    colour = np.array(scene.colour, dtype=np.float64)
    if scene.fade_to is not None:
        colour += (np.array(scene.fade_to) - colour) * min(1.0, t / scene.seconds)
    frame[:] = colour.astype(np.uint8)
    rng = np.random.default_rng(scene.pattern)
    for _ in range(3):
        x, y = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        frame[y : y + height // 5, x : x + width // 5] = rng.integers(0, 256, 3)
    if scene.still:
        return frame
    side = max(2, height // 8)
    x = int((t * width / 4) % max(1, width - side))  # moves a quarter of the width per second
    frame[height // 2 : height // 2 + side, x : x + side] = (255 - np.array(scene.colour)) // 1
    return frame


def write_video(
    path: Path,
    scenes: Sequence[Scene],
    *,
    fps: int = 10,
    size: tuple[int, int] = (160, 96),
    rotation: int = 0,
    codec: str | None = None,
) -> Path:
    """A video of the scenes back to back; cuts fall at the scenes' cumulative durations."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec or CODECS[path.suffix.lower()], rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        index = 0
        for scene in scenes:
            for i in range(round(scene.seconds * fps)):
                frame = av.VideoFrame.from_ndarray(scene_frame(scene, i / fps, size), format="rgb24")
                frame.pts = index
                index += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_times(scenes: Sequence[Scene]) -> list[float]:
    times, t = [], 0.0
    for scene in scenes[:-1]:
        t += scene.seconds
        times.append(t)
    return times


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def draw_text_image(lines: Sequence[str], size: tuple[int, int], *, background: str = "white") -> Image.Image:
    """A screen or page of dark text on a light background."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    font_size = max(10, size[0] // 24)
    font = _font(font_size)
    y = font_size
    for line in lines:
        draw.text((font_size, y), line, fill=(20, 20, 20), font=font)
        y += int(font_size * 1.6)
    return image


def write_screenshot(path: Path, lines: Sequence[str], size: tuple[int, int] = (1170, 2532)) -> Path:
    """A phone screenshot: a status bar and lines of text, saved as PNG without camera EXIF."""
    image = draw_text_image(lines, size)
    ImageDraw.Draw(image).rectangle((0, 0, size[0], size[1] // 30), fill=(240, 240, 240))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_pdf(path: Path, pages: Sequence[Sequence[str]], size: tuple[int, int] = (595, 842)) -> Path:
    """A PDF with one page per entry (A4 at 72 dpi by default), each page drawn with its text."""
    images = [draw_text_image(lines, size) for lines in pages]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=72.0)
    return path

"""Sample the frames that stand for a video: one at the start, one per scene cut, one at least every few
seconds while the picture keeps changing, at most a fixed number per video, each with its timestamp.

Decoding goes through PyAV (FFmpeg's libraries, in the `all` extra). One pass over the file, memory
bounded by the cap: only the frames kept so far are held, already shrunk to the model's budget, plus one
tiny signature per kept frame. Cuts are found the way PySceneDetect's content detector finds them: the
mean absolute difference of consecutive frames in HSV, on a 32x18 thumbnail, compared a few times per
second (`analysis_fps`), so the cost beyond decoding is small. The values below were chosen with
tests/test_video.py's fixtures and `benchmarks/video_sampling.py`; BENCHMARKS.md has the measurements.

The sampler knows nothing about the model: the index embeds each frame like a photo, and a model that
embeds clips (Qwen3-VL) can ask for `UNIFORM_1FPS` and take the frames and their times as one input.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from .errors import ImageLoadError
from .imageload import INSTALL_ALL, MAX_DECODED_PIXELS

if TYPE_CHECKING:
    import av
    import numpy as np
    from PIL import Image

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".3gp"})

_THUMB_SIZE = (32, 18)  # the cut detector's view of a frame: enough for a scene's colours and layout


@dataclass(frozen=True)
class SamplingPolicy:
    """Which frames of a video are kept (times in seconds)."""

    # A cut: consecutive analysed frames differ by more than this (mean absolute HSV difference, 0..1;
    # PySceneDetect's default of 27/255 ≈ 0.106). None turns cut detection off (uniform sampling).
    cut_threshold: float | None = 0.12
    # A new picture counts as a scene once it has lasted this long: a flash, a flicker or a burst of
    # quick cuts does not cost a frame each. The frame kept is the one at the cut.
    min_scene: float = 1.0
    # At least one frame this often while the picture changes (a slow pan, a dissolve, a walk).
    max_gap: float = 10.0
    # A periodic frame is skipped when it is this close to the last kept one (a still shot needs one frame).
    still_threshold: float = 0.02
    # The cap per video. A video longer than max_frames * max_gap spreads its periodic frames wider;
    # when cuts push past the cap, the frame least different from its predecessor is dropped.
    max_frames: int = 32
    # How often a frame is compared with the previous one (decoding still reads every frame).
    analysis_fps: float = 4.0
    # Videos longer than this decode only their key frames (encoders put one at most cuts, and phones one
    # every second or two), which is many times faster; None decodes every frame of any video.
    keyframes_only_after: float | None = 600.0

    def __post_init__(self) -> None:
        if self.max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        if self.max_gap <= 0 or self.analysis_fps <= 0 or self.min_scene < 0:
            raise ValueError("max_gap and analysis_fps must be positive, min_scene not negative")


DEFAULT_POLICY = SamplingPolicy()
# One frame a second up to 64, the clip sampling of Qwen3-VL-Embedding's reference.
UNIFORM_1FPS = SamplingPolicy(
    cut_threshold=None, min_scene=0.0, max_gap=1.0, still_threshold=0.0, max_frames=64, analysis_fps=1.0
)


@dataclass(frozen=True)
class Frame:
    image: Image.Image  # RGB, upright, at most max_pixels
    time: float  # seconds from the start of the video, as a player counts them (for `mpv --start`)
    reason: str  # "start", "cut", "interval" (why it was kept)


@dataclass(frozen=True)
class SampledVideo:
    frames: list[Frame]  # in time order, at least one
    width: int  # the picture as shown: rotation and pixel aspect applied
    height: int
    duration: float | None  # seconds, from the container (None when it does not say)
    codec: str
    complete: bool = True  # False: damaged data stopped decoding early; the frames before it are kept
    tags: dict[str, str] = field(default_factory=dict)  # container and stream metadata (creation_time, location …)


@dataclass
class _Kept:
    frame: Frame
    signature: np.ndarray
    novelty: float = math.inf  # difference from the kept frame before it (the first frame is never dropped)


@dataclass
class _Sampler:
    """The frame choice, apart from decoding: fed one analysed frame at a time, in order."""

    policy: SamplingPolicy
    max_gap: float
    kept: list[_Kept] = field(default_factory=list)
    pending: _Kept | None = None  # a cut's first frame, kept once its scene has lasted min_scene
    last_time: float | None = None  # of the last analysed frame
    last_signature: np.ndarray | None = None

    def wants(self, time: float) -> bool:
        """Whether the frame at `time` is analysed at all (the rest are only decoded)."""
        return self.last_time is None or time - self.last_time >= 1.0 / self.policy.analysis_fps - 1e-6

    def consider(self, time: float, signature: np.ndarray) -> str | None:
        """Why the analysed frame at `time` should be kept ("start", "interval"), held ("cut"), or None."""
        previous, self.last_signature, self.last_time = self.last_signature, signature, time
        if not self.kept:
            return "start"
        self._settle_pending(time, signature)
        threshold = self.policy.cut_threshold
        if threshold is not None and previous is not None and difference(previous, signature) > threshold:
            return "cut"  # a newer cut replaces a pending one: that scene did not last
        last = self.kept[-1]
        if (
            self.pending is None
            and time - last.frame.time >= self.max_gap - 1e-6
            and difference(last.signature, signature) >= self.policy.still_threshold
        ):
            return "interval"
        return None

    def take(self, frame: Frame, signature: np.ndarray) -> None:
        """Keep a frame `consider` asked for: at once, or (a cut) once its scene has lasted."""
        if frame.reason == "cut" and self.policy.min_scene > 0:
            self.pending = _Kept(frame, signature)
        else:
            self.pending = None
            self._keep(_Kept(frame, signature))

    def finish(self) -> list[Frame]:
        """The frames kept, once the video has ended (a cut to a scene that lasts to the end counts)."""
        if self.pending is not None and self.last_signature is not None:
            self._settle_pending(math.inf, self.last_signature)
        return [kept.frame for kept in self.kept]

    def _settle_pending(self, time: float, signature: np.ndarray) -> None:
        pending = self.pending
        if pending is None or time - pending.frame.time < self.policy.min_scene - 1e-6:
            return
        self.pending = None
        threshold = self.policy.cut_threshold or 0.0
        lasted = difference(pending.signature, signature) <= threshold
        new = difference(self.kept[-1].signature, pending.signature) > threshold  # not back to the kept scene
        if lasted and new:
            self._keep(pending)

    def _keep(self, kept: _Kept) -> None:
        if self.kept:
            kept.novelty = difference(self.kept[-1].signature, kept.signature)
        self.kept.append(kept)
        if len(self.kept) > self.policy.max_frames:
            self._drop_least_novel()

    def _drop_least_novel(self) -> None:
        index = min(range(1, len(self.kept)), key=lambda i: self.kept[i].novelty)
        del self.kept[index]
        if index < len(self.kept):  # its successor now follows the frame before it
            after = self.kept[index]
            after.novelty = difference(self.kept[index - 1].signature, after.signature)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two HSV signatures, 0 (same) .. 1.

    Hue is an angle: red sits at both ends of its scale, so its distance is taken around the circle
    (and doubled, so a hue change counts as much as a brightness change of the same share of its range).
    """
    import numpy as np

    delta = np.abs(a.astype(np.int16) - b.astype(np.int16))
    hue = np.minimum(delta[..., 0], 256 - delta[..., 0]) * 2
    return float((np.minimum(hue, 255).sum() + delta[..., 1:].sum()) / (delta.size * 255))


def sample_video(path: str, max_pixels: int, policy: SamplingPolicy = DEFAULT_POLICY) -> SampledVideo:
    """The frames that stand for the video at `path`, each shrunk to at most `max_pixels`.

    Raises ImageLoadError with the reason when the file is not a decodable video (or PyAV is missing).
    """
    try:
        import av
    except ImportError:
        raise ImageLoadError(f"unsupported format video ({INSTALL_ALL})") from None
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FileNotFoundError:
        raise
    except av.error.PermissionError as exc:
        raise ImageLoadError(exc.strerror.lower() if exc.strerror else "permission denied") from None
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise ImageLoadError(_open_failure(path, exc)) from None
    with container:
        return _sample(container, max_pixels, policy)


def _open_failure(path: str, exc: Exception) -> str:
    try:
        if os.path.getsize(path) == 0:
            return "not a recognised video format (empty file)"
    except OSError:
        pass
    return f"not a recognised video format ({_reason(exc)})"


def _reason(exc: Exception) -> str:
    import av

    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _sample(container: av.container.InputContainer, max_pixels: int, policy: SamplingPolicy) -> SampledVideo:
    import av

    stream = _video_stream(container)
    context = stream.codec_context
    width, height = context.width, context.height
    if width <= 0 or height <= 0:
        raise ImageLoadError("video stream without a picture size")
    if width * height > MAX_DECODED_PIXELS:
        raise ImageLoadError(f"video frames too large ({width}x{height}), refused as a possible decompression bomb")
    duration = _duration(container, stream)
    stream.thread_type = "AUTO"  # frame threads: decoding is the cost that does not shrink with the cap
    if policy.keyframes_only_after is not None and duration is not None and duration > policy.keyframes_only_after:
        context.skip_frame = "NONKEY"
        # Key frames are seconds apart: each one unlike the one before is a scene that lasted.
        policy = dataclasses.replace(policy, min_scene=0.0)
    aspect = _pixel_aspect(stream)
    max_gap = max(policy.max_gap, (duration or 0.0) / policy.max_frames)
    sampler = _Sampler(policy, max_gap)
    start = _start_time(stream)
    rotation = 0
    complete = True
    try:
        for frame in _decoded(container, stream):
            if frame.pts is None:
                continue
            time = max(0.0, seconds(frame.pts, stream) - start)
            if not sampler.wants(time):
                continue
            signature = _signature(frame)
            reason = sampler.consider(time, signature)
            if reason is not None:
                rotation = frame.rotation
                sampler.take(Frame(_picture(frame, max_pixels, aspect, rotation), round(time, 3), reason), signature)
    except av.error.FFmpegError as exc:
        if not sampler.kept:
            raise ImageLoadError(f"cannot decode video: {_reason(exc)}") from None
        complete = False
    except MemoryError:
        raise ImageLoadError("cannot decode video: out of memory") from None
    frames = sampler.finish()
    if not frames:
        raise ImageLoadError("no decodable frames in this video")
    shown_width = round(width * aspect)
    if rotation % 180:
        shown_width, height = height, shown_width
    tags = {**_tags(stream), **_tags(container)}
    return SampledVideo(frames, shown_width, height, duration, context.name or "unknown", complete, tags)


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The picture stream: the first video stream that is not an attached cover picture."""
    import av

    cover = av.stream.Disposition.attached_pic
    stream = next((s for s in container.streams.video if not s.disposition & cover), None)
    if stream is None:
        raise ImageLoadError("no video stream in this file (audio only?)")
    return stream


def _tags(source: av.container.InputContainer | av.video.stream.VideoStream) -> dict[str, str]:
    try:
        return {str(key).lower(): str(value) for key, value in dict(source.metadata).items()}
    except Exception:  # odd metadata must not fail the video
        return {}


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    for packet in container.demux(stream):
        yield from packet.decode()


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def seconds(pts: int, stream: av.video.stream.VideoStream) -> float:
    """A frame's presentation time in seconds (a stream without a time base counts in milliseconds)."""
    return float(pts * (stream.time_base or Fraction(1, 1000)))


def _start_time(stream: av.video.stream.VideoStream) -> float:
    """Timestamps count from the stream's first frame, as players show them (MPEG-TS starts at 1.4 s, say)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _pixel_aspect(stream: av.video.stream.VideoStream) -> float:
    """Anamorphic video (DV, some phones' slow motion) stores non-square pixels: show them square."""
    ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not ratio or ratio.numerator <= 0 or ratio.denominator <= 0:
        return 1.0
    value = float(ratio)
    return value if 0.25 <= value <= 4.0 else 1.0


def _signature(frame: av.VideoFrame) -> np.ndarray:
    import numpy as np
    from PIL import Image

    thumb = frame.reformat(width=_THUMB_SIZE[0], height=_THUMB_SIZE[1], format="rgb24", interpolation="AREA")
    return np.asarray(Image.fromarray(thumb.to_ndarray(), "RGB").convert("HSV"))


def _picture(frame: av.VideoFrame, max_pixels: int, aspect: float, rotation: int) -> Image.Image:
    """The frame as a photo: square pixels, upright, scaled (by FFmpeg, area averaging) into the budget."""
    width, height = frame.width * aspect, frame.height
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    image = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_image()
    if rotation % 360:
        # PyAV's rotation is the counter-clockwise turn the display matrix applies; so is PIL's rotate.
        image = image.rotate(rotation, expand=True)
    return image


def frame_at(path: str, time: float, max_pixels: int) -> Image.Image:
    """The frame shown `time` seconds into the video (the first one at or after it), upright, at most
    `max_pixels`: what a preview shows for a hit. Seeks to the key frame before it, then decodes forward."""
    try:
        import av
    except ImportError:
        raise ImageLoadError(f"unsupported format video ({INSTALL_ALL})") from None
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"
            start = _start_time(stream)
            if time > 0 and stream.time_base is not None:
                container.seek(int((time + start) / stream.time_base), stream=stream, backward=True)
            last = None
            for frame in _decoded(container, stream):
                if frame.pts is None:
                    continue
                last = frame
                if seconds(frame.pts, stream) - start >= time - 1e-3:
                    break
            if last is None:
                raise ImageLoadError("no decodable frames in this video")
            return _picture(last, max_pixels, _pixel_aspect(stream), last.rotation)
    except av.error.FFmpegError as exc:
        raise ImageLoadError(f"cannot decode video: {_reason(exc)}") from None


def read_header(path: str) -> tuple[dict[str, str], tuple[int, int]]:
    """A video's tags and picture size (as shown) without decoding a frame."""
    import av

    with av.open(path, metadata_errors="ignore") as container:
        stream = _video_stream(container)
        width = round(stream.codec_context.width * _pixel_aspect(stream))
        return {**_tags(stream), **_tags(container)}, (width, stream.codec_context.height)

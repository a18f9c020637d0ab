"""What sampling a video costs before the model runs, and how many frames it keeps per minute of footage.

    PYTHONPATH=. python benchmarks/video_sampling.py [--seconds 60] [--size 1280x720] [--workdir /tmp/umsearch-video]

Three kinds of footage are generated once (x264, 30 fps): a handheld walk (one shot, panning over a textured
scene with sensor noise), an edited clip (a cut every 4 s between textured scenes, each with motion) and a
tripod shot (still scene, a little noise). Each is sampled side by side by:

* `scene` — umsearch's default policy (start + cuts + at least every 10 s while changing, cap 32);
* `scene, keyframes` — the same policy decoding key frames only (what videos over 10 minutes get);
* `uniform 1 fps` — the plain alternative: one frame a second (Qwen3-VL's clip sampling, capped at 64).

Reported: wall and CPU seconds per minute of footage (decode + analysis + shrinking the kept frames to the
`best` budget) and frames kept per minute, i.e. the model calls a minute of footage will cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time
from pathlib import Path

import numpy as np

from umsearch.video import DEFAULT_POLICY, UNIFORM_1FPS, sample_video

BUDGET = 1280 * 28 * 28  # the `best` preset's pixels


def texture(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A photo-like texture: smooth gradients, blocks and fine grain, so the encoder has work to do."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 215, 3)
    slope = rng.uniform(-0.15, 0.15, (3, 2))
    image = np.stack([base[c] + slope[c, 0] * x + slope[c, 1] * y for c in range(3)], axis=-1)
    for _ in range(40):
        bx, by = int(rng.integers(0, width)), int(rng.integers(0, height))
        image[by : by + int(rng.integers(20, height // 4)), bx : bx + int(rng.integers(20, width // 4))] = rng.uniform(
            0, 255, 3
        )
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(path: Path, frames, fps: int, size: tuple[int, int]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def footage(kind: str, seconds: int, size: tuple[int, int], fps: int = 30):
    width, height = size
    rng = np.random.default_rng(1)
    if kind == "handheld walk":
        world = texture(7, (width * 3, height * 2))
        for i in range(seconds * fps):
            t = i / fps
            x = int((t / seconds) * width * 1.9 + 15 * np.sin(t * 3))
            y = int(height / 2 + 20 * np.sin(t * 2.1))
            crop = world[y : y + height, x : x + width].astype(np.int16) + rng.integers(-8, 8, (height, width, 3))
            yield np.clip(crop, 0, 255).astype(np.uint8)
    elif kind == "edited, a cut every 4 s":
        scenes = [texture(100 + s, (width + 200, height)) for s in range(seconds // 4 + 1)]
        for i in range(seconds * fps):
            t = i / fps
            scene = scenes[int(t // 4)]
            x = int((t % 4) * 40)
            yield scene[:, x : x + width]
    else:  # tripod
        still = texture(9, size).astype(np.int16)
        for _ in range(seconds * fps):
            yield np.clip(still + rng.integers(-4, 4, still.shape), 0, 255).astype(np.uint8)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--workdir", default="/tmp/umsearch-video")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    policies = {
        "scene": DEFAULT_POLICY,
        "scene, keyframes": dataclasses.replace(DEFAULT_POLICY, keyframes_only_after=0.0),
        "uniform 1 fps": UNIFORM_1FPS,
    }
    print(f"load before: {Path('/proc/loadavg').read_text().split()[:3]}; {os.cpu_count()} CPUs")
    print(f"{args.seconds} s of {size[0]}x{size[1]} at 30 fps per clip; figures per minute of footage")
    print("| footage | sampling | wall s / min | CPU s / min | frames kept / min | times (s) |")
    print("|---|---|---|---|---|---|")
    per_minute = 60 / args.seconds
    for kind in ("handheld walk", "edited, a cut every 4 s", "tripod"):
        path = work / f"{kind.split()[0].strip(',')}-{args.seconds}s-{size[0]}x{size[1]}.mp4"
        if not path.exists():
            write(path, footage(kind, args.seconds, size), 30, size)
        for name, policy in policies.items():
            sample_video(str(path), BUDGET, policy)  # warm the page cache and the codec
            start, cpu = time.perf_counter(), cpu_seconds()
            video = sample_video(str(path), BUDGET, policy)
            wall, used = time.perf_counter() - start, cpu_seconds() - cpu
            times = ", ".join(f"{f.time:g}" for f in video.frames[:12]) + (" …" if len(video.frames) > 12 else "")
            print(
                f"| {kind} | {name} | {wall * per_minute:.2f} | {used * per_minute:.2f} | "
                f"{len(video.frames) * per_minute:.0f} | {times} |"
            )
    print(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()

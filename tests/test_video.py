"""Videos become a few frames with timestamps: the start, each cut, a frame every so often, a cap per video."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from umsearch.errors import ImageLoadError
from umsearch.imageload import INSTALL_ALL
from umsearch.video import UNIFORM_1FPS, VIDEO_EXTENSIONS, SamplingPolicy, sample_video

from .media_support import CODECS, Scene, cut_times, write_video

pytest.importorskip("av")

BUDGET = 256 * 28 * 28
RED, GREEN, BLUE, YELLOW = (210, 30, 30), (30, 190, 40), (30, 40, 200), (220, 210, 40)


def dominant(image) -> tuple[int, int, int]:
    """The most common colour of a frame (its scene's base colour: the blocks and square cover less)."""
    pixels = np.asarray(image).reshape(-1, 3) // 16 * 16
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    return tuple(int(v) for v in values[counts.argmax()])


def close(colour: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def test_a_frame_at_the_start_and_after_each_cut_with_its_time(tmp_path):
    scenes = [Scene(RED, 3), Scene(GREEN, 4, pattern=1), Scene(BLUE, 2.5, pattern=2)]
    path = write_video(tmp_path / "cuts.mp4", scenes)
    video = sample_video(str(path), BUDGET)
    assert [f.reason for f in video.frames] == ["start", "cut", "cut"]
    assert video.frames[0].time == 0.0
    for frame, cut in zip(video.frames[1:], cut_times(scenes)):
        assert cut <= frame.time <= cut + 0.3  # found at the first compared frame after the cut
    for frame, scene in zip(video.frames, scenes):
        assert close(dominant(frame.image), scene.colour)
    assert (video.width, video.height) == (160, 96)
    assert video.duration == pytest.approx(9.5, abs=0.2)
    assert video.complete


def test_a_slow_change_is_sampled_every_max_gap_and_a_still_shot_once(tmp_path):
    scenes = [Scene(RED, 25, fade_to=BLUE, still=True), Scene(GREEN, 25, pattern=3, still=True)]
    path = write_video(tmp_path / "slow.mp4", scenes, fps=5)
    video = sample_video(str(path), BUDGET)
    times = [(f.reason, round(f.time)) for f in video.frames]
    # the fade never looks like a cut, but it keeps changing: every 10 s; then the still green scene
    # gets its cut frame and nothing more
    assert times == [("start", 0), ("interval", 10), ("interval", 20), ("cut", 25)]


def test_a_flash_shorter_than_min_scene_is_not_a_scene(tmp_path):
    scenes = [Scene(RED, 3, still=True), Scene((255, 255, 255), 0.3, still=True), Scene(RED, 3, still=True)]
    path = write_video(tmp_path / "flash.mp4", scenes)
    video = sample_video(str(path), BUDGET)
    assert [f.reason for f in video.frames] == ["start"]


def test_the_cap_keeps_the_most_different_frames_and_the_start(tmp_path):
    colours = [RED, GREEN, BLUE, YELLOW]
    scenes = [Scene(colours[i % 4], 1.5, pattern=i) for i in range(20)]
    path = write_video(tmp_path / "many.mp4", scenes)
    everything = sample_video(str(path), BUDGET, SamplingPolicy(max_frames=64))
    assert len(everything.frames) == 20
    capped = sample_video(str(path), BUDGET, SamplingPolicy(max_frames=6))
    assert len(capped.frames) == 6
    assert capped.frames[0].time == 0.0
    assert [f.time for f in capped.frames] == sorted(f.time for f in capped.frames)
    assert {f.time for f in capped.frames} <= {f.time for f in everything.frames}


def test_uniform_sampling_for_clip_models(tmp_path):
    path = write_video(tmp_path / "five.mp4", [Scene(RED, 5, still=True)])
    video = sample_video(str(path), BUDGET, UNIFORM_1FPS)
    assert [f.time for f in video.frames] == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("ext", sorted(VIDEO_EXTENSIONS))
def test_every_container_decodes(tmp_path, ext):
    assert ext in CODECS
    scenes = [Scene(RED, 1.5), Scene(BLUE, 1.5, pattern=4)]
    path = write_video(tmp_path / f"clip{ext}", scenes)
    video = sample_video(str(path), BUDGET)
    assert len(video.frames) == 2
    assert close(dominant(video.frames[1].image), BLUE)
    assert 1.5 <= video.frames[1].time <= 1.8


def test_frames_fit_the_budget_and_keep_the_shape(tmp_path):
    path = write_video(tmp_path / "wide.mp4", [Scene(RED, 1)], size=(1280, 720), fps=5)
    frame = sample_video(str(path), 128 * 28 * 28).frames[0]
    width, height = frame.image.size
    assert width * height <= 128 * 28 * 28
    assert width / height == pytest.approx(16 / 9, rel=0.02)


def test_phone_rotation_is_applied(tmp_path):
    # A phone held upright records landscape pixels and a display matrix that turns them clockwise.
    path = write_video(tmp_path / "portrait.mov", [Scene(RED, 1, still=True)], rotation=-90, size=(160, 96))
    video = sample_video(str(path), BUDGET)
    image = video.frames[0].image
    assert (video.width, video.height) == (96, 160)
    assert image.size[0] < image.size[1]


def test_rotation_direction_matches_a_player(tmp_path):
    import av

    path = tmp_path / "marked.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned 90° clockwise
        pixels = np.zeros((96, 160, 3), dtype=np.uint8)
        pixels[:, :40] = (255, 0, 0)  # the left edge is red: clockwise, it becomes the top
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    image = np.asarray(sample_video(str(path), BUDGET).frames[0].image)
    assert image[2, image.shape[1] // 2, 0] > 200  # top row is red
    assert image[-3, image.shape[1] // 2, 0] < 60


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", r"not a recognised video format \(empty file\)"),
        (b"hello, this is not a video at all" * 10, "not a recognised video format"),
        (bytes(range(256)) * 64, "not a recognised video format|no decodable frames|cannot decode video"),
    ],
)
def test_broken_files_fail_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason):
        sample_video(str(path), BUDGET)


def test_a_truncated_video_keeps_the_frames_before_the_damage_or_fails_with_a_reason(tmp_path):
    scenes = [Scene(RED, 4), Scene(BLUE, 4, pattern=1)]
    path = write_video(tmp_path / "cut.mkv", scenes)  # Matroska: playable up to where the bytes stop
    data = path.read_bytes()
    short = tmp_path / "short.mkv"
    short.write_bytes(data[: len(data) * 2 // 3])
    video = sample_video(str(short), BUDGET)
    assert video.frames[0].time == 0.0
    mp4 = write_video(tmp_path / "cut.mp4", scenes)
    (tmp_path / "short.mp4").write_bytes(mp4.read_bytes()[:300])  # the index (moov) is at the end: nothing left
    with pytest.raises(ImageLoadError, match="video"):
        sample_video(str(tmp_path / "short.mp4"), BUDGET)


def test_audio_only_file_says_so(tmp_path):
    import av

    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ImageLoadError, match="no video stream"):
        sample_video(str(path), BUDGET)


def test_without_pyav_videos_are_unsupported_with_the_fix(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", [Scene(RED, 1)])
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImageLoadError, match=f"unsupported format video \\({INSTALL_ALL}\\)".replace("[", "\\[")):
        sample_video(str(path), BUDGET)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sample_video(str(tmp_path / "gone.mp4"), BUDGET)


def test_long_videos_decode_key_frames_only_and_still_find_the_cuts(tmp_path):
    import dataclasses

    scenes = [Scene(RED, 3), Scene(GREEN, 3, pattern=1), Scene(BLUE, 3, pattern=2)]
    path = write_video(tmp_path / "long.mp4", scenes)  # x264 puts a key frame at each cut
    policy = dataclasses.replace(SamplingPolicy(), keyframes_only_after=0.0)
    video = sample_video(str(path), BUDGET, policy)
    assert [(f.reason, f.time) for f in video.frames] == [("start", 0.0), ("cut", 3.0), ("cut", 6.0)]


def test_frame_at_a_time_shows_that_scene(tmp_path):
    from umsearch.video import frame_at

    scenes = [Scene(RED, 2, still=True), Scene(GREEN, 2, still=True), Scene(BLUE, 2, still=True)]
    path = write_video(tmp_path / "three.mp4", scenes)
    for time, colour in ((0.0, RED), (2.0, GREEN), (3.5, GREEN), (4.1, BLUE)):
        assert close(dominant(frame_at(str(path), time, BUDGET)), colour)
    rotated = write_video(tmp_path / "r.mov", [Scene(RED, 1, still=True)], rotation=-90)
    image = frame_at(str(rotated), 0.5, BUDGET)
    assert image.size[0] < image.size[1]

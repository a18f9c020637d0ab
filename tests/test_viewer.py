"""Opening a hit: a video at its frame's time and a PDF at its page where an installed player allows it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from umsearch.tui.viewer import viewer_command


def install(folder: Path, *names: str) -> None:
    for name in names:
        program = folder / name
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_video_opens_at_the_time_in_mpv_or_vlc(bin_dir: Path) -> None:
    install(bin_dir, "xdg-open", "vlc")
    assert viewer_command("clip.mp4", "linux", time=12.5) == [
        str(bin_dir / "vlc"),
        "--start-time=12.500",
        os.path.abspath("clip.mp4"),
    ]
    install(bin_dir, "mpv")
    assert viewer_command("-x.mp4", "linux", time=3) == [
        str(bin_dir / "mpv"),
        "--start=3.000",
        os.path.abspath("-x.mp4"),
    ]


def test_pdf_opens_at_the_page_where_the_viewer_takes_one(bin_dir: Path) -> None:
    install(bin_dir, "xdg-open", "evince")
    assert viewer_command("a.pdf", "linux", page=4) == [
        str(bin_dir / "evince"),
        "--page-index=4",
        os.path.abspath("a.pdf"),
    ]
    install(bin_dir, "zathura")
    assert viewer_command("a.pdf", "linux", page=4)[:2] == [str(bin_dir / "zathura"), "--page=4"]


def test_without_such_a_player_the_system_opener_is_used(bin_dir: Path) -> None:
    install(bin_dir, "xdg-open")
    assert viewer_command("clip.mp4", "linux", time=12.5) == [str(bin_dir / "xdg-open"), os.path.abspath("clip.mp4")]
    assert viewer_command("a.pdf", "darwin", page=3) == ["open", os.path.abspath("a.pdf")]
    install(bin_dir, "mpv")
    # the start of a video and the first page need no special player
    assert viewer_command("clip.mp4", "linux", time=0.0) == [str(bin_dir / "xdg-open"), os.path.abspath("clip.mp4")]

"""Scanning finds every photo below the roots, and nothing else."""

import os
from pathlib import Path

from umsearch.scan import is_candidate_name, scan

from .photos import write_photo


def names(found, root: Path) -> list[str]:
    return sorted(os.path.relpath(f.path, root) for f in found)


def test_finds_images_recursively_by_extension_case_insensitively(tmp_path):
    write_photo(tmp_path / "a.jpg")
    write_photo(tmp_path / "sub" / "B.JPEG", format="JPEG")
    write_photo(tmp_path / "sub" / "deeper" / "c.PNG", format="PNG")
    for ext in ("webp", "gif", "bmp", "tif", "tiff"):
        write_photo(tmp_path / f"x.{ext}")
    (tmp_path / "notes.txt").write_text("not a photo")
    found = names(scan([tmp_path]), tmp_path)
    assert found == sorted(["a.jpg", "sub/B.JPEG", "sub/deeper/c.PNG", "x.webp", "x.gif", "x.bmp", "x.tif", "x.tiff"])


def test_skips_hidden_files_folders_and_macos_resource_forks(tmp_path):
    write_photo(tmp_path / "ok.jpg")
    write_photo(tmp_path / ".hidden.jpg")
    write_photo(tmp_path / "._ok.jpg")
    write_photo(tmp_path / ".thumbnails" / "t.jpg")
    assert names(scan([tmp_path]), tmp_path) == ["ok.jpg"]


def test_exclude_globs_match_names_and_paths(tmp_path):
    write_photo(tmp_path / "keep" / "a.jpg")
    write_photo(tmp_path / "cache" / "b.jpg")
    write_photo(tmp_path / "keep" / "c_thumb.jpg")
    found = names(scan([tmp_path], excludes=["cache", "*_thumb.jpg"]), tmp_path)
    assert found == ["keep/a.jpg"]


def test_follows_symlinks_without_looping(tmp_path):
    write_photo(tmp_path / "real" / "a.jpg")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    found = names(scan([tmp_path]), tmp_path)
    # The folder is visited once, through whichever path reaches it first.
    assert len(found) == 1 and found[0].endswith("a.jpg")


def test_broken_symlinks_and_temporary_files_are_skipped(tmp_path):
    write_photo(tmp_path / "a.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    write_photo(tmp_path / "b.jpg.part", format="JPEG")
    assert names(scan([tmp_path]), tmp_path) == ["a.jpg"]


def test_a_single_file_root_and_overlapping_roots_yield_each_file_once(tmp_path):
    photo = write_photo(tmp_path / "a.jpg")
    found = list(scan([tmp_path, photo]))
    assert [f.path for f in found] == [str(photo)]


def test_reports_size_and_mtime(tmp_path):
    photo = write_photo(tmp_path / "a.png", format="PNG")
    (found,) = scan([tmp_path])
    st = photo.stat()
    assert (found.size, found.mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_candidate_names():
    assert is_candidate_name("IMG_1.JPG")
    assert not is_candidate_name("IMG_1.jpg.crdownload")
    assert not is_candidate_name("IMG_1.jpg~")
    assert not is_candidate_name(".IMG_1.jpg.swp")
    assert is_candidate_name("doc.pdf") and is_candidate_name("clip.MOV")  # documents and videos are indexed too
    assert not is_candidate_name("notes.txt")

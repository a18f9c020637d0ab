"""HEIC/HEIF and AVIF decode (pillow-heif, or Pillow's own AVIF); camera RAW through rawpy; without the
`all` extra they are recorded as unsupported with the install command, never a strange failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from umsearch.errors import ImageLoadError
from umsearch.imageload import load_image
from umsearch.scan import raw_has_jpeg_sibling, scan
from umsearch.settings import max_pixels

from .photos import picture, write_photo

BUDGET = max_pixels(1280)
ROOT = Path(__file__).resolve().parent.parent


def write_heif(path: Path, seed: int = 0) -> Path:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    picture(seed, size=(80, 60)).save(path)
    return path


@pytest.mark.parametrize("name", ["photo.heic", "photo.HEIF", "photo.avif"])
def test_heif_and_avif_decode_to_rgb(tmp_path, name):
    path = write_heif(tmp_path / name, 3)
    loaded = load_image(str(path), BUDGET)
    assert loaded.image.mode == "RGB" and (loaded.width, loaded.height) == (80, 60)
    expected = picture(3, size=(80, 60)).getpixel((2, 2))
    assert all(abs(a - b) < 40 for a, b in zip(loaded.image.getpixel((2, 2)), expected))


def test_a_heic_file_with_a_jpeg_extension_still_decodes(tmp_path):
    path = write_heif(tmp_path / "phone.heic", 4)
    renamed = path.rename(tmp_path / "phone.jpg")
    assert load_image(str(renamed), BUDGET).image.size == (80, 60)


def test_raw_files_are_found_unless_a_same_named_jpeg_sits_beside_them(tmp_path):
    write_photo(tmp_path / "IMG_0001.JPG", 1)
    (tmp_path / "IMG_0001.CR2").write_bytes(b"raw")  # shot as RAW+JPEG: the JPEG stands for both
    (tmp_path / "IMG_0002.nef").write_bytes(b"raw")  # RAW only: indexed
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "IMG_0001.dng").write_bytes(b"raw")  # a JPEG in another folder does not count
    found = sorted(os.path.relpath(f.path, tmp_path) for f in scan([tmp_path]))
    assert found == ["IMG_0001.JPG", "IMG_0002.nef", "sub/IMG_0001.dng"]
    assert raw_has_jpeg_sibling(str(tmp_path / "IMG_0001.CR2"))
    assert not raw_has_jpeg_sibling(str(tmp_path / "IMG_0002.nef"))


def test_heif_avif_and_raw_extensions_are_scanned(tmp_path):
    for name in ("a.heic", "b.HEIF", "c.avif", "d.ARW", "e.dng", "f.rw2"):
        (tmp_path / name).write_bytes(b"x")
    assert len(list(scan([tmp_path]))) == 6


def test_a_damaged_raw_file_fails_with_a_reason(tmp_path):
    pytest.importorskip("rawpy")
    path = tmp_path / "broken.cr2"
    path.write_bytes(b"II*\x00" + os.urandom(4000))
    with pytest.raises(ImageLoadError, match="camera RAW"):
        load_image(str(path), BUDGET)


_WITHOUT_EXTRA = """
import sys
sys.modules["pillow_heif"] = None  # as if `pip install 'umsearch[all]'` had not been run
sys.modules["rawpy"] = None
from umsearch.errors import ImageLoadError
from umsearch.imageload import load_image
for path in sys.argv[1:]:
    try:
        load_image(path, 1000000)
        print("ok")
    except ImageLoadError as exc:
        print(exc)
"""


def test_without_the_extra_heic_and_raw_are_reported_as_unsupported(tmp_path):
    heic = write_heif(tmp_path / "a.heic", 1)
    disguised = write_heif(tmp_path / "b.heic", 2).rename(tmp_path / "b.jpg")
    raw = tmp_path / "c.nef"
    raw.write_bytes(b"MM\x00*" + bytes(100))
    paths = [str(heic), str(disguised), str(raw)]
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, *paths],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.splitlines()
    install = "(pip install 'umsearch[all]')"
    assert out == [
        f"unsupported format HEIC/HEIF {install}",
        f"unsupported format HEIC/HEIF {install}",
        f"unsupported format camera RAW {install}",
    ]


def test_pillow_reads_avif_itself_without_the_extra(tmp_path):
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow build has no AVIF support")
    avif = write_heif(tmp_path / "a.avif", 1)
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, str(avif)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.split()
    assert out == ["ok"]


def test_a_dng_is_read_through_its_embedded_jpeg_preview(tmp_path):
    pytest.importorskip("rawpy")
    from .dng_support import write_dng

    preview = picture(5, size=(48, 36))
    path = write_dng(tmp_path / "shot.dng", picture(6, size=(96, 72)), preview=preview)
    loaded = load_image(str(path), BUDGET)
    assert loaded.image.size == (48, 36)  # the preview, not the sensor data
    assert (loaded.width, loaded.height) == (96, 72)  # reported: the photo's own size
    assert all(abs(a - b) < 30 for a, b in zip(loaded.image.getpixel((3, 3)), preview.getpixel((3, 3))))


def test_a_dng_without_a_preview_is_developed(tmp_path):
    pytest.importorskip("rawpy")
    from .dng_support import write_dng

    path = write_dng(tmp_path / "bare.dng", picture(7, size=(64, 48)))
    loaded = load_image(str(path), BUDGET)
    assert loaded.image.mode == "RGB" and loaded.image.size == (64, 48)


@pytest.mark.slow
def test_raw_and_heic_photos_are_indexed_and_raw_is_skipped_beside_its_jpeg(tmp_path, tiny_embedder):
    pytest.importorskip("rawpy")
    from umsearch.index import Indexer
    from umsearch.store import Store

    from .dng_support import write_dng

    write_dng(tmp_path / "solo.dng", picture(8, size=(64, 48)), preview=picture(8, size=(32, 24)))
    write_dng(tmp_path / "pair.dng", picture(9, size=(64, 48)), preview=picture(9, size=(32, 24)))
    write_photo(tmp_path / "pair.jpg", 9)
    write_heif(tmp_path / "phone.heic", 10)
    with Store.open(tmp_path / "i.db") as store:
        summary = Indexer(store, lambda: tiny_embedder, max_pixels=BUDGET).index([str(tmp_path)])
        assert (summary.added, summary.failed) == (3, 0)
        assert {Path(row.path).name for row in store.iter_files()} == {"solo.dng", "pair.jpg", "phone.heic"}

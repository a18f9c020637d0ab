"""Any photo decodes to an upright RGB image of bounded size, or fails with a reason."""

import pytest
from PIL import Image

from umsearch.errors import ImageLoadError
from umsearch.imageload import load_image
from umsearch.settings import max_pixels

from .photos import picture, write_photo

BUDGET = max_pixels(1280)


def test_exif_orientation_is_applied_and_reported_size_is_upright(tmp_path):
    img = picture(1, size=(120, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    loaded = load_image(str(path), BUDGET)
    assert loaded.image.size == (60, 120)
    assert (loaded.width, loaded.height) == (60, 120)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    img = picture(2).convert("RGB")
    converted = img.convert(mode) if mode not in ("I;16",) else img.convert("L").convert("I;16")
    fmt = {"CMYK": "TIFF", "YCbCr": "JPEG", "F": "TIFF", "I": "TIFF", "I;16": "PNG", "LA": "PNG", "RGBA": "PNG"}
    ext = {"TIFF": "tif", "JPEG": "jpg", "PNG": "png"}[fmt.get(mode, "PNG")]
    path = tmp_path / f"m.{ext}"
    converted.save(path)
    loaded = load_image(str(path), BUDGET)
    assert loaded.image.mode == "RGB" and loaded.image.size == img.size


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    import numpy as np

    arr = np.full((32, 32), 30000, dtype=np.uint16)  # mid-grey in 16 bits
    path = tmp_path / "grey16.png"
    Image.fromarray(arr).save(path)
    pixel = load_image(str(path), BUDGET).image.getpixel((0, 0))
    assert 100 < pixel[0] < 140


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(path)
    assert load_image(str(path), BUDGET).image.getpixel((0, 0)) == (255, 255, 255)


def test_animated_images_use_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    r, g, b = load_image(str(path), BUDGET).image.getpixel((5, 5))
    assert r > 200 and b < 50


@pytest.mark.slow
def test_large_jpegs_are_decoded_at_reduced_scale(tmp_path):
    path = write_photo(tmp_path / "big.jpg", size=(4000, 3000))
    loaded = load_image(str(path), max_pixels(256))
    assert (loaded.width, loaded.height) == (4000, 3000)
    w, h = loaded.image.size
    assert w * h >= max_pixels(256) and w < 4000


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "not a recognised image format"), (b"hello, not an image", "not a recognised image format")],
)
def test_non_images_fail_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason):
        load_image(str(path), BUDGET)


def test_truncated_jpeg_fails_with_a_reason(tmp_path):
    path = write_photo(tmp_path / "t.jpg", size=(300, 200))
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(ImageLoadError):
        load_image(str(path), BUDGET)

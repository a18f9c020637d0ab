"""Every file gets a kind (photo, screenshot, document, video) from cheap facts, by the documented rules."""

from __future__ import annotations

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from umsearch.kinds import DOCUMENT, KINDS, PHOTO, SCREENSHOT, VIDEO, image_kind, kind_by_extension, kind_of_file

from .media_support import draw_text_image, write_screenshot
from .photos import picture, write_photo


def camera_exif(make: str = "Canon", model: str = "Canon EOS R6") -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 10:00:00"
    return exif


def test_the_four_kinds():
    assert KINDS == ("photo", "screenshot", "document", "video")


@pytest.mark.parametrize(
    "name, kind",
    [
        ("clip.mp4", VIDEO),
        ("CLIP.MOV", VIDEO),
        ("x.m4v", VIDEO),
        ("x.webm", VIDEO),
        ("x.mkv", VIDEO),
        ("x.avi", VIDEO),
        ("x.3gp", VIDEO),
        ("letter.PDF", DOCUMENT),
        ("photo.jpg", None),
    ],
)
def test_videos_and_pdfs_by_extension(name, kind):
    assert kind_by_extension(f"/p/{name}") == kind


@pytest.mark.parametrize(
    "name",
    [
        "Screenshot_20240101-101010_Chrome.jpg",  # Android
        "Screenshot 2024-01-01 at 10.10.10.png",  # macOS
        "Screen Shot 2019-05-01 at 9.00.00 AM.png",  # older macOS
        "Screenshot (12).png",  # Windows
        "Bildschirmfoto 2024-01-01 um 10.10.10.png",
        "Capture d’écran 2024-01-01 à 10.10.10.png",
        "スクリーンショット 2024-01-01 10.10.10.png",
        "截屏2024-01-01 10.10.10.png",
        "Снимок экрана 2024-01-01.png",
    ],
)
def test_screenshot_names_in_many_languages(tmp_path, name):
    path = write_photo(tmp_path / name, size=(300, 200))
    assert kind_of_file(str(path)) == SCREENSHOT


def test_ios_screenshot_says_so_in_exif_user_comment(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00Screenshot"
    path = tmp_path / "IMG_0042.PNG"
    picture(1, (300, 200)).save(path, exif=exif.tobytes())
    assert kind_of_file(str(path)) == SCREENSHOT


def test_macos_screenshot_says_so_in_xmp(tmp_path):
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description><exif:UserComment><rdf:Alt>'
        '<rdf:li xml:lang="x-default">Screenshot</rdf:li></rdf:Alt></exif:UserComment></rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    )
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    path = tmp_path / "untitled.png"
    picture(2, (300, 200)).save(path, pnginfo=info)
    assert kind_of_file(str(path)) == SCREENSHOT


def test_screenshot_tool_in_png_software(tmp_path):
    info = PngInfo()
    info.add_text("Software", "gnome-screenshot")
    path = tmp_path / "a.png"
    picture(3, (300, 200)).save(path, pnginfo=info)
    assert kind_of_file(str(path)) == SCREENSHOT


def test_screen_sized_png_is_a_screenshot_but_a_camera_jpeg_of_that_size_is_a_photo(tmp_path):
    shot = write_screenshot(tmp_path / "IMG_1001.PNG", ["Wi-Fi password: hunter2"], size=(1170, 2532))
    assert kind_of_file(str(shot)) == SCREENSHOT
    landscape = write_photo(tmp_path / "desk.png", size=(1920, 1080))
    assert kind_of_file(str(landscape)) == SCREENSHOT
    camera = write_photo(tmp_path / "IMG_1002.jpg", size=(1920, 1080), exif=camera_exif())
    assert kind_of_file(str(camera)) == PHOTO
    plain_jpeg = write_photo(tmp_path / "IMG_1003.jpg", size=(1920, 1080))  # lossy: a photo sent by a chat app
    assert kind_of_file(str(plain_jpeg)) == PHOTO
    odd_png = write_photo(tmp_path / "drawing.png", size=(1000, 700))
    assert kind_of_file(str(odd_png)) == PHOTO


def test_a_page_shaped_picture_of_paper_is_a_document(tmp_path):
    page = draw_text_image(["INVOICE 2024-117", "Total due: 41.20 EUR"], (1240, 1754))  # A4 at 150 dpi
    path = tmp_path / "IMG_2001.jpg"
    page.save(path)
    assert kind_of_file(str(path)) == DOCUMENT
    letter = draw_text_image(["Dear Sir"], (1275, 1650))  # US Letter
    letter.save(tmp_path / "b.png")
    assert kind_of_file(str(tmp_path / "b.png")) == DOCUMENT
    receipt = draw_text_image(["COFFEE 2.40", "TOTAL 2.40"], (400, 1400))
    receipt.save(tmp_path / "c.jpg")
    assert kind_of_file(str(tmp_path / "c.jpg")) == DOCUMENT


def test_a_page_shaped_colourful_picture_is_a_photo(tmp_path):
    path = write_photo(tmp_path / "poster.jpg", seed=5, size=(1240, 1754))
    assert kind_of_file(str(path)) == PHOTO


def test_a_page_shaped_image_at_scanner_resolution_is_a_document(tmp_path):
    path = write_photo(tmp_path / "x.png", seed=6, size=(1240, 1754), dpi=(300, 300))
    assert kind_of_file(str(path)) == DOCUMENT


def test_scanner_names_mean_a_document_unless_it_is_a_scanned_photo_print(tmp_path):
    letter = draw_text_image(["Dear Madam"], (1000, 800))
    letter.save(tmp_path / "scan_0001.jpg")
    assert kind_of_file(str(tmp_path / "scan_0001.jpg")) == DOCUMENT
    print_ = write_photo(tmp_path / "scan_0002.jpg", seed=7, size=(1200, 800))
    assert kind_of_file(str(print_)) == PHOTO
    app = draw_text_image(["Receipt"], (900, 900))
    app.save(tmp_path / "IMG_3.jpg", exif=camera_exif("Apple", "CamScanner"))
    assert kind_of_file(str(tmp_path / "IMG_3.jpg")) == DOCUMENT
    assert kind_of_file(str(write_photo(tmp_path / "scandinavia.jpg", size=(300, 200)))) == PHOTO


def test_camera_exif_wins_over_the_shape(tmp_path):
    page = draw_text_image(["a note on the fridge"], (1240, 1754))
    page.save(tmp_path / "IMG_4.jpg", exif=camera_exif("Apple", "iPhone 15"))
    assert kind_of_file(str(tmp_path / "IMG_4.jpg")) == PHOTO


def test_rules_without_a_file():
    assert image_kind("/x/IMG_1.jpg", 4000, 3000, image_format="JPEG", exif=camera_exif()) == PHOTO
    assert image_kind("/x/a.png", 2532, 1170, image_format="PNG") == SCREENSHOT  # either way up
    assert image_kind("/x/a.png", 1240, 1754, image_format="PNG", info={"dpi": (200.0, 200.0)}) == DOCUMENT
    assert image_kind("/x/a.png", 1240, 1754, image_format="PNG") == PHOTO  # no pixels to judge: photo
    assert image_kind("/x/a.jpg", 0, 0) == PHOTO


def test_damaged_files_default_to_photo(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"not an image")
    assert kind_of_file(str(path)) == PHOTO

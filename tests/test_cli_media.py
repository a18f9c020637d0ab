"""`umsearch` over a folder of photos, a video, a screenshot and a PDF, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umsearch.cli import app
from umsearch.video import sample_video

from .media_support import Scene, write_pdf, write_screenshot, write_video
from .photos import write_photo

pytest.importorskip("av")
pytest.importorskip("pypdfium2")

runner = CliRunner()
SCENES = [Scene((210, 30, 30), 2), Scene((30, 190, 40), 2, pattern=1), Scene((30, 40, 200), 2, pattern=2)]


def umsearch(*args: object) -> click.testing.Result:  # noqa: F821
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("media") / "Phone"
    write_photo(root / "IMG_0001.jpg", 1)
    write_video(root / "VID_0002.mp4", SCENES)
    write_screenshot(root / "Screenshot_20250101-120000.png", ["Boarding pass", "Gate 12"], size=(390, 844))
    write_pdf(root / "ticket.pdf", [["Parking ticket"], ["Lisbon", "Terms"]])
    db = root.parent / "index.db"
    result = umsearch("index", root, "--db", db, "--model", tiny_model_dir, "--quality", "fast", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 4
    return root, db


def query_json(db: Path, *args: object) -> list[dict]:
    result = umsearch("query", *args, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_frame_from_the_video_finds_it_first_with_its_time(library, tmp_path) -> None:
    root, db = library
    frame = sample_video(str(root / "VID_0002.mp4"), 256 * 28 * 28).frames[1]  # the cut to green, at ~2 s
    frame.image.save(tmp_path / "frame.png")
    hits = query_json(db, "--image", tmp_path / "frame.png")
    assert hits[0]["path"] == str(root / "VID_0002.mp4")
    assert hits[0]["kind"] == "video" and hits[0]["time"] == frame.time
    assert hits[0]["score"] > 0.99
    assert len({hit["path"] for hit in hits}) == len(hits) == 4  # each file once
    photo = next(hit for hit in hits if hit["path"].endswith(".jpg"))
    assert photo["kind"] == "photo" and "time" not in photo and "page" not in photo


def test_kind_filters_from_flags_and_the_search_language(library) -> None:
    root, db = library
    documents = query_json(db, "ticket", "--kind", "document")
    assert [(Path(h["path"]).name, h["kind"]) for h in documents] == [("ticket.pdf", "document")]
    assert documents[0]["page"] in (1, 2)
    shots = query_json(db, "gate kind:screenshot")
    assert [h["kind"] for h in shots] == ["screenshot"]
    assert len(query_json(db, "anything", "--kind", "photo,video")) == 2
    result = umsearch("query", "x", "--kind", "movie", "--db", db)
    assert result.exit_code == 1 and "'movie' is not a kind" in result.output


def test_the_table_says_where_in_the_file(library) -> None:
    root, db = library
    result = umsearch("query", "anything", "--db", db)
    assert result.exit_code == 0
    assert "▶ 0:0" in result.stdout and "p. " in result.stdout


def test_a_long_description_from_a_file_is_cut_with_a_notice(library, tmp_path) -> None:
    root, db = library
    short = tmp_path / "short.txt"
    short.write_text("A boarding pass\nfor gate 12.\n", encoding="utf-8")
    assert len(query_json(db, "--file", short)) == 4
    long = tmp_path / "long.txt"
    long.write_text("a red bicycle leaning on a blue wall by the sea " * 400, encoding="utf-8")
    result = umsearch("query", "--file", long, "--db", db, "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 4
    assert "description cut: the model reads the first" in result.stderr
    assert umsearch("query", "words", "--file", short, "--db", db).exit_code == 1


def test_status_counts_each_kind(library) -> None:
    root, db = library
    report = json.loads(umsearch("status", "--db", db, "--json").stdout)
    assert report["kinds"] == {"photo": 1, "screenshot": 1, "document": 1, "video": 1}
    text = umsearch("status", "--db", db).stdout
    assert "4 indexed, 0 failed (1 photo, 1 screenshot, 1 document, 1 video)" in text


def test_kinds_and_positions_cross_the_service_protocol() -> None:
    from umsearch.filters import Filters
    from umsearch.search import Hit
    from umsearch.service import protocol

    filters = Filters(kinds=("video", "document"))
    assert protocol.decode_filters(protocol.encode_filters(filters)) == filters
    with pytest.raises(protocol.ProtocolError, match="kinds"):
        protocol.decode_filters({**protocol.encode_filters(filters), "kinds": ["movie"]})
    for hit in (
        Hit(1, 0.5, "/v.mp4", 7, kind="video", time=83.4),
        Hit(2, 0.4, "/d.pdf", 8, kind="document", page=3),
        Hit(3, 0.3, "/p.jpg", 9),
    ):
        assert protocol.decode_hit(protocol.encode_hit(hit)) == hit

"""Hostile files and damaged indexes: every file is indexed or recorded with a reason, and the run finishes."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import umsearch.index as index_module
from umsearch.cli import app
from umsearch.errors import ImageLoadError
from umsearch.imageload import load_image
from umsearch.index import Indexer
from umsearch.settings import max_pixels
from umsearch.store import Store

from .hostile_support import make_hostile_folder, odd_name
from .photos import write_photo

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

BUDGET = max_pixels(1280)


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def indexer(store: Store, embedder) -> Indexer:
    return Indexer(store, lambda: embedder, max_pixels=BUDGET, batch_size=4, workers=2)


def test_every_hostile_file_is_indexed_or_recorded_with_its_reason(tmp_path, tiny_embedder):
    expected, _ = make_hostile_folder(tmp_path / "photos")
    with Store.open(tmp_path / "i.db") as store:
        summary = indexer(store, tiny_embedder).index([str(tmp_path / "photos")])
        rows = {row.path: row for row in store.iter_files()}
    assert set(rows) == set(expected)  # broken links and the loop add nothing, nothing is indexed twice
    for path, reason in expected.items():
        row = rows[path]
        if reason is None:
            assert row.status == "ok", (path, row.error)
        else:
            assert row.status == "failed" and reason in row.error, (path, row.error)
    failed = sum(reason is not None for reason in expected.values())
    assert (summary.added, summary.failed, summary.interrupted) == (len(expected) - failed, failed, False)
    assert sorted(p for p, _ in summary.failures) == sorted(p for p, r in expected.items() if r is not None)


def test_hostile_folder_through_the_cli_exit_code_counts_and_status(tmp_path, tiny_model_dir):
    expected, _ = make_hostile_folder(tmp_path / "photos")
    db = str(tmp_path / "i.db")
    failed = sum(reason is not None for reason in expected.values())

    result = run_cli("index", "--db", db, "--model", str(tiny_model_dir), "--json", str(tmp_path / "photos"))
    assert result.exit_code == 3, result.output
    counts = json.loads(result.stdout.splitlines()[0])
    assert counts["added"] == len(expected) - failed and counts["failed"] == failed

    status = run_cli("status", "--db", db, "--json")
    report = json.loads(status.stdout)
    assert (report["indexed"], report["failed"]) == (len(expected) - failed, failed)
    reasons = {item["path"]: item["reason"] for item in report["failures"]}
    for path, reason in expected.items():
        if reason is not None:
            assert reason in reasons[path]
    text = run_cli("status", "--db", db).stdout
    assert "decompression bomb" in text and "truncated file" in text

    # A second run changes nothing and still tells the truth about the failed files.
    again = run_cli("index", "--db", db, "--model", str(tiny_model_dir), "--json", str(tmp_path / "photos"))
    counts = json.loads(again.stdout.splitlines()[0])
    assert (counts["unchanged"], counts["failed"]) == (len(expected) - failed, failed)


def test_odd_file_names_round_trip_through_the_index_and_the_cli(tmp_path, tiny_model_dir):
    latin1 = write_photo(odd_name(tmp_path, b"caf\xe9\xff.jpg"), 1)
    newline = write_photo(tmp_path / "two\nlines.jpg", 2)
    db = str(tmp_path / "i.db")
    assert run_cli("index", "--db", db, "--model", str(tiny_model_dir), str(tmp_path)).exit_code == 0

    with Store.open(db) as store:
        assert {row.path for row in store.iter_files()} == {str(latin1), str(newline)}
        assert store.file_by_path(str(latin1)).status == "ok"
    # --paths writes the file names' own bytes
    raw = run_cli("query", "--db", db, "--paths", "anything").stdout_bytes
    assert os.fsencode(latin1) + b"\n" in raw and os.fsencode(newline) + b"\n" in raw
    # --json escapes undecodable bytes so that json.loads gives the same path back
    hits = json.loads(run_cli("query", "--db", db, "--json", "anything").stdout)
    assert {hit["path"] for hit in hits} == {str(latin1), str(newline)}
    assert os.path.exists(next(hit["path"] for hit in hits if hit["path"] == str(latin1)))
    # the table shows them on one line each, escaped
    table = run_cli("query", "--db", db, "anything").stdout
    flat = "".join(line.strip() for line in table.splitlines())  # the table folds long paths
    assert "caf\\xe9\\xff.jpg" in flat and "two\\nlines.jpg" in flat


def test_a_moved_folder_with_an_undecodable_name_keeps_its_rows(tmp_path, tiny_embedder):
    folder = odd_name(tmp_path, b"\xff\xfe-album")
    write_photo(folder / "a.jpg", 1)
    with Store.open(tmp_path / "i.db") as store:
        indexer(store, tiny_embedder).index([str(tmp_path)])
        folder.rename(tmp_path / "album")
        summary = indexer(store, tiny_embedder).index([str(tmp_path)])
        assert (summary.moved, summary.removed, summary.added) == (1, 0, 0)
        assert [row.path for row in store.iter_files([str(tmp_path / "album")])] == [str(tmp_path / "album/a.jpg")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their permissions")
def test_unreadable_files_are_recorded_as_permission_denied(tmp_path, tiny_embedder):
    path = write_photo(tmp_path / "secret.jpg", 1)
    path.chmod(0)
    with Store.open(tmp_path / "i.db") as store:
        summary = indexer(store, tiny_embedder).index([str(tmp_path)])
        assert summary.failed == 1 and "permission denied" in store.file_by_path(str(path)).error


def test_files_deleted_or_rewritten_between_scan_and_read(tmp_path, tiny_embedder, monkeypatch):
    keep, doomed, rewritten = (write_photo(tmp_path / f"{n}.jpg", k) for k, n in enumerate(("keep", "doomed", "rw")))
    real_scan = index_module.scan

    def scan_then_change(*args, **kwargs):
        yield from real_scan(*args, **kwargs)
        doomed.unlink()  # after the scan saw it, before it is read
        write_photo(rewritten, 99, size=(50, 50))

    monkeypatch.setattr(index_module, "scan", scan_then_change)
    with Store.open(tmp_path / "i.db") as store:
        summary = indexer(store, tiny_embedder).index([str(tmp_path)])
        assert (summary.added, summary.failed) == (2, 0)  # the deleted file is neither added nor a failure
        assert {row.path for row in store.iter_files()} == {str(keep), str(rewritten)}
        monkeypatch.setattr(index_module, "scan", real_scan)
        # The rewrite happened after the scan's stat, so the next run sees a new mtime and re-reads it.
        second = indexer(store, tiny_embedder).index([str(tmp_path)])
        assert second.unchanged + second.updated == 2
        assert store.file_by_path(str(rewritten)).hash == index_module.content_hash(str(rewritten))


def test_a_file_vanishing_after_being_indexed_is_removed_not_failed(tmp_path, tiny_embedder, monkeypatch):
    photo = write_photo(tmp_path / "a.jpg", 1)
    with Store.open(tmp_path / "i.db") as store:
        indexer(store, tiny_embedder).index([str(tmp_path)])
        write_photo(photo, 2, size=(40, 40))  # changed on disk ...
        real_scan = index_module.scan

        def scan_then_delete(*args, **kwargs):
            yield from real_scan(*args, **kwargs)
            photo.unlink()  # ... then deleted before it could be re-read

        monkeypatch.setattr(index_module, "scan", scan_then_delete)
        summary = indexer(store, tiny_embedder).index([str(tmp_path)])
        assert (summary.removed, summary.failed) == (1, 0)
        assert store.counts().indexed == 0


def test_panorama_beyond_pillows_limit_decodes_through_jpeg_draft(tmp_path):
    path = tmp_path / "pano.jpg"
    Image.new("L", (24_000, 4_000), 128).save(path, quality=50)  # 96 MP: over Pillow's 89 MP limit
    loaded = load_image(str(path), BUDGET)
    assert (loaded.width, loaded.height) == (24_000, 4_000)
    w, h = loaded.image.size
    assert w * h <= 4 * BUDGET * 4 and w / h == pytest.approx(6, rel=0.01)


def test_huge_non_jpeg_images_are_shrunk_right_after_decoding(tmp_path):
    path = tmp_path / "pano.png"
    Image.new("L", (12_000, 1_500), 90).save(path)  # 18 MP, no draft mode for PNG
    loaded = load_image(str(path), BUDGET)
    w, h = loaded.image.size
    assert (loaded.width, loaded.height) == (12_000, 1_500)
    assert w * h <= 4 * BUDGET * 1.01 and w / h == pytest.approx(8, rel=0.01)


# ---- damaged and foreign index files ------------------------------------------------------------
def _damaged_db(tmp_path: Path, kind: str, tiny_embedder) -> Path:
    path = tmp_path / f"{kind}.db"
    if kind == "random-bytes":
        path.write_bytes(os.urandom(50_000))
    elif kind == "foreign-sqlite":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE photos (name TEXT)")
        con.commit()
        con.close()
    else:
        write_photo(tmp_path / "p" / "a.jpg", 1)
        with Store.open(path) as store:
            indexer(store, tiny_embedder).index([str(tmp_path / "p")])
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if kind == "newer-schema":
                store.db.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 0)")
        if kind == "truncated":
            os.truncate(path, path.stat().st_size // 2)
    return path


@pytest.mark.parametrize("kind", ["random-bytes", "foreign-sqlite", "truncated", "newer-schema"])
@pytest.mark.parametrize("command", ["status", "index", "query"])
def test_damaged_or_foreign_index_gives_one_clear_line(tmp_path, tiny_embedder, tiny_model_dir, kind, command):
    db = str(_damaged_db(tmp_path, kind, tiny_embedder))
    before = Path(db).read_bytes()
    args = {
        "status": ["status", "--db", db],
        "index": ["index", "--db", db, "--model", str(tiny_model_dir), str(tmp_path)],
        "query": ["query", "--db", db, "--model", str(tiny_model_dir), "a cat"],
    }[command]
    result = run_cli(*args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and db in lines[0], result.stderr
    assert "Traceback" not in result.output and "unexpected" not in lines[0]
    assert {
        "random-bytes": "not an umsearch index",
        "foreign-sqlite": "another application",
        "truncated": "corrupt",
        "newer-schema": "newer umsearch",
    }[kind] in lines[0]
    assert Path(db).read_bytes() == before  # a foreign file is never modified


def test_an_unreadable_folder_keeps_its_indexed_photos(tmp_path, tiny_embedder, monkeypatch):
    write_photo(tmp_path / "locked" / "a.jpg", 1)
    write_photo(tmp_path / "open" / "b.jpg", 2)
    with Store.open(tmp_path / "i.db") as store:
        indexer(store, tiny_embedder).index([str(tmp_path)])
        real_scandir = os.scandir

        def scandir(path):
            if os.fspath(path).endswith("locked"):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)  # as a folder chmod 000 does for a normal user
        reported = []
        summary = indexer(store, tiny_embedder).index([str(tmp_path)], on_scan_error=lambda p, r: reported.append(p))
        assert reported == [str(tmp_path / "locked")]
        assert summary.removed == 0 and store.file_by_path(str(tmp_path / "locked" / "a.jpg")) is not None


def test_a_non_jpeg_over_the_limit_is_refused_before_decoding_and_pillow_keeps_its_own_guard(tmp_path):
    from PIL import Image as PILImage

    from .hostile_support import png_bomb

    path = png_bomb(tmp_path / "100mp.png", 10_000, 10_000)  # over 89.5 MP, under Pillow's hard 179 MP
    with pytest.raises(ImageLoadError, match="decompression bomb .*100000000 pixels"):
        load_image(str(path), BUDGET)
    assert PILImage.MAX_IMAGE_PIXELS == 89_478_485  # untouched for the rest of the program (a viewer, say)

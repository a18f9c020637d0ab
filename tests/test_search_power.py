"""Search power: metadata, filters inside the vector scan, query arithmetic, similar, dupes, migration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from umsearch import metadata
from umsearch.cli import app
from umsearch.filters import Filters, parse_date
from umsearch.index import Indexer
from umsearch.querylang import SearchRequest, Term
from umsearch.search import combine, search
from umsearch.session import Session
from umsearch.settings import max_pixels
from umsearch.store import IndexSettings, Store, bitcache, sign_bits

from .photos import picture
from .search_support import PLACES, write_exif_photo

DIM = 16
runner = CliRunner()
needs_geocoder = pytest.mark.skipif(metadata.geocoder_status() is not None, reason="reverse-geocoder not installed")


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


# ---- filters inside the scan (store level, synthetic vectors) -----------------------------------
@pytest.fixture
def crowded(tmp_path):
    """400 photos near the query direction and 12 rare ones far from it: only a filter finds the rare ones."""
    rng = np.random.default_rng(0)
    query = unit(rng.standard_normal(DIM))
    store = Store.open(tmp_path / "i.db")
    store.bind(IndexSettings("m", DIM, 256, 1280))
    with store.transaction():
        for n in range(400):
            meta = metadata.PhotoMeta(
                taken=parse_date("2020") + n, taken_source="exif", camera="Canon EOS R6", place="Lisbon, Portugal"
            )
            store.put_file(
                f"/lib/common/{n}.jpg",
                size=1,
                mtime_ns=1,
                digest=f"c{n}",
                vector=unit(query + 0.3 * rng.standard_normal(DIM)),
                meta=meta,
            )
        for n in range(12):
            meta = metadata.PhotoMeta(
                taken=parse_date("2025-07") + n, taken_source="exif", camera="NIKON D750", place="Shanghai, China"
            )
            store.put_file(
                f"/lib/rare 稀有/{n}.png",
                size=1,
                mtime_ns=1,
                digest=f"r{n}",
                vector=unit(-query + 0.3 * rng.standard_normal(DIM)),
                meta=meta,
            )
    yield store, query
    store.close()


def rare_paths(hits):
    return {h.path for h in hits if "/rare" in h.path}


@pytest.mark.parametrize(
    "filters",
    [
        Filters(folders=("/lib/rare 稀有",)),
        Filters(after=parse_date("2025")),
        Filters(after=parse_date("2025-07"), before=parse_date("2025-08")),
        Filters(types=("png",)),
        Filters(camera="nikon"),
        Filters(place="china"),
        Filters(place="Shanghai", camera="D750", types=("png",)),
    ],
)
@pytest.mark.parametrize("selective", [1.0, 0.0], ids=["scan-the-passing", "mask-the-full-scan"])
def test_a_selective_filter_still_returns_a_full_page(crowded, filters, selective, monkeypatch):
    # 1.0: only the photos that pass are scanned; 0.0: all are scanned and the others masked out.
    monkeypatch.setattr(bitcache, "SELECTIVE", selective)
    store, query = crowded
    assert rare_paths(search(store, query, 10)) == set()  # unfiltered, the rare photos are nowhere near
    hits = search(store, query, 10, filters)
    assert len(hits) == 10 and rare_paths(hits) == {h.path for h in hits}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_that_match_nothing_return_nothing(crowded):
    store, query = crowded
    for filters in (
        Filters(camera="Hasselblad"),
        Filters(folders=("/elsewhere",)),
        Filters(before=parse_date("1999")),
        Filters(types=("gif",)),
    ):
        assert search(store, query, 10, filters) == []


def test_min_score_sort_by_date_and_excluded_ids(crowded):
    store, query = crowded
    best = search(store, query, 5)
    assert all(h.score >= best[-1].score for h in search(store, query, 50, min_score=best[-1].score))
    assert len(search(store, query, 50, min_score=best[-1].score)) == 5
    by_date = search(store, query, 20, sort="date")
    assert [h.taken for h in by_date] == sorted((h.taken for h in by_date), reverse=True)
    assert {h.file_id for h in by_date} == {h.file_id for h in search(store, query, 20)}
    skip = frozenset({best[0].file_id})
    assert best[0].file_id not in {h.file_id for h in search(store, query, 5, Filters(exclude_ids=skip))}


def test_moving_a_file_moves_it_between_folder_filters(crowded):
    store, query = crowded
    row = store.file_by_path("/lib/common/0.jpg")
    store.move_file(row.id, "/lib/rare 稀有/moved.png", size=1, mtime_ns=2)
    found = search(store, query, 20, Filters(folders=("/lib/rare 稀有",), types=("png",)))
    assert "/lib/rare 稀有/moved.png" in {h.path for h in found}


# ---- query arithmetic ------------------------------------------------------------------------------
def test_combine_is_a_weighted_sum_of_unit_vectors_minus_negatives_renormalised():
    a, b, c = np.array([3.0, 0, 0]), np.array([0, 2.0, 0]), np.array([0, 0, 5.0])
    got = combine([(a, 1.0), (b, 0.5)], [(c, 0.5)])
    assert np.allclose(got, unit([1.0, 0.5, -0.5]))
    with pytest.raises(Exception, match="cancel"):
        combine([(a, 1.0)], [(a * 2, 1.0)])


@pytest.mark.slow
def test_a_request_vector_combines_each_term_embedded_alone(tiny_embedder, tmp_path):
    image = write_exif_photo(tmp_path / "x.jpg", 3)
    request = SearchRequest(
        positives=(Term("beach"), Term("sea", image=str(image), weight=2.0)),
        negatives=(Term("people", weight=0.5), Term(image=str(image), weight=0.25)),
    )
    with Session(Store.open(tmp_path / "i.db"), embedder_factory=lambda *a: tiny_embedder) as session:
        got = session.query_vector(request)
    from PIL import Image

    with Image.open(image) as img:
        pic = img.convert("RGB")
    e = tiny_embedder.embed_query
    expected = combine(
        [(e(text="beach"), 1.0), (e(text="sea", image=pic), 2.0)],
        [(e(text="people"), 0.5), (e(image=pic), 0.25)],
    )
    assert np.allclose(got, expected, atol=1e-5)


# ---- end to end through the CLI with the tiny model --------------------------------------------------
@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("lib")
    for i in range(4):
        write_exif_photo(
            root / "portugal" / f"lisbon_{i}.jpg",
            i,
            taken=f"2025:07:{10 + i:02d} 12:00:00",
            make="Canon",
            model="Canon EOS R6",
            gps=PLACES["lisbon"],
        )
    for i in range(3):
        write_exif_photo(
            root / "portugal" / f"porto_2019_{i}.jpg",
            10 + i,
            taken=f"2019:07:{10 + i:02d} 09:00:00",
            make="Canon",
            model="Canon EOS R6",
            gps=PLACES["porto"],
        )
    for i in range(3):
        write_exif_photo(
            root / "spain" / f"madrid_{i}.jpg",
            20 + i,
            taken=f"2025:08:{10 + i:02d} 18:00:00",
            make="NIKON CORPORATION",
            model="NIKON D750",
            gps=PLACES["madrid"],
        )
    write_exif_photo(root / "中文 📷" / "海滩 🌊.jpg", 30, taken="2024:02:01 08:00:00", gps=PLACES["shanghai"])
    picture(40, (160, 120)).save(root / "misc" / "original.jpg") if (root / "misc").mkdir() is None else None
    picture(40, (160, 120)).resize((80, 60)).save(root / "misc" / "small copy.png")
    picture(40, (160, 120)).save(root / "misc" / "re-encoded.jpg", quality=60)
    picture(41, (160, 120)).save(root / "misc" / "other.png")
    db = root.parent / f"{root.name}.db"
    # As tiny_embedder, which the tests compare with: its budget (a new index on a CPU would get fast) and float32
    # (a module fixture runs before the per-test environment that pins it).
    args = [
        "--db",
        str(db),
        "--model",
        str(tiny_model_dir),
        "--quality",
        "best",
        "--dtype",
        "float32",
        "--quant",
        "none",
    ]
    result = runner.invoke(app, ["index", str(root), *args])
    assert result.exit_code == 0, result.output
    return root, db


def cli_json(db, *args):
    result = runner.invoke(app, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def names(hits):
    return {Path(h["path"]).name for h in hits}


@pytest.mark.slow
@needs_geocoder
def test_the_example_question_in_one_command(library):
    root, db = library
    hits = cli_json(db, "query", "beach after:2025-06 before:2025-09 place:Portugal -people", "-n", "20")
    assert names(hits) == {f"lisbon_{i}.jpg" for i in range(4)}
    assert all(h["place"] == "Lisbon, Portugal" and h["taken"].startswith("2025-07") for h in hits)
    flags = cli_json(
        db,
        "query",
        "beach",
        "--after",
        "2025-06",
        "--before",
        "2025-09",
        "--place",
        "portugal",
        "--not",
        "people",
        "-n",
        "20",
    )
    assert [h["path"] for h in flags] == [h["path"] for h in hits]


@pytest.mark.slow
def test_everyday_dates_in_the_query_text_and_the_flags(library, monkeypatch):
    from datetime import datetime

    from umsearch import dates

    root, db = library
    monkeypatch.setattr(dates, "now_wall_clock", lambda: datetime(2025, 11, 19, 15, 30))
    summer = {f"lisbon_{i}.jpg" for i in range(4)} | {f"madrid_{i}.jpg" for i in range(3)}
    assert names(cli_json(db, "query", "a photo last summer", "-n", "50")) == summer
    assert (
        names(cli_json(db, "query", "a photo", "--after", "last summer", "--before", "in september", "-n", "50"))
        == summer
    )
    assert names(cli_json(db, "query", "海滩 2024年2月", "-n", "50")) == {"海滩 🌊.jpg"}
    assert names(cli_json(db, "query", "a photo 2019..2019", "-n", "50")) == {f"porto_2019_{i}.jpg" for i in range(3)}


@pytest.mark.slow
def test_each_cli_filter(library):
    root, db = library
    q = ("query", "a photo", "-n", "50")
    assert names(cli_json(db, *q, "--camera", "nikon")) == {f"madrid_{i}.jpg" for i in range(3)}
    assert names(cli_json(db, *q, "--in", str(root / "spain"))) == {f"madrid_{i}.jpg" for i in range(3)}
    assert names(cli_json(db, *q, "--type", "png")) == {"small copy.png", "other.png"}
    assert names(cli_json(db, *q, "--before", "2020")) == {f"porto_2019_{i}.jpg" for i in range(3)}
    by_date = cli_json(db, *q, "--camera", "Canon", "--sort", "date")
    assert [h["taken"] for h in by_date] == sorted((h["taken"] for h in by_date), reverse=True) and len(by_date) == 7
    everything = cli_json(db, *q)
    assert cli_json(db, *q, "--min-score", str(everything[2]["score"])) == everything[:3]


@needs_geocoder
def test_place_filter_knows_countries_regions_and_cities(library):
    root, db = library
    q = ("query", "a photo", "-n", "50")
    assert names(cli_json(db, *q, "--place", "Porto")) == {f"porto_2019_{i}.jpg" for i in range(3)}
    assert names(cli_json(db, *q, "--place", "spain")) == {f"madrid_{i}.jpg" for i in range(3)}


@pytest.mark.slow
def test_chinese_query_and_non_ascii_paths(library):
    root, db = library
    hits = cli_json(db, "query", "海滩 日落", "--in", str(root / "中文 📷"))
    assert [h["path"] for h in hits] == [str(root / "中文 📷" / "海滩 🌊.jpg")]
    same = cli_json(db, "similar", str(root / "中文 📷" / "海滩 🌊.jpg"), "-n", "3")
    assert str(root / "中文 📷" / "海滩 🌊.jpg") not in {h["path"] for h in same} and len(same) == 3


@pytest.mark.slow
def test_similar_uses_the_stored_vector_or_embeds_an_outside_photo(library, tmp_path):
    root, db = library
    hits = cli_json(db, "similar", str(root / "misc" / "original.jpg"), "-n", "2")
    assert names(hits) == {"small copy.png", "re-encoded.jpg"}  # itself left out, its copies first
    outside = tmp_path / "outside.jpg"
    picture(40, (160, 120)).save(outside, quality=90)
    assert names(cli_json(db, "similar", str(outside), "-n", "3")) == {
        "original.jpg",
        "small copy.png",
        "re-encoded.jpg",
    }
    assert names(cli_json(db, "similar", str(root / "misc" / "original.jpg"), "--type", "png", "-n", "1")) == {
        "small copy.png"
    }


def test_dupes_groups_resized_and_reencoded_copies(library):
    root, db = library
    groups = cli_json(db, "dupes", "--threshold", "0.99")
    copies = [g for g in groups if any(p.endswith("original.jpg") for p in g["paths"])]
    assert len(copies) == 1
    assert {Path(p).name for p in copies[0]["paths"]} == {"original.jpg", "small copy.png", "re-encoded.jpg"}
    assert all(len(g["paths"]) >= 2 for g in groups)


@pytest.mark.slow
def test_query_terms_and_images_from_the_command_line(library, tiny_embedder):
    root, db = library
    original = str(root / "misc" / "original.jpg")
    plain = cli_json(db, "query", "--image", original, "-n", "3")
    assert plain[0]["path"] == original
    hits = cli_json(db, "query", "--image", original, "--not-image", original, "--and", "a city^0.1", "-n", "30")
    from PIL import Image

    with Image.open(original) as img:
        pic = img.convert("RGB")
    e = tiny_embedder.embed_query
    expected = combine([(e(image=pic), 1.0), (e(text="a city"), 0.1)], [(e(image=pic), 0.5)])
    with Store.open(db, create=False) as store:
        for hit in hits:
            stored = unit(store.vector(hit["id"]))
            assert hit["score"] == pytest.approx(float(stored @ expected), abs=1e-4)
    result = runner.invoke(app, ["query", "--not", "people", "--db", str(db)])
    assert result.exit_code == 1 and "not only -negative terms" in result.output


def test_bad_filter_values_are_one_line_errors(library):
    root, db = library
    for args in (["--after", "someday soon"], ["--sort", "random"], ["--type", ","]):
        result = runner.invoke(app, ["query", "x", "--db", str(db), *args])
        assert (
            result.exit_code == 1 and "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
        )


# ---- migration of an index built before this change -------------------------------------------------
def test_an_index_built_by_the_m001_code_migrates_without_re_embedding(tmp_path):
    from . import legacy_store_m001 as legacy

    root = tmp_path / "photos"
    paths = [
        write_exif_photo(
            root / "a.jpg", 1, taken="2025:07:14 10:00:00", make="Canon", model="Canon EOS R6", gps=PLACES["lisbon"]
        ),
        write_exif_photo(root / "sub" / "b.png", 2),
    ]
    rng = np.random.default_rng(1)
    vectors = [unit(rng.standard_normal(DIM)) for _ in paths]
    db = tmp_path / "old.db"
    with legacy.Store.open(db) as old:
        old.bind(legacy.IndexSettings("m", DIM, 256, 1280))
        for path, vector in zip(paths, vectors):
            st = path.stat()
            old.put_file(str(path), size=st.st_size, mtime_ns=st.st_mtime_ns, digest=path.name, vector=vector)

    def no_model():
        raise AssertionError("the migration must not re-embed")

    with Store.open(db) as store:
        ids = [store.file_by_path(str(p)).id for p in paths]
        for file_id, vector in zip(ids, vectors):
            assert np.allclose(store.vector(file_id), vector)
        assert [h.file_id for h in search(store, vectors[1], 1)] == [ids[1]]
        assert [h.path for h in search(store, vectors[0], 5, Filters(types=("png",)))] == [str(paths[1])]
        assert len(store.files_missing_metadata()) == 2
        summary = Indexer(store, no_model, max_pixels=max_pixels(1280)).index([str(root)])
        assert (summary.unchanged, summary.added, summary.updated) == (2, 0, 0)
        assert store.files_missing_metadata() == []
        hits = search(store, vectors[1], 5, Filters(camera="EOS", after=parse_date("2025-07")))
        assert [h.path for h in hits] == [str(paths[0])]
        if metadata.geocoder_status() is None:
            assert hits[0].place == "Lisbon, Portugal"
        # the float vec0 table was replaced (floats stored once), and so was the sign-bit one (numpy scans)
        assert store.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'vectors'").fetchone() is None
        assert {r[0] for r in store.db.execute("SELECT id FROM embeddings")} == set(ids)
        bits = dict(store.db.execute("SELECT id, bits FROM embeddings"))
        assert all(bits[i] == sign_bits(store.vector(i)) for i in ids)  # SimHash bits, remade by m007


# ---- metadata extraction -----------------------------------------------------------------------------
def test_metadata_from_exif_and_fallbacks(tmp_path):
    shot = write_exif_photo(
        tmp_path / "s.jpg", 1, taken="2024:12:31 23:59:58", make="FUJIFILM", model="X-T5", gps=(-33.8688, 151.2093)
    )
    meta = metadata.extract_metadata(str(shot))
    assert (meta.taken_source, meta.taken, meta.camera) == ("exif", parse_date("2025") - 2, "FUJIFILM X-T5")
    assert meta.latitude == pytest.approx(-33.8688, abs=1e-3) and meta.longitude == pytest.approx(151.2093, abs=1e-3)
    assert (meta.width, meta.height) == (96, 64)
    if metadata.geocoder_status() is None:
        assert meta.place and meta.place.endswith("Australia")
    plain = tmp_path / "p.jpg"
    picture(2).save(plain)
    os.utime(plain, ns=(0, parse_date("2001-02-03") * 10**9))
    fallback = metadata.extract_metadata(str(plain))
    assert fallback.taken_source == "mtime" and fallback.camera is None and fallback.place is None
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    assert metadata.extract_metadata(str(broken)).taken_source == "mtime"


# ---- the unfiltered coarse scan's bit matrix ---------------------------------------------------------
def test_bit_matrix_follows_every_change_and_is_reused_from_its_side_file(crowded, tmp_path):

    store, query = crowded
    before = search(store, query, 3)
    side = bitcache.cache_path(store.path)
    assert side.exists()
    new = store.put_file("/lib/new.jpg", size=1, mtime_ns=1, digest="n", vector=query)
    assert search(store, query, 1)[0].file_id == new  # a new vector is seen at once
    store.delete_files([new])
    assert [h.file_id for h in search(store, query, 3)] == [h.file_id for h in before]
    with Store.open(store.path, create=False) as other:  # another process: reads the saved matrix
        assert (
            bitcache.load(other.db, other.path, other.vectors_generation()).ids.tolist()
            == store._bit_matrix().ids.tolist()
        )
    side.write_bytes(b"damaged")
    store._bits = None
    assert [h.file_id for h in search(store, query, 3)] == [h.file_id for h in before]


def test_preview_without_a_terminal_prints_the_plain_table(library):
    root, db = library
    result = runner.invoke(app, ["query", "a photo", "--preview", "-n", "2", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "score" in result.stdout


def test_a_broad_filter_gives_the_same_page_as_no_filter_when_all_top_photos_pass(crowded):
    store, query = crowded
    assert [h.file_id for h in search(store, query, 10, Filters(camera="canon", before=parse_date("2021")))] == [
        h.file_id for h in search(store, query, 10)
    ]

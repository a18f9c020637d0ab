"""Search that holds on any distribution: SimHash bits, filter codes beside the bit matrix, the recall check.

The figures at 100k and 1M photos are benchmarks (benchmarks/search_scale.py, BENCHMARKS.md); these tests
check the properties they rest on, on small synthetic sets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from umsearch import doctor
from umsearch.cli import app
from umsearch.filters import Filters, parse_date
from umsearch.metadata import PhotoMeta
from umsearch.search import search
from umsearch.searchcheck import check_recall
from umsearch.store import IndexSettings, Store, bitcache, simhash, vectors

DIM = 384


def anisotropic(count: int, seed: int = 0) -> np.ndarray:
    """Clustered vectors shaped like LLM embeddings: power-law variance per dimension, a common offset
    (unrelated vectors have cosine ~0.9) and two large, nearly constant dimensions."""
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(99)
    centres = fixed.standard_normal((40, DIM))
    vectors_ = centres[rng.integers(0, 40, count)] + 0.7 * rng.standard_normal((count, DIM))
    scale = (np.arange(DIM) + 1.0) ** -0.75
    fixed.shuffle(scale)
    offset = fixed.standard_normal(DIM) * 0.25
    shaped = vectors_ * scale + offset
    shaped[:, [3, 77]] += [2.0, -2.0]
    return (shaped / np.linalg.norm(shaped, axis=1, keepdims=True)).astype(np.float32)


def filled_store(path: Path, vectors_: np.ndarray) -> Store:
    store = Store.open(path)
    store.bind(IndexSettings("m", vectors_.shape[1], 256, 1280))
    with store.transaction():
        for n, vector in enumerate(vectors_):
            meta = PhotoMeta(taken=parse_date("2020") + n * 3600, taken_source="exif", camera=f"Cam {n % 7}")
            store.put_file(f"/lib/{n % 10}/{n}.jpg", size=1, mtime_ns=1, digest=str(n), vector=vector, meta=meta)
    return store


# ---- SimHash -----------------------------------------------------------------------------------------
def test_the_share_of_differing_bits_estimates_the_angle_whatever_the_distribution():
    points = anisotropic(400)
    bits = np.unpackbits(simhash.pack(simhash.project(points)), axis=1)[:, :DIM].astype(bool)
    plain = points > 0
    pairs = np.random.default_rng(1).integers(0, len(points), (300, 2))
    angles = np.arccos(np.clip(np.einsum("ij,ij->i", points[pairs[:, 0]], points[pairs[:, 1]]), -1, 1)) / np.pi
    differing = (bits[pairs[:, 0]] != bits[pairs[:, 1]]).mean(axis=1)
    plain_differing = (plain[pairs[:, 0]] != plain[pairs[:, 1]]).mean(axis=1)
    # Close to the angle (a bias of ~1% is the same for every pair, so it never changes a ranking) and
    # following it closely; the components' own signs do not.
    assert abs(float(np.mean(differing - angles))) < 0.02
    assert np.corrcoef(differing, angles)[0, 1] > 0.9
    assert np.corrcoef(plain_differing, angles)[0, 1] < np.corrcoef(differing, angles)[0, 1] - 0.1


def test_the_transform_is_a_rotation_the_same_in_every_process_and_recorded_in_the_index(tmp_path):
    points = anisotropic(20)
    first = simhash.project(points)
    simhash._plan.cache_clear()
    assert np.array_equal(simhash.project(points), first)
    # An orthogonal transform (here onto the first DIM of its 512 outputs): no norm grows, angles survive.
    assert np.all(np.linalg.norm(first, axis=1) <= 1.0 + 1e-5)
    padded = np.zeros((DIM, 512), dtype=np.float32)
    padded[:, :DIM] = np.eye(DIM)
    signs, left, right = simhash._plan(DIM)
    full = padded
    for round_signs in signs:
        full = (full * round_signs) @ np.kron(left, right).T
    assert np.allclose(full @ full.T, np.eye(DIM), atol=1e-4) and np.allclose(
        full[:, :DIM], simhash.project(np.eye(DIM, dtype=np.float32)), atol=1e-5
    )
    store = filled_store(tmp_path / "i.db", anisotropic(5))
    assert store.meta("bits") == simhash.fingerprint(DIM)
    store.close()


def test_the_projection_table_estimate_equals_the_sum_over_bits():
    query = anisotropic(1, seed=5)[0]
    rows = simhash.pack(simhash.project(anisotropic(30, seed=6)))
    signs = np.unpackbits(rows, axis=1, bitorder="little")[:, :DIM] * 2.0 - 1.0
    expected = signs @ simhash.project(query)
    assert np.allclose(simhash.estimate(simhash.byte_tables(simhash.project(query)), rows), expected, atol=1e-3)


# ---- recall on an anisotropic library --------------------------------------------------------------
@pytest.fixture
def llm_like(tmp_path):
    store = filled_store(tmp_path / "i.db", anisotropic(3000))
    yield store
    store.close()


def test_the_fast_search_finds_what_an_exact_scan_finds_on_llm_like_vectors(llm_like, monkeypatch):
    monkeypatch.setattr(vectors, "RESCORE_SHORTLIST", 100)  # 3000 photos: keep the shortlist a small share
    report = check_recall(llm_like, samples=40, k=10)
    assert report is not None and (report.photos, report.queries) == (3000, 40)
    assert report.mean_cosine > 0.8  # the distribution that defeats plain sign bits
    assert report.mean >= 0.99 and report.worst >= 0.9 and report.healthy


def test_the_recall_check_flags_a_search_that_misses(llm_like, monkeypatch):
    monkeypatch.setattr(vectors, "RESCORE_SHORTLIST", 10)
    monkeypatch.setattr(vectors, "WIDENING", 1)
    monkeypatch.setattr(simhash, "project", lambda v: np.asarray(v, dtype=np.float32))  # plain sign bits
    report = check_recall(llm_like, samples=30, k=10)
    assert report is not None and not report.healthy and report.worst < 0.9


def test_check_recall_needs_more_photos_than_k(tmp_path):
    with filled_store(tmp_path / "i.db", anisotropic(15)) as store:
        assert check_recall(store, k=20) is None


# ---- filters beside the bit matrix ----------------------------------------------------------------------
@pytest.mark.parametrize("selective", [0.0, 1.0], ids=["mask-the-full-scan", "scan-the-passing"])
def test_filtered_search_is_the_exact_answer_among_the_photos_that_pass(llm_like, monkeypatch, selective):
    monkeypatch.setattr(bitcache, "SELECTIVE", selective)
    monkeypatch.setattr(vectors, "RESCORE_SHORTLIST", 60)
    points = np.stack([llm_like.vector(i + 1) for i in range(3000)])
    query = anisotropic(1, seed=42)[0]
    passing = np.array([n % 7 == 3 and n % 10 in (1, 2) and n >= 1000 for n in range(3000)])
    scores = np.where(passing, points @ query, -np.inf)
    truth = set((np.argsort(-scores)[:10] + 1).tolist())
    flt = Filters(camera="Cam 3", folders=("/lib/1", "/lib/2"), after=parse_date("2020") + 1000 * 3600)
    hits = search(llm_like, query, 10, flt)
    assert {h.file_id for h in hits} == truth


def test_a_selective_filter_compares_up_to_thousands_of_the_photos_that_pass_exactly(llm_like, monkeypatch):
    monkeypatch.setattr(vectors, "RESCORE_SHORTLIST", 10)
    monkeypatch.setattr(vectors, "WIDENING", 1)
    monkeypatch.setattr(simhash, "project", lambda v: np.asarray(v, dtype=np.float32))  # even with poor bits
    points = np.stack([llm_like.vector(i + 1) for i in range(3000)])
    query = anisotropic(1, seed=43)[0]
    scores = np.where(np.arange(3000) % 7 == 3, points @ query, -np.inf)  # "Cam 3": 1/7 of the photos
    hits = search(llm_like, query, 10, Filters(camera="Cam 3"))
    assert {h.file_id for h in hits} == set((np.argsort(-scores)[:10] + 1).tolist())


def test_the_bit_matrix_follows_metadata_changes_as_well_as_vectors(llm_like):
    query = llm_like.vector(5)
    assert search(llm_like, query, 1, Filters(camera="Leica")) == []
    llm_like.set_metadata(5, PhotoMeta(taken=parse_date("2024"), taken_source="exif", camera="Leica Q3"))
    assert [h.file_id for h in search(llm_like, query, 1, Filters(camera="Leica"))] == [5]
    llm_like.move_file(5, "/elsewhere/5.jpg", size=1, mtime_ns=1)
    assert [h.file_id for h in search(llm_like, query, 1, Filters(folders=("/elsewhere",)))] == [5]
    assert search(llm_like, query, 1, Filters(folders=("/elsewhere",), before=parse_date("2024"))) == []


# ---- umsearch doctor --search ----------------------------------------------------------------------------
def test_doctor_search_reports_recall_on_the_users_own_index(llm_like, monkeypatch):
    monkeypatch.setattr(vectors, "RESCORE_SHORTLIST", 400)
    report = doctor.diagnose("m", llm_like.path, "cpu", "none", search=True)
    check = next(c for c in report.checks if c.name == "search")
    assert check.status == doctor.OK and "recall@20" in check.detail and "3000 photos" in check.detail
    monkeypatch.setattr(vectors, "RESCORE_SHORTLIST", 10)
    monkeypatch.setattr(vectors, "WIDENING", 1)
    monkeypatch.setattr(simhash, "project", lambda v: np.asarray(v, dtype=np.float32))
    check = next(c for c in doctor.diagnose("m", llm_like.path, search=True).checks if c.name == "search")
    assert check.status == doctor.PROBLEM and "UMSEARCH_SHORTLIST=" in (check.fix or "")


def test_doctor_search_on_the_command_line(llm_like, tiny_model_dir):
    result = CliRunner().invoke(
        app, ["doctor", "--search", "--json", "--db", str(llm_like.path), "--model", str(tiny_model_dir)]
    )
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "recall@20" in checks["search"]["detail"]
    plain = CliRunner().invoke(app, ["doctor", "--json", "--db", str(llm_like.path), "--model", str(tiny_model_dir)])
    assert "search" not in {c["name"] for c in json.loads(plain.stdout)["checks"]}


# ---- the saved bit matrix is patched, not rebuilt ---------------------------------------------------------
def same_matrix(a: bitcache.BitMatrix, b: bitcache.BitMatrix) -> bool:
    order_a, order_b = np.argsort(a.ids), np.argsort(b.ids)
    return (
        np.array_equal(a.ids[order_a], b.ids[order_b])
        and np.array_equal(a.words[:, order_a], b.words[:, order_b])
        and all(np.array_equal(getattr(a, c)[order_a], getattr(b, c)[order_b]) for c in bitcache.CODE_COLUMNS)
    )


def test_a_changed_index_patches_the_saved_matrix_with_what_changed(tmp_path, monkeypatch):
    store = filled_store(tmp_path / "i.db", anisotropic(50))
    search(store, anisotropic(1, seed=9)[0], 5)  # builds and saves the matrix
    with store.transaction():
        store.put_file("/lib/new.jpg", size=1, mtime_ns=1, digest="new", vector=anisotropic(1, seed=8)[0])
        store.delete_files([3, 4])
        store.set_metadata(7, PhotoMeta(taken=parse_date("2024"), taken_source="exif", camera="Leica", latitude=-30.0))
        store.move_file(8, "/elsewhere/8.jpg", size=1, mtime_ns=1)
        store.put_file("/lib/0/10.jpg", size=2, mtime_ns=2, digest="x", vector=anisotropic(1, seed=7)[0])  # replaced
    monkeypatch.setattr(bitcache, "build", lambda *a, **k: pytest.fail("rebuilt instead of patched"))
    with Store.open(store.path, create=False) as other:  # another process: the side file, patched
        patched = other._bit_matrix()
    patched_here = store._bit_matrix()
    monkeypatch.undo()
    fresh = bitcache.build(store.db, store.vectors_generation())
    assert same_matrix(patched, fresh) and same_matrix(patched_here, fresh)
    assert 3 not in fresh.ids and fresh.hemisphere[list(fresh.ids).index(7)] == -1
    store.close()


def test_a_long_deletion_log_is_cleared_and_older_matrices_are_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "DELETION_LOG", 2)
    store = filled_store(tmp_path / "i.db", anisotropic(20))
    search(store, anisotropic(1, seed=9)[0], 5)
    store.delete_files([1, 2, 3])
    store.delete_files([4])
    assert store.db.execute("SELECT count(*) FROM vector_deletions").fetchone()[0] <= 2
    with Store.open(store.path, create=False) as other:
        matrix = other._bit_matrix()
    assert sorted(matrix.ids.tolist()) == list(range(5, 21))
    store.close()


def test_a_videos_frames_carry_its_codes_and_the_recall_check_counts_files(tmp_path, monkeypatch):
    """Frames (segments) are rows of the bit matrix with their file's filter codes; the recall check takes
    files' own vectors as queries and ranks files by their best frame, as the search does."""
    from umsearch.store.segments import Segment, file_ids_of

    vectors_ = anisotropic(400)
    store = filled_store(tmp_path / "i.db", vectors_[:300])
    search(store, vectors_[0], 5)  # builds and saves the matrix
    with store.transaction():
        for n in range(10):
            frames = [Segment(v, time=2.0 * i) for i, v in enumerate(vectors_[300 + 10 * n : 310 + 10 * n])]
            store.put_file(f"/clips/{n}.mp4", size=1, mtime_ns=1, digest=f"v{n}", segments=frames, kind="video")
    monkeypatch.setattr(bitcache, "build", lambda *a, **k: pytest.fail("rebuilt instead of patched"))
    with Store.open(store.path, create=False) as other:
        patched = other._bit_matrix()
    monkeypatch.undo()
    fresh = bitcache.build(store.db, store.vectors_generation())
    assert same_matrix(patched, fresh) and len(fresh) == 400
    frames = file_ids_of(fresh.ids) > 300
    assert len(set(fresh.kind[frames].tolist())) == 1 and not set(fresh.kind[~frames].tolist()) & set(
        fresh.kind[frames].tolist()
    )
    hits = search(store, vectors_[355], 3, Filters(kinds=("video",)))
    assert hits[0].path == "/clips/5.mp4" and hits[0].time == 10.0 and {h.kind for h in hits} == {"video"}
    assert {h.kind for h in search(store, vectors_[355], 3, Filters(folders=("/lib",)))} == {"photo"}
    report = check_recall(store, samples=60, k=10)
    assert report is not None and report.photos == 310 and report.mean == 1.0  # 400 vectors: all rescored
    store.close()

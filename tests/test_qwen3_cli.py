"""A Qwen3-VL-Embedding index through the commands a user runs, like a GME one; --dim and --rerank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umsearch.cli import EXIT_ERROR, app, with_optional_values
from umsearch.families import GME, QWEN3_VL, family_of_dir, family_of_spec
from umsearch.runtime import RuntimeRequest, auto_quality, runs_on
from umsearch.store import Store

from .photos import write_photo

runner = CliRunner()


def umsearch(*args: object) -> click.testing.Result:  # noqa: F821
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "Pictures"
    for seed in range(5):
        write_photo(root / f"photo {seed}.jpg", seed)
    write_photo(root / "wide.png", 9, size=(300, 80))
    return root


@pytest.fixture
def qwen3_index(photos: Path, tiny_qwen3_dir: Path, tmp_path: Path) -> Path:
    db = tmp_path / "qwen3.db"
    result = umsearch("index", photos, "--db", db, "--model", tiny_qwen3_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 6
    return db


def test_the_family_comes_from_config_json(tiny_qwen3_dir: Path, tiny_model_dir: Path) -> None:
    assert family_of_dir(tiny_qwen3_dir) is QWEN3_VL
    assert family_of_dir(tiny_model_dir) is GME
    assert family_of_spec(str(tiny_qwen3_dir)) is QWEN3_VL
    # Not downloaded (offline test home): the hub id's name decides until its config.json is there.
    assert family_of_spec("Qwen/Qwen3-VL-Embedding-2B") is QWEN3_VL
    assert family_of_spec("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct") is GME


def test_status_reports_the_family_dimension_and_budget(qwen3_index: Path, tiny_qwen3_dir: Path) -> None:
    report = json.loads(umsearch("status", "--db", qwen3_index, "--json").stdout)
    assert (report["family"], report["dim"], report["model"]) == ("qwen3-vl", 64, str(tiny_qwen3_dir))
    # --quality auto: the family's own preset for the device it ran on (on a CPU, Qwen3-VL's fast).
    preset = auto_quality(runs_on(RuntimeRequest()))
    assert report["image_tokens"] == list(QWEN3_VL.budget(preset)) and report["quality"] == preset
    text = umsearch("status", "--db", qwen3_index).stdout
    assert "Qwen3-VL-Embedding, 64-d" in text


def test_every_query_kind_works_on_a_qwen3_index(qwen3_index: Path, photos: Path) -> None:
    target = photos / "photo 3.jpg"
    hits = json.loads(umsearch("query", "--image", target, "--db", qwen3_index, "--json").stdout)
    assert hits[0]["path"] == str(target) and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    for args in (["red bike by a lake"], ["at night", "--image", target], ["beach -people after:2000"]):
        result = umsearch("query", *args, "--db", qwen3_index, "--paths", "--limit", "3")
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == 3
    similar = json.loads(umsearch("similar", target, "--db", qwen3_index, "--json").stdout)
    assert str(target) not in [hit["path"] for hit in similar] and len(similar) == 5
    assert umsearch("dupes", "--db", qwen3_index, "--json").exit_code == 0


def test_an_unchanged_qwen3_index_needs_no_model_and_a_new_photo_is_added(
    qwen3_index: Path, photos: Path, tiny_qwen3_dir: Path
) -> None:
    assert json.loads(umsearch("index", photos, "--db", qwen3_index, "--json").stdout)["unchanged"] == 6
    write_photo(photos / "new.jpg", 42)
    assert json.loads(umsearch("index", photos, "--db", qwen3_index, "--json").stdout)["added"] == 1


def test_the_other_family_is_refused_in_one_line(
    qwen3_index: Path, photos: Path, tiny_model_dir: Path, tiny_qwen3_dir: Path, tmp_path: Path
) -> None:
    result = umsearch("query", "cat", "--db", qwen3_index, "--model", tiny_model_dir)
    assert result.exit_code == EXIT_ERROR
    message = result.output.strip()
    assert "\n" not in message and "Qwen3-VL-Embedding vectors" in message and "GME model" in message
    gme_db = tmp_path / "gme.db"
    assert umsearch("index", photos, "--db", gme_db, "--model", tiny_model_dir).exit_code == 0
    result = umsearch("index", photos, "--db", gme_db, "--model", tiny_qwen3_dir)
    assert result.exit_code == EXIT_ERROR and "GME vectors" in result.output
    assert umsearch("query", "cat", "--db", gme_db, "--json").exit_code == 0  # untouched


def test_dim_makes_a_shorter_index_and_queries_shorten_the_same_way(
    photos: Path, tiny_qwen3_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "short.db"
    assert umsearch("index", photos, "--db", db, "--model", tiny_qwen3_dir, "--dim", 32).exit_code == 0
    with Store.open(db, create=False) as store:
        assert store.settings().dim == 32
        assert len(store.vector(1)) == 32
    target = photos / "photo 1.jpg"
    hits = json.loads(umsearch("query", "--image", target, "--db", db, "--json").stdout)
    assert hits[0]["path"] == str(target) and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert umsearch("index", photos, "--db", db, "--json").exit_code == 0  # keeps its length
    refused = umsearch("index", photos, "--db", db, "--dim", 48)
    assert refused.exit_code == EXIT_ERROR and "32-d" in refused.output


def test_dim_is_refused_for_gme(photos: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    result = umsearch("index", photos, "--db", tmp_path / "g.db", "--model", tiny_model_dir, "--dim", 64)
    assert result.exit_code == EXIT_ERROR and "Qwen3-VL-Embedding" in result.output
    assert not (tmp_path / "g.db").exists() or Store.open(tmp_path / "g.db").settings() is None


def test_quality_presets_are_the_familys(photos: Path, tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "fast.db"
    assert umsearch("index", photos, "--db", db, "--model", tiny_qwen3_dir, "--quality", "fast").exit_code == 0
    report = json.loads(umsearch("status", "--db", db, "--json").stdout)
    assert report["image_tokens"] == [128, 256] and report["quality"] == "fast"


def test_rerank_reorders_the_top_candidates_by_the_reranker(qwen3_index: Path, tiny_reranker_dir: Path) -> None:
    plain = json.loads(umsearch("query", "a red bike", "--db", qwen3_index, "--json").stdout)
    result = umsearch(
        "query", "a red bike", "--db", qwen3_index, "--json", "--rerank", 4, "--rerank-model", tiny_reranker_dir
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert [hit["rank"] for hit in hits] == list(range(1, 7))
    head = hits[:4]
    assert {hit["path"] for hit in head} == {hit["path"] for hit in plain[:4]}  # the same 4, reordered
    assert [hit["rerank"] for hit in head] == sorted((hit["rerank"] for hit in head), reverse=True)
    assert all("rerank" not in hit for hit in hits[4:]) and hits[4:] == plain[4:]
    assert "reranking on the CPU" in result.stderr


def test_rerank_works_on_a_gme_index_too(photos: Path, tiny_model_dir: Path, tiny_reranker_dir: Path, tmp_path) -> None:
    db = tmp_path / "gme.db"
    assert umsearch("index", photos, "--db", db, "--model", tiny_model_dir).exit_code == 0
    result = umsearch(
        "query", "snow", "--db", db, "--json", "--limit", 2, "--rerank", 3, "--rerank-model", tiny_reranker_dir
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and all("rerank" in hit for hit in hits)


def test_rerank_without_a_number_means_30() -> None:
    assert with_optional_values(["query", "cat", "--rerank"]) == ["query", "cat", "--rerank", "30"]
    assert with_optional_values(["query", "--rerank", "cat"]) == ["query", "--rerank", "30", "cat"]
    assert with_optional_values(["query", "--rerank", "5", "cat"]) == ["query", "--rerank", "5", "cat"]
    assert with_optional_values(["query", "--rerank", "--json"]) == ["query", "--rerank", "30", "--json"]
    assert with_optional_values(["query", "--", "--rerank"]) == ["query", "--", "--rerank"]


def test_rerank_with_a_date_sort_is_refused(qwen3_index: Path) -> None:
    result = umsearch("query", "cat sort:date", "--db", qwen3_index, "--rerank", 5)
    assert result.exit_code == EXIT_ERROR and "--rerank" in result.output


def test_watch_keeps_a_shortened_qwen3_index_live(tmp_path: Path, tiny_qwen3_dir: Path) -> None:
    from tests.test_watch_cli import start_watch, stop, wait_watching
    from tests.watch_support import relative, wait_in_step

    photos, db = tmp_path / "photos", tmp_path / "index.db"
    write_photo(photos / "first.jpg", seed=1)
    process = start_watch(photos, db, tiny_qwen3_dir, "--dim", "32")
    try:
        wait_watching(db, process)
        write_photo(photos / "second.png", seed=2)
        assert relative(wait_in_step(db, photos), photos) == {"first.jpg", "second.png"}
    finally:
        code, _, stderr = stop(process)
    assert code == 0, stderr
    with Store.open(db, create=False) as store:
        settings = store.settings()
        assert (settings.family, settings.dim) == ("qwen3-vl", 32)


def test_a_video_gets_a_clip_vector_before_its_frames(tmp_path: Path, tiny_qwen3_dir: Path, tiny_qwen3) -> None:
    pytest.importorskip("av")
    from umsearch.qwen3vl import VideoClip
    from umsearch.video import sample_video

    from .media_support import Scene, write_video

    library = tmp_path / "library"
    clip_path = write_video(
        library / "holiday.mp4", [Scene((210, 30, 30), 1.5), Scene((30, 190, 40), 1.5, pattern=1)], size=(96, 64)
    )
    db = tmp_path / "v.db"
    assert umsearch("index", library, "--db", db, "--model", tiny_qwen3_dir, "--quality", "fast").exit_code == 0
    with Store.open(db, create=False) as store:
        row = store.file_by_path(str(clip_path))
        segments = store.segments(row.id)
    frames = sample_video(str(clip_path), 256 * 1024).frames
    assert len(segments) == len(frames) + 1  # the clip as one video input, then each kept frame
    assert [s.time for s in segments[1:]] == [f.time for f in frames] and segments[0].time == segments[1].time
    # The first vector is the clip: the model's vector of the kept frames as one video input.
    fitted = tuple(QWEN3_VL.fit_image(f.image, 128, 256) for f in frames)
    short = tiny_qwen3.embed_videos([VideoClip(fitted, tuple(f.time for f in frames))])[0]
    assert float(segments[0].vector @ short) > 0.999
    hits = json.loads(umsearch("query", "a red scene", "--db", db, "--json").stdout)
    assert hits[0]["kind"] == "video" and hits[0]["time"] is not None

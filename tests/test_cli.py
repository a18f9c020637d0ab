"""The `umsearch` command as a user runs it: index, query (text, image, both), status, embed, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umsearch.cli import EXIT_ERROR, EXIT_PARTIAL, app
from umsearch.devmodel import build_model_dir

from .photos import write_photo

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

runner = CliRunner()


def umsearch(*args: str) -> click.testing.Result:  # noqa: F821
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "Pictures"
    for seed in range(4):
        write_photo(root / f"photo {seed}.jpg", seed)
    write_photo(root / "相册" / "湖.png", 11)
    return root


@pytest.fixture
def indexed(photos: Path, tiny_model_dir: Path, tmp_path: Path) -> Path:
    db = tmp_path / "index.db"
    result = umsearch("index", photos, "--db", db, "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    return db


def test_index_json_prints_exactly_the_six_counters(photos, tiny_model_dir, tmp_path) -> None:
    result = umsearch("index", photos, "--db", tmp_path / "i.db", "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == dict(added=5, updated=0, moved=0, removed=0, unchanged=0, failed=0)


def test_index_without_json_prints_a_readable_summary(photos, tiny_model_dir, tmp_path) -> None:
    result = umsearch("index", photos, "--db", tmp_path / "i.db", "--model", tiny_model_dir)
    assert result.exit_code == 0
    assert "added 5, updated 0, moved 0, removed 0, unchanged 0, failed 0" in result.output
    assert "Loading weights" not in result.output  # no third-party progress noise


def test_query_by_image_ranks_that_image_first_with_score_one(indexed, photos) -> None:
    target = photos / "相册" / "湖.png"
    result = umsearch("query", "--image", target, "--db", indexed, "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["path"] == str(target)
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert [hit["rank"] for hit in hits] == list(range(1, 6))
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)


@pytest.mark.parametrize("args", [["red bike by a lake"], ["湖边的红色自行车"], ["at night", "--image", "IMAGE"]])
def test_text_chinese_and_fused_queries_return_ranked_paths(indexed, photos, args) -> None:
    args = [str(photos / "photo 0.jpg") if a == "IMAGE" else a for a in args]
    result = umsearch("query", *args, "--db", indexed, "--paths", "--limit", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(Path(line).is_file() and Path(line).is_relative_to(photos) for line in lines)


def test_query_prints_a_table_of_rank_score_and_path_by_default(indexed, photos) -> None:
    result = umsearch("query", "--image", photos / "photo 1.jpg", "--db", indexed)
    assert result.exit_code == 0
    header, first = result.stdout.splitlines()[:2]
    assert header.split()[:2] == ["#", "score"] and header.split()[-1] == "path"
    assert first.split()[:2] == ["1", "1.000"]
    assert "photo1.jpg" in "".join(result.stdout.split())  # long paths fold onto several lines


def test_the_query_uses_the_index_model_without_being_told(indexed, photos) -> None:
    result = umsearch("query", "anything", "--db", indexed, "--json", "--limit", "2")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_status_reports_counts_model_dimension_and_database(indexed, tiny_model_dir) -> None:
    result = umsearch("status", "--db", indexed, "--json")
    report = json.loads(result.stdout)
    assert report["indexed"] == 5 and report["failed"] == 0
    assert report["model"] == str(tiny_model_dir.resolve())
    assert report["dim"] > 0 and report["db"] == str(indexed) and report["db_bytes"] > 0
    text = umsearch("status", "--db", indexed).stdout
    assert "5 indexed, 0 failed" in text and str(indexed) in text


def test_failed_files_exit_3_and_are_listed_by_status(photos, tiny_model_dir, tmp_path) -> None:
    (photos / "empty.jpg").write_bytes(b"")
    db = tmp_path / "i.db"
    result = umsearch("index", photos, "--db", db, "--model", tiny_model_dir, "--json")
    assert result.exit_code == EXIT_PARTIAL
    assert json.loads(result.stdout)["failed"] == 1
    report = json.loads(umsearch("status", "--db", db, "--json").stdout)
    assert report["failed"] == 1
    assert report["failures"][0]["path"] == str(photos / "empty.jpg") and report["failures"][0]["reason"]


def test_a_mismatched_model_is_refused_with_the_fix(indexed, photos, tmp_path) -> None:
    other = build_model_dir(tmp_path / "other-model", "tiny", seed=1)
    for args in (["query", "x"], ["index", str(photos)]):
        result = umsearch(*args, "--db", indexed, "--model", other)
        assert result.exit_code == EXIT_ERROR
        assert "was built with model" in result.stderr and "--model" in result.stderr


def test_embed_prints_a_unit_vector_as_json(tiny_model_dir, photos) -> None:
    result = umsearch(
        "embed", "--text", "a cat", "--image", photos / "photo 2.jpg", "--model", tiny_model_dir, "--json"
    )
    vector = json.loads(result.stdout)
    assert len(vector) > 0 and sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["index", "/no/such/folder"], "/no/such/folder: no such file or folder"),
        (["query", "x", "--db", "/no/such/index.db"], "no index at /no/such/index.db"),
        (["query", "--image", "IMAGE_MISSING"], "no such file"),
        (["query"], "give something to search for"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(args, message, indexed, tmp_path) -> None:
    args = [str(tmp_path / "missing.jpg") if a == "IMAGE_MISSING" else a for a in args]
    if "--db" not in args and args[0] == "query":
        args += ["--db", str(indexed)]
    result = umsearch(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_an_unreadable_database_is_one_line(tmp_path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"this is not a database at all" * 100)
    result = umsearch("status", "--db", bogus)
    assert result.exit_code == EXIT_ERROR and str(bogus) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_hub_model_offline_is_one_line_without_traceback(photos, tmp_path) -> None:
    """The real process, as a newcomer without network would see it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "UMSEARCH_HOME": str(tmp_path)}
    env.pop("UMSEARCH_MODEL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "umsearch", "index", str(photos)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == EXIT_ERROR
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct" in lines[0] and "Traceback" not in proc.stderr

"""`umsearch model download/info` against a real Hugging Face cache layout (never the network), `umsearch
doctor`, and the runtime flags on the CLI."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umsearch import cli, doctor, hub
from umsearch.errors import ModelError

from .photos import write_photo

HUB_ID = "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache, offline: any real network use fails the test."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the network is faked below, not switched off
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://mirror.example")

    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", no_network)
    return cache


def put_in_cache(cache: Path, model_dir: Path, repo_id: str = HUB_ID, revision: str = REVISION) -> Path:
    """Lay a model out exactly as huggingface_hub does: blobs, a snapshot of symlinks, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for n, file in enumerate(sorted(model_dir.iterdir())):
        blob = repo / "blobs" / f"{n:040x}"
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)
    return snapshot


def test_info_says_not_downloaded_with_the_cache_and_endpoint(hub_cache: Path) -> None:
    info = hub.model_info(HUB_ID)
    assert (info.downloaded, info.path, info.revision, info.size_bytes) == (False, None, None, 0)
    assert info.cache_dir == str(hub_cache) and info.endpoint == "https://mirror.example"


def test_info_finds_a_cached_snapshot_with_revision_and_size(hub_cache: Path, tiny_model_dir: Path) -> None:
    snapshot = put_in_cache(hub_cache, tiny_model_dir)
    info = hub.model_info(HUB_ID)
    assert info.downloaded and info.problem is None
    assert (info.path, info.revision) == (str(snapshot), REVISION)
    assert info.size_bytes == sum(f.stat().st_size for f in tiny_model_dir.iterdir())


def test_info_reports_a_partial_download(hub_cache: Path, tiny_model_dir: Path) -> None:
    snapshot = put_in_cache(hub_cache, tiny_model_dir)
    next(snapshot.glob("model-00002-*.safetensors")).unlink()
    info = hub.model_info(HUB_ID)
    assert not info.downloaded and "missing weight shard" in info.problem


def test_download_fetches_safetensors_only_through_huggingface_hub(
    hub_cache: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []
    real_snapshot_download = huggingface_hub.snapshot_download

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            return real_snapshot_download(repo_id, **kwargs)  # the real cache lookup
        put_in_cache(hub_cache, tiny_model_dir, repo_id)  # what a completed download leaves behind
        return str(hub_cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / REVISION)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", lambda self, repo_id, **kw: None)
    with pytest.raises(LocalEntryNotFoundError):
        real_snapshot_download(HUB_ID, local_files_only=True)
    info = hub.download_model(HUB_ID)
    assert info.downloaded and info.revision == REVISION
    fetch = [c for c in calls if not c.get("local_files_only")]
    assert len(fetch) == 1
    patterns = fetch[0]["allow_patterns"]
    assert "*.safetensors" in patterns and not any(p.endswith((".bin", ".py", ".pt", ".pth")) for p in patterns)
    # Already complete: no second fetch.
    hub.download_model(HUB_ID)
    assert len([c for c in calls if not c.get("local_files_only")]) == 1


def test_download_offline_is_one_line(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli.app, ["model", "download", HUB_ID])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "offline" in lines[0] and HUB_ID in lines[0]


def test_an_invalid_id_is_one_line(hub_cache: Path) -> None:
    with pytest.raises(ModelError, match="valid Hugging Face model id"):
        hub.model_info("not a/valid//id")


def test_model_info_command(hub_cache: Path, tiny_model_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli.app, ["model", "info", HUB_ID])
    assert result.exit_code == 0 and "not downloaded" in result.stdout
    put_in_cache(hub_cache, tiny_model_dir)
    result = runner.invoke(cli.app, ["model", "info", HUB_ID, "--json"])
    data = json.loads(result.stdout)
    assert data["downloaded"] and data["revision"] == REVISION


# --- doctor -------------------------------------------------------------------------------------


def statuses(report: doctor.Report) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def test_doctor_explains_this_machine(tiny_model_dir: Path, tmp_path: Path) -> None:
    report = doctor.diagnose(str(tiny_model_dir), tmp_path / "none.db", "cpu", "none")
    found = statuses(report)
    from umsearch.embed import cpu_has_native_bf16

    expected = ["python", "torch", "gpu", "cpu", "bitsandbytes", "runtime", "sqlite", "formats", "model", "index"]
    assert list(found) == expected
    assert found["python"] == found["torch"] == found["sqlite"] == found["model"] == found["cpu"] == "ok"
    assert found["index"] == "note"  # no index yet: how to make one
    dtype = "bfloat16" if cpu_has_native_bf16() else "float32"  # the CPU default where it is native
    assert report.runtime == {"device": "cpu", "dtype": dtype, "quant": "none"}
    details = {check.name: check.detail for check in report.checks}
    assert "sqlite-vec v" in details["sqlite"] and "apsw" in details["sqlite"]
    # What this CPU gets: its vector units, the path, and a layer timed now in each precision.
    assert "on the CPU umsearch runs" in details["cpu"] and "bfloat16" in details["cpu"]
    if pytest.importorskip("bitsandbytes"):
        assert found["bitsandbytes"] == "ok" and "4-bit NF4 matmul works" in details["bitsandbytes"]


def test_doctor_names_the_formats_it_reads_and_what_a_missing_package_would_add(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path
) -> None:
    formats = [*doctor.OPTIONAL_FORMATS, ("umsearch_no_such_module", "no-such-package", "dreams")]
    monkeypatch.setattr(doctor, "OPTIONAL_FORMATS", tuple(formats))
    check = next(c for c in doctor.diagnose(str(tiny_model_dir), tmp_path / "i.db").checks if c.name == "formats")
    assert check.status == "note" and check.fix == "pip install 'umsearch[all]'"
    assert "not installed: dreams (no-such-package)" in check.detail
    assert check.detail.startswith("reads JPEG")
    if importlib.util.find_spec("av") is not None:  # installed with the `all` extra: its version is named
        assert f"videos (av {importlib.metadata.version('av')})" in check.detail


def test_doctor_gives_a_fix_for_each_problem(hub_cache: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    report = doctor.diagnose(HUB_ID, broken, "cuda", "auto")  # no CUDA here
    found = statuses(report)
    assert found["model"] == found["index"] == "problem"
    assert (found["runtime"] == "problem") == (not __import__("torch").cuda.is_available())
    assert all(check.fix for check in report.problems)
    model = next(c for c in report.checks if c.name == "model")
    assert "not downloaded" in model.detail and model.fix == f"umsearch model download {HUB_ID}"


def test_doctor_without_torch_still_reports(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    report = doctor.diagnose(str(tiny_model_dir), tmp_path / "i.db")
    found = statuses(report)
    assert found["torch"] == "problem"
    assert "pip install torch" in next(c.fix for c in report.checks if c.name == "torch")
    assert found["sqlite"] == "ok" and found["model"] == "ok"
    assert "gpu" not in found and "bitsandbytes" not in found


def test_doctor_command_prints_text_and_json(tiny_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["doctor", "--model", str(tiny_model_dir), "--db", str(tmp_path / "i.db"), "--device", "cpu"]
    text = runner.invoke(cli.app, args)
    assert text.exit_code == 0, text.output
    assert "no problems found" in text.stdout and "sqlite-vec" in text.stdout
    data = json.loads(runner.invoke(cli.app, [*args, "--json"]).stdout)
    assert data["problems"] == 0 and data["runtime"]["device"] == "cpu"


# --- runtime flags on index / status / query -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_index_records_the_runtime_and_query_warns_about_other_settings(tiny_model_dir: Path, tmp_path: Path) -> None:
    for i in range(3):
        write_photo(tmp_path / "photos" / f"p{i}.jpg", seed=i, size=(120 + 30 * i, 90))
    db = str(tmp_path / "i.db")
    common = ["--db", db, "--model", str(tiny_model_dir)]
    runner = CliRunner()
    result = runner.invoke(
        cli.app,
        [
            "index",
            str(tmp_path / "photos"),
            *common,
            "--quality",
            "balanced",
            "--device",
            "cpu",
            "--quant",
            "none",
            "--dtype",
            "float32",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    status = json.loads(runner.invoke(cli.app, ["status", "--db", db, "--json"]).stdout)
    assert (status["quality"], status["image_tokens"]) == ("balanced", [256, 576])
    assert (status["device"], status["dtype"], status["quant"]) == ("cpu", "float32", "none")
    assert "runtime   cpu, float32, quantization none" in runner.invoke(cli.app, ["status", "--db", db]).stdout

    image = str(tmp_path / "photos" / "p1.jpg")
    same = runner.invoke(cli.app, ["query", "--image", image, *common, "--json"])
    assert same.exit_code == 0 and "warning" not in same.stderr
    assert json.loads(same.stdout)[0]["path"] == image
    other = runner.invoke(cli.app, ["query", "--image", image, *common, "--quality", "fast", "--json"])
    assert other.exit_code == 0
    warnings = [line for line in other.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "128-256" in warnings[0] and "256-576" in warnings[0]

    # Indexing with another budget is refused: one index never mixes budgets.
    refused = runner.invoke(cli.app, ["index", str(tmp_path / "photos"), *common, "--quality", "fast"])
    assert refused.exit_code == 1 and "built at quality balanced (256-576 visual tokens), not fast" in refused.stderr


def test_bad_runtime_flags_are_one_line_errors(tiny_model_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli.app, ["embed", "--text", "x", "--model", str(tiny_model_dir), "--device", "tpu"])
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        "error: unknown device 'tpu' (expected one of auto, cpu, cuda, mps)"
    ]


def test_first_use_offline_is_one_line_naming_the_model(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli.app, ["embed", "--text", "a dog", "--model", HUB_ID])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and HUB_ID in lines[0] and "umsearch model download" in lines[0]

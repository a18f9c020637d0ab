"""The dev model builders are commands too (`python -m umsearch.devmodel`, `python -m umsearch.devmodel_qwen3`):
`--help` answers at once, without torch, and a tiny build is a model folder umsearch recognises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from umsearch.families import family_of_dir


@pytest.mark.parametrize("module", ["umsearch.devmodel", "umsearch.devmodel_qwen3"])
def test_help_prints_usage_and_exits_0(module: str) -> None:
    # -X importtime lists every module imported; --help must not reach torch (it would take seconds).
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and "--dtype" in done.stdout and "--size" in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "torch" not in imported


def test_a_bad_option_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "umsearch.devmodel", "--size", "huge", "out"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("module", "family"), [("umsearch.devmodel", "gme"), ("umsearch.devmodel_qwen3", "qwen3-vl")])
def test_a_tiny_build_is_a_model_folder_of_its_family(module: str, family: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, str(tmp_path / "model")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert family_of_dir(tmp_path / "model").name == family
    assert list((tmp_path / "model").glob("*.safetensors"))

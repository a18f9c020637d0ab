"""Security properties: no shell, no remote code, a private index folder, no network, paths never options."""

from __future__ import annotations

import ast
import json
import socket
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umsearch.cli import app
from umsearch.settings import max_pixels

from .photos import write_photo

PACKAGE = Path(__file__).resolve().parent.parent / "umsearch"


def _calls(tree: ast.AST):
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_the_scan_below_covers_every_module_of_the_package():
    covered = {path.relative_to(PACKAGE).as_posix() for path in MODULES}
    assert {"cli.py", "store/database.py", "tui/viewer.py"} <= covered  # subpackages too, not only the top level


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("source", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_shell_no_remote_code_no_eval(source):
    tree = ast.parse(source.read_text(), str(source))
    for call in _calls(tree):
        name = _name(call.func)
        assert name not in {"os.system", "os.popen", "eval", "exec", "pickle.load", "pickle.loads"}, name
        for kw in call.keywords:
            if kw.arg in ("shell", "trust_remote_code"):
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, f"{source}: {kw.arg}"
    assert "trust_remote_code" + "=True" not in source.read_text()  # not even in a comment or a string


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_index_and_query_with_a_local_model_use_no_network_and_a_private_folder(
    tmp_path, tiny_model_dir, no_network, monkeypatch
):
    home = tmp_path / "data" / "umsearch"
    monkeypatch.setenv("UMSEARCH_HOME", str(home))
    monkeypatch.delenv("UMSEARCH_DB", raising=False)
    write_photo(tmp_path / "photos" / "a.jpg", 1)
    runner = CliRunner()
    assert runner.invoke(app, ["index", "--model", str(tiny_model_dir), str(tmp_path / "photos")]).exit_code == 0
    result = runner.invoke(app, ["query", "--json", "a red square"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # the index reveals what is in someone's photos


@pytest.mark.slow
def test_file_names_that_look_like_options_are_just_files(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weird = tmp_path / "-weird"
    help_photo = write_photo(weird / "--help.jpg", 1)
    rf_photo = write_photo(weird / "-rf.jpg", 2)
    db = str(tmp_path / "i.db")
    runner = CliRunner()

    result = runner.invoke(app, ["index", "--db", db, "--model", str(tiny_model_dir), "--json", "--", "-weird"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 2
    assert help_photo.exists() and rf_photo.exists()

    hits = json.loads(runner.invoke(app, ["query", "--db", db, "--json", "--", "--help"]).stdout)
    assert {hit["path"] for hit in hits} == {str(help_photo), str(rf_photo)}
    # an option's value may start with a dash: `--image -rf.jpg` is the file, not flags
    monkeypatch.chdir(weird)
    by_image = runner.invoke(app, ["query", "--db", db, "--json", "--image", "-rf.jpg"])
    assert by_image.exit_code == 0, by_image.output
    assert json.loads(by_image.stdout)[0]["path"] == str(rf_photo)


@pytest.mark.slow
def test_the_index_file_and_its_wal_are_private_even_in_a_shared_folder(tmp_path, tiny_embedder):
    from umsearch.index import Indexer
    from umsearch.store import Store

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    write_photo(tmp_path / "photos" / "a.jpg", 1)
    with Store.open(shared / "index.db") as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280)).index([str(tmp_path / "photos")])
        for name in ("index.db", "index.db-wal", "index.db-shm"):
            assert stat.S_IMODE((shared / name).stat().st_mode) == 0o600, name

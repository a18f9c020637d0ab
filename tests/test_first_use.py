"""What a first-time user stumbled over (issue 14), each case as that user met it: the real CLI on real files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.photos import write_photo
from tests.search_support import write_exif_photo
from umsearch.cli import EXIT_ERROR, EXIT_PARTIAL, EXIT_USAGE, app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def umsearch(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env=env)


def process_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", **extra}


def run_umsearch(*args: object, env: dict[str, str] | None = None, prefix: list[str] | None = None, timeout=120):
    """The installed command as a shell runs it (a subprocess: its own terminal handling, its own exit)."""
    command = [*(prefix or []), sys.executable, "-m", "umsearch", *map(str, args)]
    return subprocess.run(command, env=env or process_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for seed in range(3):
        write_photo(root / f"p{seed}.jpg", seed)
    write_photo(root / "x:smile:y.jpg", 7)
    return root


def make_index(photos: Path, db: Path, model: Path) -> Path:
    result = umsearch("index", photos, "--db", db, "--model", model, "--quality", "fast", "--json")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def indexed(photos: Path, tiny_model_dir: Path, tmp_path: Path) -> Path:
    """An index of `photos` of this test's own, for tests that change the folder."""
    return make_index(photos, tmp_path / "index.db", tiny_model_dir)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """(index, photos) built once for the tests that only read them."""
    root = tmp_path_factory.mktemp("shared")
    for seed in range(3):
        write_photo(root / "photos" / f"p{seed}.jpg", seed)
    return make_index(root / "photos", root / "index.db", tiny_model_dir), root / "photos"


# ---- 1. `:name:` is text, never an emoji -------------------------------------------------------------
@pytest.mark.parametrize(
    "args, shown",
    [
        (["query", "beach min:abc:"], "min:abc:"),
        (["query", "beach", "--after", ":thumbs_up:"], "':thumbs_up:' is not a date"),
        (["query", "--image", "/tmp/trip:smile:.jpg"], "/tmp/trip:smile:.jpg: no such file"),
    ],
)
@pytest.mark.slow
def test_user_text_in_errors_prints_exactly_as_given(shared, args, shown) -> None:
    result = umsearch(*args, "--db", shared[0])
    assert result.exit_code == EXIT_ERROR
    assert shown in result.stderr, result.stderr


@pytest.mark.slow
def test_paths_with_colon_names_print_as_given_in_status_tables_and_watch_lines(indexed, photos) -> None:
    (photos / "bad:smile:.jpg").write_bytes(b"not a photo")
    umsearch("index", photos, "--db", indexed)
    assert f"{photos}/bad:smile:.jpg: " in umsearch("status", "--db", indexed).stdout
    # A terminal table (rich), as a person sees it: TTY_COMPATIBLE makes rich draw for a terminal.
    terminal = process_env(TTY_COMPATIBLE="1", COLUMNS="400")
    shown = run_umsearch("similar", photos / "p0.jpg", "--db", indexed, env=terminal)
    assert shown.returncode == 0, shown.stderr
    assert "x:smile:y.jpg" in shown.stdout and "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in shown.stdout


# ---- 2. watch reads the metadata of a copied photo ------------------------------------------------------
@pytest.mark.slow
def test_a_copy_picked_up_by_the_watcher_gets_its_own_metadata(tmp_path, tiny_embedder) -> None:
    from umsearch.index import Indexer
    from umsearch.settings import max_pixels
    from umsearch.store import Store

    root = tmp_path / "photos"
    original = write_exif_photo(root / "2024" / "a.jpg", 1, taken="2021:07:04 10:30:00", make="Canon", model="R6")
    with Store.open(tmp_path / "i.db") as store:
        indexer = Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(16), image_budget=(4, 16))
        indexer.index([str(root)])
        copy = root / "2024" / "b.jpg"
        shutil.copy(original, copy)  # a new file time: only EXIF knows when it was taken
        result = indexer.sync([str(copy)])  # what the watcher does when the copy arrives
        assert result.summary.added == 1
        row = store.file_by_path(str(copy))
        source = store.file_by_path(str(original))
        facts = store.facts_by_id([row.id, source.id])
        assert "Canon" in (facts[row.id].camera or "")
        assert facts[row.id].taken == facts[source.id].taken is not None
        assert store.count_missing_metadata() == 0


# ---- 3. a read-only index can be read --------------------------------------------------------------------
def _without_write_permission() -> list[str] | None:
    """A command prefix under which file permissions apply (root ignores them unless it gives that up)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_read_only_commands_work_on_an_index_in_a_read_only_folder(shared, tmp_path) -> None:
    indexed, photos = shared
    prefix = _without_write_permission()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "index.db"
    shutil.copy(indexed, db)
    db.chmod(0o444)
    folder.chmod(0o555)
    env = process_env(UMSEARCH_HOME=str(tmp_path / "home"))
    try:
        for args in (["status"], ["similar", photos / "p1.jpg"], ["dupes"], ["query", "a red bike", "--json"]):
            result = run_umsearch(*args, "--db", db, env=env, prefix=prefix)
            assert result.returncode == 0, (args, result.stderr)
            assert "readonly" not in result.stderr
        assert len(json.loads(result.stdout)) == 3  # the last one: a text query, answered
        refused = run_umsearch("index", photos, "--db", db, env=env, prefix=prefix)
        assert refused.returncode == EXIT_ERROR
        assert "write permission" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in folder.iterdir()) == ["index.db"]  # nothing was written beside it
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)


# ---- 4 and 5. what is wrong with a query is said plainly ------------------------------------------------
def test_a_folder_given_as_query_image_is_called_a_folder(shared) -> None:
    indexed, photos = shared
    result = umsearch("query", "--image", photos, "--db", indexed)
    assert result.exit_code == EXIT_ERROR and "is a folder, not an image" in result.stderr


@pytest.mark.parametrize(
    "text, said",
    [
        ("", "give something to search for"),
        ("sort:date", "options narrow a search but cannot rank"),
        ("min:0.2", "options narrow a search but cannot rank"),
        ("-people", "not only -negative terms"),
    ],
)
def test_what_a_query_is_missing_is_said_plainly(shared, text, said) -> None:
    result = umsearch("query", "--db", shared[0], "--", text)
    assert result.exit_code == EXIT_ERROR and said in result.stderr
    if "negative" not in said:
        assert "negative" not in result.stderr


def test_filters_alone_list_the_newest_photos_that_pass(shared) -> None:
    """A query of filters only (`type:jpg`, `yesterday`) is not a mistake: the newest photos that pass, unscored."""
    result = umsearch("query", "--db", shared[0], "--json", "--", "type:jpg")
    hits = json.loads(result.stdout)
    assert result.exit_code == 0 and len(hits) == 3 and all(hit["score"] is None for hit in hits)
    assert json.loads(umsearch("query", "--db", shared[0], "--json", "--", "type:png").stdout) == []


# ---- 6. a command line that cannot be understood: one line, a documented code ---------------------------
@pytest.mark.parametrize(
    "args, option",
    [
        (["query", "x", "--limit", "0"], "--limit"),
        (["query", "x", "--limit", "-1"], "--limit"),
        (["query", "x", "--min-score", "abc"], "--min-score"),
        (["dupes", "--threshold", "1.5"], "--threshold"),
        (["query", "x", "--no-such-option"], "--no-such-option"),
    ],
)
def test_usage_errors_are_one_line_with_the_documented_exit_status(shared, args, option) -> None:
    result = umsearch(*args, "--db", shared[0])
    assert result.exit_code == EXIT_USAGE == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and option in lines[0], result.stderr
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"`2` the command line", readme)


# ---- 7. nothing to index is worth a warning --------------------------------------------------------------
@pytest.mark.parametrize("what", ["empty folder", "text file"])
def test_indexing_no_photos_at_all_warns_and_names_the_extensions(tmp_path, tiny_model_dir, what) -> None:
    target = tmp_path / "nothing"
    if what == "empty folder":
        target.mkdir()
    else:
        target.write_text("hello")
    result = umsearch("index", target, "--db", tmp_path / "i.db", "--model", tiny_model_dir)
    assert result.exit_code == 0
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "no photos found" in warning[0] and str(target) in warning[0]
    assert all(ext in warning[0] for ext in ("jpg", "png", "heic", "webp"))


# ---- 8. piped output is one result per line ------------------------------------------------------------
@pytest.mark.slow
def test_piped_results_are_one_line_each_never_wrapped_without_empty_columns(tmp_path, tiny_model_dir) -> None:
    deep = tmp_path / ("a very long folder name that a terminal table would fold " * 3).strip() / "2024" / "trip"
    for seed in range(3):
        write_photo(deep / f"photo number {seed} from the long trip.jpg", seed)
    db = tmp_path / "i.db"
    assert umsearch("index", deep, "--db", db, "--model", tiny_model_dir, "--quality", "fast").exit_code == 0
    result = umsearch("similar", deep / "photo number 0 from the long trip.jpg", "--db", db, "-n", "3")
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["#", "score", "taken", "path"]  # "place" is empty for every photo: left out
    assert len(lines) == 3  # a header and the two other photos
    for line in lines[1:]:
        rank, score, taken, path = line.split("\t")
        assert Path(path).is_file() and path.startswith(str(deep))
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", taken) and float(score) <= 1.0 and int(rank) >= 1


# ---- 9. the progress bar tells the truth while the model loads ------------------------------------------
def test_the_progress_bar_says_loading_model_and_measures_rates_from_real_batches(monkeypatch) -> None:
    from umsearch import present

    bar = present.BarProgress()
    bar.start(65)
    task = bar._progress.tasks[0]
    bar.advance(2)  # two copies resolved instantly before the model was needed
    bar.note("loading model")
    assert task.description == "loading model"
    assert present.measured_rate(task) is None
    assert "– img/s" in str(present.RateColumn().render(task))
    time.sleep(0.2)  # the model loads...
    bar.note(None)
    time.sleep(0.2)
    bar.advance(8)  # the first batch
    bar.finish()
    rate = present.measured_rate(task)
    assert task.description == "embedding" and rate is not None and 10 < rate < 45  # 8 images in ~0.2 s


@pytest.mark.slow
def test_the_indexer_reports_loading_the_model_before_the_first_batch(tmp_path, tiny_embedder) -> None:
    from umsearch.index import Indexer
    from umsearch.settings import max_pixels
    from umsearch.store import Store

    events: list[tuple[str, object]] = []

    class Recorder:
        def start(self, total: int) -> None:
            events.append(("start", total))

        def advance(self, count: int = 1) -> None:
            events.append(("advance", count))

        def note(self, text: str | None) -> None:
            events.append(("note", text))

        def finish(self) -> None:
            events.append(("finish", None))

    for seed in range(3):
        write_photo(tmp_path / "p" / f"{seed}.jpg", seed)
    with Store.open(tmp_path / "i.db") as store:
        Indexer(
            store, lambda: tiny_embedder, max_pixels=max_pixels(16), image_budget=(4, 16), progress=Recorder()
        ).index([str(tmp_path / "p")])
    assert events[:3] == [("start", 3), ("note", "loading model"), ("note", None)]
    assert events[3:] == [("advance", 3), ("finish", None)]


# ---- 10. the TUI in a terminal that does not answer --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which("script") is None or sys.platform != "linux", reason="needs util-linux script")
@pytest.mark.parametrize("mode", ["halfcell", "auto"])
def test_the_tui_starts_and_quits_without_a_traceback_where_the_terminal_never_answers(shared, tmp_path, mode):
    indexed = shared[0]
    """`script` gives the app a pseudo-terminal that answers no query and reports a 0x0 window."""
    env = process_env(UMSEARCH_HOME=str(tmp_path / "home"), TERM="xterm-256color")
    command = f"{sys.executable} -m umsearch tui --images {mode} --db '{indexed}'"
    proc = subprocess.Popen(
        ["script", "-qec", command, "/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        time.sleep(8)  # the app is up (or has failed) by now
        proc.stdin.write(b"\x11")  # Ctrl+Q
        proc.stdin.flush()
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = output.decode("utf-8", "replace")
    assert "Traceback" not in text and "Failed to get cell size" not in text and "error:" not in text, text[-2000:]
    assert proc.returncode == 0


# ---- 11. the README's quick start ------------------------------------------------------------------------
def test_the_readme_starts_with_its_title_then_install_and_run_then_the_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# umsearch\n")
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    install_and_run, tests = commands[0], commands[1]
    assert "pip install" in install_and_run and "umsearch query" in install_and_run
    # The model download comes first: its message and progress are never hidden by a later failure.
    assert install_and_run.index("umsearch model download") < install_and_run.index("umsearch index")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.startswith("python3 -m venv .venv && ") and "pytest" in tests
    assert tests.split(" && ", 1)[1] in ci  # CI makes its own venv, then runs the rest verbatim


def test_indexing_a_folder_that_does_not_exist_says_what_to_give_instead(tmp_path) -> None:
    result = umsearch("index", tmp_path / "Pictures", "--db", tmp_path / "i.db")
    assert result.exit_code == EXIT_ERROR
    line = result.stderr.strip()
    assert f"{tmp_path / 'Pictures'}: no such file or folder" in line and "give the folder" in line


# ---- 12. offline advice that can work ---------------------------------------------------------------------
def test_model_download_with_hf_hub_offline_says_to_unset_it(tmp_path) -> None:
    result = umsearch("model", "download", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.exit_code == EXIT_ERROR
    assert "unset HF_HUB_OFFLINE" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---- 13. help speaks in words ---------------------------------------------------------------------------
def _command_paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


@pytest.mark.slow
def test_help_names_values_in_words_and_shows_descriptions_whole() -> None:
    from typer.main import get_command

    root = get_command(app)
    for path in _command_paths(root):
        text = umsearch(*path, "--help").stdout
        assert not re.search(r"<[a-z]+[^>]*>|list\[|\{[a-z_]+\}", text), (path, text)
        assert "..." not in text.split("Commands:")[-1].replace("PATHS...", "") if "Commands:" in text else True
        assert umsearch(*path, "-h").stdout == text
    listing = " ".join(umsearch("--help").stdout.split())
    for name, command in root.commands.items():
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert first in listing, name


def test_version_and_the_model_default_that_the_environment_overrides() -> None:
    version = umsearch("--version")
    assert version.exit_code == 0 and re.fullmatch(r"umsearch \S+\n", version.stdout)
    assert "UMSEARCH_MODEL" in " ".join(umsearch("model", "info", "--help").stdout.split())


# ---- 14. the index summary agrees with status ----------------------------------------------------------
@pytest.mark.slow
def test_a_rerun_counts_old_failures_as_failed_like_status(indexed, photos) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    first = umsearch("index", photos, "--db", indexed, "--json")
    again = umsearch("index", photos, "--db", indexed, "--json")
    assert first.exit_code == again.exit_code == EXIT_PARTIAL
    counts = json.loads(again.stdout)
    status = json.loads(umsearch("status", "--db", indexed, "--json").stdout)
    assert counts["failed"] == status["failed"] == 1
    assert counts["unchanged"] == status["indexed"] == 4
    assert "failed in an earlier run" in umsearch("index", photos, "--db", indexed).stderr


# ---- 15. watch names each change; an unknown type is named -----------------------------------------------
def test_an_unknown_file_type_is_named_not_searched(shared) -> None:
    for args in (["query", "type:xyz cat"], ["query", "cat", "--type", "jpg,xyz"]):
        result = umsearch(*args, "--db", shared[0])
        assert result.exit_code == EXIT_ERROR
        assert "'xyz'" in result.stderr and "jpg" in result.stderr and "no matches" not in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_watch_prints_one_line_per_change_naming_the_file(photos, tiny_model_dir, tmp_path) -> None:
    db = tmp_path / "w.db"
    for old in photos.iterdir():  # a library's photos were written long ago; fresh ones wait out the quiet period
        os.utime(old, (time.time() - 3600, time.time() - 3600))
    command = [sys.executable, "-m", "umsearch", "watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir)]
    command += ["--quality", "fast", "--quiet-period", "0.3"]
    # Photos from a minute ago: done, whether the watcher's first scan comes before or after its quiet period.
    for photo in photos.iterdir():
        os.utime(photo, (time.time() - 60, time.time() - 60))
    proc = subprocess.Popen(command, env=process_env(), stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        lines += _read_until(proc, "caught up")
        write_photo(photos / "new one.jpg", 21)
        (photos / "p2.jpg").rename(photos / "renamed.jpg")
        lines += _read_until(proc, "renamed.jpg")
        lines += _read_until(proc, "new one.jpg") if not any("new one.jpg" in line for line in lines) else []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert not any("still being written" in line for line in lines if "caught up" in line), lines
    changes = [line for line in lines if re.match(r"\d\d:\d\d:\d\d (added|moved|removed|updated|failed) ", line)]
    assert any(line.endswith(f" added {photos / 'new one.jpg'}") for line in changes), lines
    assert any(line.endswith(f" moved {photos / 'p2.jpg'} -> {photos / 'renamed.jpg'}") for line in changes), lines


def _read_until(proc: subprocess.Popen, needle: str, timeout: float = 120) -> list[str]:
    """Lines of the watcher's stderr up to one containing `needle` (read on a thread: no partial buffers)."""
    import queue
    import threading

    lines_queue: queue.Queue[str | None] = getattr(proc, "lines", None) or queue.Queue()
    if not hasattr(proc, "lines"):
        proc.lines = lines_queue  # type: ignore[attr-defined]

        def pump() -> None:
            for line in proc.stderr:
                lines_queue.put(line.rstrip("\n"))
            lines_queue.put(None)

        threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines_queue.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"no line with {needle!r} from the watcher: {lines}")

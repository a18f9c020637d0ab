"""The resident service: real `umsearch` processes over real sockets, with the tiny model.

Every process a test starts is killed by its fixture's finaliser (process groups included); the services
started here also carry an idle timeout, so even a crashed test run leaves nothing behind for long.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from umsearch.index import Indexer
from umsearch.querylang import parse_search_text
from umsearch.service import protocol
from umsearch.service.client import ServiceClient, find_service
from umsearch.service.paths import MAX_SOCKET_PATH, service_paths
from umsearch.service.route import Route, ServiceBackend
from umsearch.session import SearchQuery, Session
from umsearch.settings import max_pixels
from umsearch.store import Store
from umsearch.tui.service import SearchService

from .photos import write_photo
from .service_support import (
    Processes,
    copy_index,
    hits,
    same_hits,
    service_env,
    umsearch,
    wait_for,
    wait_for_service,
)

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

PHOTOS = 8


def refuse_model(*args: object) -> object:
    raise AssertionError("this process must not load the model")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_embedder) -> tuple[Path, Path, Path]:
    """An index of a few photos (built once), a pristine copy of it, and a photo that is not in it."""
    root = tmp_path_factory.mktemp("library")
    photos = root / "photos"
    for seed in range(PHOTOS):
        write_photo(photos / f"p{seed}.jpg", seed)
    outside = write_photo(root / "outside" / "new.jpg", 99)
    db = root / "pristine" / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280)).index([str(photos)])
    return db, photos, outside


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracked = Processes()
    yield tracked
    tracked.cleanup()


@pytest.fixture(scope="module")
def module_processes() -> Iterator[Processes]:
    tracked = Processes()
    yield tracked
    tracked.cleanup()


def fresh_index(library: tuple[Path, Path, Path], where: Path, processes: Processes) -> Path:
    return processes.index(copy_index(library[0], where / "index.db"))


@pytest.fixture(scope="module")
def warm(library, tmp_path_factory, module_processes) -> tuple[Path, dict[str, str]]:
    """A service started the way users start one: by a query that needs the model (module-wide, warm)."""
    home = tmp_path_factory.mktemp("warm-home")
    db = fresh_index(library, home, module_processes)
    env = service_env(home, db, UMSEARCH_SERVICE_READ_TIMEOUT="1")
    first = umsearch(env, "query", "--json", "warming up")
    assert first.returncode == 0, first.stderr
    assert module_processes.service_pid(db) is not None
    return db, env


def reference(library, tiny_embedder, tmp_path: Path) -> Session:
    """The in-process answer, on a copy of the index that shares no query cache with the service's."""
    db = copy_index(library[0], tmp_path / "reference" / "index.db")
    return Session(Store.open(db), embedder_factory=lambda *a: tiny_embedder)


def json_hits(result) -> list[tuple[str, float]]:
    return [(hit.path, hit.score) for hit in result.hits]


# ---- using the service --------------------------------------------------------------------------------
def test_a_query_that_needs_the_model_starts_a_private_service_that_later_queries_use(warm) -> None:
    db, env = warm
    paths = service_paths(db)
    client = find_service(paths)
    assert client is not None and client.identity["model_loaded"]
    assert stat.S_IMODE(os.stat(paths.folder).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(paths.socket).st_mode) == 0o600 and stat.S_ISSOCK(os.lstat(paths.socket).st_mode)
    assert stat.S_IMODE(os.stat(paths.log).st_mode) == 0o600
    before = client.status()["requests"]
    second = umsearch(env, "query", "--json", "a second question")
    assert second.returncode == 0 and second.stderr == ""
    status = json.loads(umsearch(env, "server", "status", "--json").stdout)
    assert status["pid"] == client.pid and status["requests"] > before
    assert status["device"] == "cpu" and status["dtype"] == "float32" and status["quant"] == "none"
    assert status["rss_bytes"] > 0 and status["uptime_s"] > 0 and status["index"] == str(paths.db)
    text = umsearch(env, "server", "status").stdout
    assert f"pid {client.pid}" in text and "requests" in text and "loaded" in text
    assert f"service   running (pid {client.pid}, model loaded)" in umsearch(env, "status").stdout


def test_results_are_identical_in_process_and_through_the_service(warm, library, tiny_embedder, tmp_path) -> None:
    db, env = warm
    _, photos, outside = library
    in_process_db = copy_index(library[0], tmp_path / "cli" / "index.db")
    cli_alone = umsearch({**env, "UMSEARCH_DB": str(in_process_db)}, "query", "--json", "--no-server", "a red door")
    assert same_hits(hits(umsearch(env, "query", "--json", "a red door")), hits(cli_alone))

    client = find_service(service_paths(db))
    assert client is not None
    with reference(library, tiny_embedder, tmp_path) as session:
        for text in (
            "green hills -people",
            f"like:{outside} at night",  # an image outside the index, fused with words
            f'"blue sky"^2 + sunset^0.5 in:{photos} min:-1',
            f"like:{photos / 'p3.jpg'}",  # an indexed photo: its stored vector
        ):
            query = SearchQuery(parse_search_text(text), limit=5)
            assert json_hits(client.search(query)) == json_hits(session.search(query)), text
        page = SearchQuery(parse_search_text("a page further"), limit=3, offset=2)
        assert client.search(page).hits == session.search(page).hits
        for photo in (str(photos / "p1.jpg"), str(outside)):
            query = SearchQuery(parse_search_text(""), limit=4)
            assert client.similar(photo, query).hits == session.similar(photo, query).hits
        assert client.embed("a cat", None, None) == [float(x) for x in session.embed("a cat")]


def test_similar_and_embed_commands_use_the_service_with_the_same_output(
    warm, library, tiny_embedder, tmp_path
) -> None:
    db, env = warm
    _, photos, outside = library
    alone = {**env, "UMSEARCH_DB": str(copy_index(library[0], tmp_path / "alone" / "index.db"))}
    indexed = ["similar", "--json", str(photos / "p2.jpg")]  # its stored vector: no model on either side
    assert same_hits(hits(umsearch(env, *indexed)), hits(umsearch(alone, *indexed, "--no-server")))
    with reference(library, tiny_embedder, tmp_path) as session:
        expected = session.similar(str(outside), SearchQuery(parse_search_text(""), limit=20))
        vector = [round(float(x), 7) for x in session.embed("a lighthouse")]
    assert same_hits(hits(umsearch(env, "similar", "--json", str(outside))), json_hits(expected))
    model = find_service(service_paths(db)).identity["model"]  # type: ignore[union-attr]
    through = umsearch(env, "embed", "--text", "a lighthouse", "--model", model)
    assert through.returncode == 0 and through.stderr == "", through.stderr
    assert json.loads(through.stdout) == vector


def test_eight_clients_at_once_all_get_their_own_right_answer(warm, library, tiny_embedder, tmp_path) -> None:
    db, env = warm
    texts = [f"question number {i}" for i in range(8)]
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "umsearch", "query", "--json", "--limit", "4", text],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for text in texts
    ]
    answers = []
    for process in running:
        out, err = process.communicate(timeout=240)
        answers.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    with reference(library, tiny_embedder, tmp_path) as session:
        for text, answer in zip(texts, answers):
            assert answer.stderr == ""
            expected = json_hits(session.search(SearchQuery(parse_search_text(text), limit=4)))
            assert same_hits(hits(answer), expected), text


HEAVY = ("torch", "transformers", "textual", "numpy", "starlette", "uvicorn", "PIL")
PROBE = """
import atexit, json, sys
atexit.register(lambda: sys.stderr.write("HEAVY " + json.dumps(sorted(
    m for m in {heavy!r} if m in sys.modules)) + "\\n"))
sys.argv = ["umsearch", *{args!r}]
from umsearch.cli import main
main()
"""


@pytest.mark.parametrize("output", ["--json", "--paths", "--limit=3"])
def test_a_query_through_a_warm_service_imports_nothing_heavy(warm, output) -> None:
    _, env = warm
    probe = PROBE.format(heavy=HEAVY, args=["query", output, "something never asked before " + output])
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    heavy = json.loads(done.stderr.split("HEAVY ")[-1])
    assert heavy == [], f"the client imported {heavy}"


def test_the_tui_searches_through_the_service_and_loads_no_model_itself(warm, library, tiny_embedder, tmp_path):
    db, _ = warm
    local = Session(Store.open(db, create=False), embedder_factory=refuse_model)
    backend = ServiceBackend(local, Route(db=db, open_session=lambda: Session.open(db)))
    through = SearchService(backend)
    with reference(library, tiny_embedder, tmp_path) as session:
        alone = SearchService(session)
        for typed in ("a tui search", "sunset -clouds", ""):
            assert through.run(typed) == alone.run(typed), typed
        first = alone.recent(3)[0].file_id
        assert through.run("", like_file_id=first) == alone.run("", like_file_id=first)
    through.load_model()
    assert through.model_loaded and not local.model_loaded
    through.close()


def raw_request(path: Path, data: bytes, *, wait: float = 5.0, close_write: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait)
        sock.connect(str(path))
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def test_bad_requests_get_an_error_answer_and_the_service_keeps_serving(warm) -> None:
    db, _ = warm
    paths = service_paths(db)
    client = find_service(paths)
    assert client is not None
    head = "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    cases = {
        b"not json at all": "400",
        b'{"limit": "many"}': "400",
        b'{"request": {"positives": [{"text": 5}]}, "limit": 3}': "400",
        b'{"request": {}, "limit": 3, "surprise": 1}': "400",
    }
    for body, status in cases.items():
        answer = raw_request(paths.socket, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
        assert b'"error"' in answer
    too_big = raw_request(paths.socket, f"{head}Content-Length: {protocol.MAX_BODY + 1}\r\n\r\n".encode() + b"{")
    assert too_big.startswith(b"HTTP/1.1 413")
    half_body = raw_request(paths.socket, f"{head}Content-Length: 100\r\n\r\n".encode() + b'{"req')
    assert half_body.startswith(b"HTTP/1.1 408")
    half_head = raw_request(paths.socket, b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Le")
    assert half_head.startswith(b"HTTP/1.1 408")
    garbage = raw_request(paths.socket, b"\x00\xff\x16\x03 nonsense\r\n\r\n", close_write=True)
    assert garbage.startswith(b"HTTP/1.1 400") or garbage == b""
    assert raw_request(paths.socket, b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert find_service(paths) is not None and find_service(paths).pid == client.pid  # type: ignore[union-attr]
    assert client.search(SearchQuery(parse_search_text("still here"), limit=2)).hits


# ---- starting, stopping, faults -------------------------------------------------------------------------
def test_a_cached_query_or_a_stored_vector_needs_no_service_at_all(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db)
    photo = library[1] / "p4.jpg"
    stored = umsearch(env, "query", "--json", "--image", str(photo))
    assert stored.returncode == 0, stored.stderr
    assert not os.path.exists(service_paths(db).socket)
    off = umsearch({**env, "UMSEARCH_SERVER": "off"}, "query", "--json", "asked in-process")
    assert off.returncode == 0 and not os.path.exists(service_paths(db).socket)
    cached = umsearch(env, "query", "--json", "asked in-process")  # in the index's cache now
    assert hits(cached) == hits(off) and not os.path.exists(service_paths(db).socket)


def test_idle_timeout_stops_the_service_and_removes_its_socket(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    service = processes.spawn(service_env(tmp_path, db), "serve", "--idle-timeout", "1")
    wait_for_service(db)
    assert service.wait(30) == 0
    assert not os.path.exists(service_paths(db).socket)


def test_sigterm_stops_the_service_within_five_seconds_with_exit_0(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    service = processes.spawn(service_env(tmp_path, db), "serve", "--idle-timeout", "0")
    client = wait_for_service(db)
    assert client.status()["idle_timeout_s"] == 0
    service.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert service.wait(10) == 0
    assert time.monotonic() - started < 5
    assert not os.path.exists(service_paths(db).socket)


def test_a_stale_socket_is_detected_and_replaced(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db)
    paths = service_paths(db)
    paths.folder.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(paths.socket))  # what a killed service leaves: a socket file nobody listens on
    dead.close()
    assert "no service runs" in umsearch(env, "server", "status").stdout
    processes.spawn(env, "serve")
    client = wait_for_service(db)
    assert client.status()["pid"] == client.pid
    stopped = umsearch(env, "server", "stop")
    assert stopped.returncode == 0 and f"pid {client.pid}" in stopped.stdout
    assert "no service runs" in umsearch(env, "server", "status").stdout


def test_a_second_serve_for_the_same_index_says_one_already_runs(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db)
    processes.spawn(env, "serve")
    first = wait_for_service(db)
    second = umsearch(env, "serve")
    assert second.returncode == 1 and "already runs" in second.stderr
    assert find_service(service_paths(db)).pid == first.pid  # type: ignore[union-attr]


def test_two_clients_starting_a_service_at_the_same_moment_end_with_one(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db)
    clients = [processes.spawn(env, "query", "--json", f"simultaneous {i}") for i in range(2)]
    for client in clients:
        out, err = client.communicate(timeout=240)
        assert client.returncode == 0, err
        assert json.loads(out) and "warning" not in err
    log = service_paths(db).log.read_text()
    assert log.count(" service (pid ") == 1, log
    assert processes.service_pid(db) is not None


def test_a_service_killed_mid_request_is_replaced_by_an_in_process_answer(library, tiny_embedder, tmp_path, processes):
    db = fresh_index(library, tmp_path / "killed", processes)
    env = service_env(tmp_path, db)
    paths = service_paths(db)
    asking = processes.spawn(env, "query", "--json", "interrupted question")
    # The first request makes the service load the model: kill it while it does.
    wait_for(lambda: paths.log.exists() and "loading model" in paths.log.read_text(), 120, "the model load")
    pid = processes.service_pid(db)
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    out, err = asking.communicate(timeout=240)
    assert asking.returncode == 0, err
    assert "stopped while answering" in err and "in-process" in err and len(err.strip().splitlines()) == 1
    with reference(library, tiny_embedder, tmp_path) as session:
        expected = json_hits(session.search(SearchQuery(parse_search_text("interrupted question"))))
    assert same_hits([(h["path"], h["score"]) for h in json.loads(out)], expected)


def test_a_model_that_fails_to_load_is_one_line_for_the_client(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db)
    broken = tmp_path / "model-that-is-broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with Store.open(db, create=False) as store, store.transaction():
        store.set_meta("model_id", str(broken))
    answer = umsearch(env, "query", "--json", "needs the model")
    assert answer.returncode == 1 and answer.stdout == ""
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1 and "model-that-is-broken" in lines[0] and "Traceback" not in answer.stderr
    assert find_service(service_paths(db)) is not None  # the service is still there for the next try


def test_no_server_keeps_a_query_that_needs_the_model_in_process(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)  # (UMSEARCH_SERVER=off: the cached-query test above)
    env = service_env(tmp_path, db)
    assert umsearch(env, "query", "--json", "--no-server", "a thing").returncode == 0
    assert not service_paths(db).folder.exists()


def test_loopback_tcp_with_a_token_where_unix_sockets_are_not_used(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db, UMSEARCH_SERVICE_TRANSPORT="tcp")
    processes.spawn(env, "serve")
    paths = service_paths(db)
    wait_for(lambda: paths.tcp.exists(), 60, "the TCP record")
    assert stat.S_IMODE(os.stat(paths.tcp).st_mode) == 0o600
    record = json.loads(paths.tcp.read_text())
    status = json.loads(wait_for(lambda: umsearch(env, "server", "status", "--json").stdout, 60, "status"))
    assert status["running"] and status["transport"] == "tcp" and status["socket"] is None
    intruder = ServiceClient(paths, port=record["port"], token="guess")
    with pytest.raises(Exception, match="token"):
        intruder.hello()
    with socket.create_connection(("127.0.0.1", record["port"]), timeout=5) as sock:
        sock.sendall(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 401")
    assert umsearch(env, "server", "stop").returncode == 0
    assert not paths.tcp.exists()


def test_an_index_too_deep_for_a_unix_socket_uses_a_private_fallback_folder(
    library, tmp_path, processes, monkeypatch, request
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    db = fresh_index(library, deep, processes)
    runtime = Path(tempfile.mkdtemp(prefix="xdg"))  # a short runtime folder, as /run/user/UID is
    request.addfinalizer(lambda: shutil.rmtree(runtime, ignore_errors=True))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    env = service_env(tmp_path, db, XDG_RUNTIME_DIR=str(runtime))
    paths = service_paths(db)
    assert paths.socket_is_fallback and len(os.fsencode(str(paths.socket))) <= MAX_SOCKET_PATH
    processes.spawn(env, "serve")
    wait_for(lambda: find_service(paths), 60, "the service")
    assert stat.S_IMODE(os.stat(paths.socket.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(paths.socket).st_mode) == 0o600


# ---- the watcher is the service ---------------------------------------------------------------------------
def test_the_watcher_answers_queries_while_it_indexes_a_burst(library, tmp_path, processes) -> None:
    db = fresh_index(library, tmp_path, processes)
    env = service_env(tmp_path, db)
    photos = library[1]
    (tmp_path / "burst").mkdir()
    plain = processes.spawn(env, "serve")  # a query service already runs: the watcher takes over from it
    wait_for_service(db)
    watcher = processes.spawn(env, "watch", "--quiet-period", "0", str(photos), str(tmp_path / "burst"))
    wait_for(lambda: plain.poll() is not None or watcher.poll() is not None, 120, "the watcher's takeover")
    assert watcher.poll() is None, watcher.communicate()[1]
    assert plain.wait(10) == 0
    client = wait_for_service(db)
    assert client.identity["watching"] and client.pid == watcher.pid  # one process: one model in memory
    burst = tmp_path / "burst"
    answers: list[int] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for i in range(6):
                answers.append(len(client.search(SearchQuery(parse_search_text(f"during the burst {i}"))).hits))
        except BaseException as exc:
            errors.append(exc)

    asking = threading.Thread(target=ask)
    for seed in range(24):
        write_photo(burst / f"b{seed}.jpg", 200 + seed)
        if seed == 4:
            asking.start()
    asking.join(240)
    assert not errors and len(answers) == 6
    wait_for(lambda: _indexed(db) == PHOTOS + 24, 120, "the burst indexed")
    newest = client.search(SearchQuery(parse_search_text(f"like:{burst / 'b7.jpg'}"), limit=1)).hits[0]
    assert newest.path == str(burst / "b7.jpg")
    refused = umsearch(env, "server", "stop")
    assert refused.returncode == 1 and "stop the watch" in refused.stderr
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(30) == 0
    assert find_service(service_paths(db)) is None


def _indexed(db: Path) -> int:
    with Store.open(db, create=False) as store:
        return store.counts().indexed


# ---- the wire form ------------------------------------------------------------------------------------
def test_queries_and_results_cross_the_wire_exactly() -> None:
    from umsearch.search import Hit
    from umsearch.session import SearchResult

    request = parse_search_text(
        'beach "red car"^2.5 + sunset^0.1 -people -like:/x/y.jpg after:2020 before:2021-06 type:jpg,png '
        "camera:Canon place:Portugal min:0.123456789 sort:date in:/photos"
    )
    query = SearchQuery(request, limit=7, offset=3, instruction="Find a photo.")
    wire = protocol.dumps(protocol.encode_query(query))
    assert protocol.decode_query(protocol.loads(wire)) == query
    odd = "/photos/caf\udce9 <script>.jpg"  # a non-UTF-8 file name, as Python keeps it
    result = SearchResult([Hit(1, 0.1 + 0.2, odd, 5, 1_700_000_000, "Canon", None)], 9, "a notice")
    assert protocol.decode_result(protocol.loads(protocol.dumps(protocol.encode_result(result)))) == result


def test_route_refuses_a_service_of_another_version_model_or_runtime(tmp_path) -> None:
    from umsearch import __version__
    from umsearch.runtime import RuntimeRequest

    db = tmp_path / "index.db"
    db.write_bytes(b"")
    info = os.stat(db)
    identity = {
        "protocol": protocol.PROTOCOL,
        "version": __version__,
        "index": str(service_paths(db).db),
        "index_id": [info.st_dev, info.st_ino],
        "model": "/models/a",
        "runtime": {"device": "auto", "quant": "auto", "dtype": "auto"},
        "loaded": {"device": "cpu", "quant": "none", "dtype": "float32"},
        "budget": [256, 1280],
        "index_budget": [256, 1280],
        "watching": False,
    }
    route = Route(db=db, open_session=lambda: Session.open(db))
    assert route.unfit(identity) is None
    assert "0.0.1" in route.unfit({**identity, "version": "0.0.1"}) and route.replaceable({**identity, "version": "x"})
    assert not route.replaceable({**identity, "version": "x", "watching": True})
    assert "index file" in route.unfit({**identity, "index_id": [0, 0]})
    assert "model" in Route(db=db, open_session=Session.open, model="/models/b").unfit(identity)
    bf16 = Route(db=db, open_session=Session.open, runtime=RuntimeRequest(dtype="bfloat16"))
    assert "--dtype float32, not bfloat16" in bf16.unfit(identity)
    assert Route(db=db, open_session=Session.open, runtime=RuntimeRequest(dtype="float32")).unfit(identity) is None
    assert "visual tokens" in Route(db=db, open_session=Session.open, quality="fast").unfit(identity)


@pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning")
def test_the_tui_app_searches_through_the_warm_service(warm, library, tiny_embedder, tmp_path) -> None:
    pytest.importorskip("textual")
    from tests.tui_support import run_async, settle, type_and_wait
    from umsearch.tui.app import make_app
    from umsearch.tui.widgets.results import ResultList

    db, _ = warm
    app = make_app(db, image_mode="halfcell", embedder_factory=refuse_model, server=True)
    assert isinstance(app.service.session, ServiceBackend)  # type: ignore[union-attr]

    @run_async
    async def drive() -> list[str]:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await type_and_wait(pilot, "a harbour at dusk")
            for _ in range(100):
                await settle(pilot)
                shown = [row.result.path for row in app.query_one("#results", ResultList).children]
                if shown and "searching" not in str(app.query_one("#message").render()):
                    return shown
            raise AssertionError("no results shown")

    shown = drive()
    with reference(library, tiny_embedder, tmp_path) as session:
        expected = [hit.path for hit in session.search(SearchQuery(parse_search_text("a harbour at dusk"))).hits]
    assert shown == expected[: len(shown)] and shown

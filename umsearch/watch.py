"""Keep an index live: catch up, then follow file system events and reconcile what they touch.

Events never change the index directly. They only mark paths (files or folders) dirty; a debounced loop
hands the dirty set to `Indexer.sync`, which compares those paths with the disk. So a burst is embedded
in batches, a folder renamed or moved keeps its vectors (same content hash), a deleted folder is removed,
and a lost event (queue overflow, observer failure, a network drive) is repaired by marking the roots
dirty: every case goes through the same reconcile step as `umsearch index`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import DiskFullError, ModelError, UmsearchError
from .index import Indexer, IndexSummary
from .planning import EMPTY_ROOT_KEPT, check_roots
from .scan import FoundFile, is_candidate_name, is_excluded, is_hidden, is_within
from .store import FileRow
from .store.health import is_read_only
from .watchstate import WatcherLock
from .writeguard import WriteGuard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchOptions:
    excludes: tuple[str, ...] = ()
    # A file is read once it was closed after writing (Linux tells us), or once its size and mtime have
    # stood still this long: a photo still being copied is embedded once, complete.
    quiet_period: float = 1.0
    debounce: float = 0.2  # wait this long after the last event, so a burst becomes one reconcile
    max_delay: float = 3.0  # ...but never hold a path longer than this while events keep coming
    rescan_interval: float | None = None  # full reconcile every N seconds (network drives miss events)
    polling: bool = False  # poll the folders instead of kernel events (network drives)
    stop_grace: float = 2.0  # on stop, let the batch in flight finish this long before rolling it back
    model_retry: float = 60.0  # a model that cannot be loaded is tried again after this long (doubling, to 10 min)


@dataclass
class Round:
    """One reconcile step, as reported to the caller (the CLI prints it, tests and benchmarks time it)."""

    summary: IndexSummary
    paths: int  # dirty paths handled
    deferred: int  # files still being written, looked at again later
    seconds: float
    full: bool  # a reconciliation of the whole roots (start-up, overflow, rescan)


@dataclass
class _Dirty:
    first: float
    due: float


class DirtySet:
    """Paths waiting to be reconciled, each due a little after its last event (thread-safe)."""

    def __init__(self, debounce: float, max_delay: float) -> None:
        self.debounce = debounce
        self.max_delay = max_delay
        self._paths: dict[str, _Dirty] = {}
        self._full_paths: set[str] = set()
        self._lock = threading.Lock()
        self.changed = threading.Event()

    def mark(self, path: str, *, delay: float | None = None, full: bool = False) -> None:
        now = time.monotonic()
        wait = self.debounce if delay is None else delay
        with self._lock:
            entry = self._paths.get(path)
            if entry is None:
                self._paths[path] = _Dirty(now, now + wait)
            else:
                entry.due = min(max(entry.due, now + wait), entry.first + max(self.max_delay, wait))
            if full:
                self._full_paths.add(path)
        self.changed.set()

    def next_due(self) -> float | None:
        with self._lock:
            return min((entry.due for entry in self._paths.values()), default=None)

    def take_due(self) -> tuple[list[str], bool]:
        """Once any path is due, all of them (the two halves of a move belong together), and whether a full
        reconciliation is among them."""
        now = time.monotonic()
        with self._lock:
            self.changed.clear()
            if not any(entry.due <= now for entry in self._paths.values()):
                return [], False
            paths = list(self._paths)
            self._paths.clear()
            full = bool(self._full_paths)
            self._full_paths.clear()
            return paths, full

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)


class Stability:
    """Decides whether a file is complete enough to read (thread-safe; events feed it, the loop asks it)."""

    def __init__(self, quiet_period: float, clock: Callable[[], float] = time.time) -> None:
        self.quiet_period = quiet_period
        self.clock = clock  # the wall clock, compared with file times (which it may jump away from)
        self._closed: set[str] = set()
        self._written: set[str] = set()  # an event said these are being written: only our own clock decides
        self._seen: dict[str, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, first seen so)
        self._lock = threading.Lock()

    def closed(self, path: str) -> None:
        with self._lock:
            self._closed.add(path)

    def writing(self, path: str) -> None:
        with self._lock:
            self._closed.discard(path)
            self._written.add(path)

    def forget(self, paths: Sequence[str]) -> None:
        with self._lock:
            for path in paths:
                self._closed.discard(path)
                self._written.discard(path)
                self._seen.pop(path, None)

    def ready(self, item: FoundFile) -> bool:
        if self.quiet_period <= 0:
            return True
        with self._lock:
            if item.path in self._closed:
                return True
            # A file nobody was seen writing and whose time is old enough is done (a scan at start-up). One being
            # written is judged by the monotonic clock alone: a wall clock that jumps forward (NTP, a laptop
            # waking) would make it look old, and a file time from another machine's clock may be in the future.
            if item.path not in self._written and self.clock() - item.mtime_ns / 1e9 >= self.quiet_period:
                return True
            now = time.monotonic()
            size, mtime_ns, since = self._seen.get(item.path, (-1, -1, now))
            if (size, mtime_ns) != (item.size, item.mtime_ns):
                self._seen[item.path] = (item.size, item.mtime_ns, now)
                return False
            return now - since >= self.quiet_period


class _EventHandler:
    """Turns watchdog events into dirty paths; ignores what the index would never hold."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def dispatch(self, event) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        if event.is_directory and kind in ("modified", "attrib", "closed"):
            return  # a folder's own mtime changes with every file created in it: the file's event says more
        paths = [event.src_path]
        if kind == "moved" and event.dest_path:
            paths.append(event.dest_path)
        for i, raw in enumerate(paths):
            path = os.fsdecode(raw)
            if not self.watcher.wants(path, is_dir=event.is_directory):
                continue
            # A rename is how browsers, sync tools and cameras say a file is complete (`x.jpg.part` -> `x.jpg`).
            if kind == "closed" or (kind == "moved" and i == 1):
                self.watcher.stability.closed(path)
            elif kind in ("created", "modified"):
                self.watcher.stability.writing(path)
            self.watcher.dirty.mark(path)


class _OverflowSpotter(logging.Handler):
    """watchdog repairs its own watches after an inotify queue overflow and only logs it: we reconcile."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


_OVERFLOW_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")
GONE_GRACE_SECONDS = 2.0  # a row whose file vanished stays this long: the other half of a move may follow
PAUSE_CHECK_SECONDS = 1.0  # while indexing is paused, look this often whether it may resume (a stat or two)


class Watcher:
    """Keeps the index of `roots` in step with the disk until stopped.

    `run()` blocks (the CLI calls it on the main thread); `start()` runs it on a thread and `stop()` ends it
    (tests and the TUI). The model is loaded once, by the indexer, when the first photo needs embedding.
    """

    def __init__(
        self,
        indexer: Indexer,
        roots: Sequence[str],
        options: WatchOptions = WatchOptions(),
        *,
        lock: WatcherLock | None = None,
        on_round: Callable[[Round], None] | None = None,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.indexer = indexer
        # A root the index already holds may be missing (a drive not plugged in yet): watched once it appears.
        self.roots = tuple(check_roots(roots, known=lambda root: indexer.store.count_below(root) != (0, 0)))
        self.options = options
        self.lock = lock
        self.on_round = on_round
        self.on_message = on_message or (lambda message: log.warning(message))
        self.dirty = DirtySet(options.debounce, options.max_delay)
        self.stability = Stability(options.quiet_period)
        self.rounds = 0
        self.caught_up = threading.Event()  # the start-up reconciliation is done and nothing is pending
        self._full_done = False
        self._failures = 0  # consecutive failed reconcile steps, for back-off
        self._failure_said: str | None = None  # the retry line already said (a streak of failures says it once)
        self._model_failures = 0  # consecutive failed model loads, for back-off
        self._model_failure_said: str | None = None
        self._missing_roots: set[str] = set()  # roots said to be missing (said once, until they return)
        self._empty_said: set[str] = set()  # empty roots whose photos were kept, said once
        self._watched: dict[str, tuple[int, int] | None] = {}  # what the observer watches, to notice a remount
        self._gone_since: dict[int, float] = {}  # row id -> when its file was first seen gone (moves in halves)
        self.guard = WriteGuard(indexer.store, self._say)
        self._next_observer_check = 0.0
        self._stop = threading.Event()
        self._busy = False
        self._observer = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._overflow = _OverflowSpotter(self.reconcile_all)

    # ---- control -------------------------------------------------------------------------------
    def start(self) -> None:
        """Run on a background thread; errors come back from `stop()`."""
        self._thread = threading.Thread(target=self._run_captured, name="umsearch-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise UmsearchError(f"the watcher did not stop within {timeout:.0f} s")
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def request_stop(self) -> None:
        self._stop.set()
        self.dirty.changed.set()
        if self.indexer.power is not None:
            self.indexer.power.wake()  # a battery pause ends now, not at its next look at the power state

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def busy(self) -> bool:
        """Whether a reconcile step (possibly embedding a batch) is in flight."""
        return self._busy

    def reconcile_all(self) -> None:
        """Compare every root with the index again (after lost events)."""
        for root in self.roots:
            self.dirty.mark(root, delay=0.0, full=True)

    def _run_captured(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # handed to stop(), which re-raises on the caller's thread
            self._error = exc

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        for name in _OVERFLOW_LOGGERS:
            logging.getLogger(name).addHandler(self._overflow)
        try:
            self._start_observer()
            self.reconcile_all()  # catch up: whatever changed while no watcher ran
            next_rescan = self._next_rescan()
            while not self._stop.is_set():
                self._keep_observer_alive()
                if not self._may_write():
                    self._stop.wait(PAUSE_CHECK_SECONDS)  # events keep collecting; nothing is written meanwhile
                    continue
                if next_rescan is not None and time.monotonic() >= next_rescan:
                    self.reconcile_all()
                    next_rescan = self._next_rescan()
                paths, full = self.dirty.take_due()
                if paths:
                    self._reconcile(paths, full)
                    continue
                if self._full_done and not len(self.dirty):
                    self.caught_up.set()
                # "watching" means caught up: `status`, and an `index` run waiting on this watcher, rely on it.
                self._report("watching" if self.caught_up.is_set() else "catching up")
                self.dirty.changed.wait(self._wait_time(next_rescan))
        finally:
            self._stop_observer()
            for name in _OVERFLOW_LOGGERS:
                logging.getLogger(name).removeHandler(self._overflow)

    def _wait_time(self, next_rescan: float | None) -> float:
        now = time.monotonic()
        deadlines = [t for t in (self.dirty.next_due(), next_rescan) if t is not None]
        wait = min(deadlines) - now if deadlines else 1.0
        return min(max(wait, 0.005), 1.0)  # wake at least each second to check on the observer

    def _next_rescan(self) -> float | None:
        interval = self.options.rescan_interval
        return time.monotonic() + interval if interval else None

    def _may_write(self) -> bool:
        """Whether the index may be written now (a pause resumed means: compare everything again)."""
        was_paused = self.guard.pause is not None
        if not self.guard.may_write():
            self._report(self.guard.activity() or "paused")
            return False
        if was_paused:
            self.reconcile_all()
        return True

    def _should_hold(self) -> bool:
        """Checked between batches: stop writing at once when asked to, or when the index file changed."""
        return self._stop.is_set() or self.guard.held()

    def _reconcile(self, paths: list[str], full: bool) -> None:
        paths = self._present_roots_only(paths)
        if not paths:
            self._full_done = self._full_done or full  # only unmounted roots: nothing to catch up with
            return
        started = time.monotonic()
        self._report("catching up" if not self.caught_up.is_set() else f"indexing {len(paths)} changed paths")
        self._busy = True
        try:
            if full:
                self.indexer.store.record_roots(self.roots)  # for `status` (gone roots) and `forget`
            result = self.indexer.sync(
                paths,
                self.options.excludes,
                ready=self.stability.ready,
                should_stop=self._should_hold,
                settled=None if full else self._gone_for_good,  # a whole-roots pass plans every move itself
            )
        except DiskFullError as exc:
            self.guard.disk_full(exc.saved or 0)  # paused; when it resumes, everything is compared again
            return
        except ModelError as exc:
            # Its files were removed or damaged since the last start (it loads when the first photo needs it):
            # exiting would only bring a service manager to restart us into the same failure, again and again.
            self._model_failures += 1
            delay = min(600.0, self.options.model_retry * 2 ** (self._model_failures - 1))
            if str(exc) != self._model_failure_said:
                self.on_message(f"{exc}; new photos wait until it loads (trying again in {delay:g} s, then less often)")
                self._model_failure_said = str(exc)
            for path in paths:
                self.dirty.mark(path, delay=delay, full=full)
            return
        except UmsearchError:
            raise  # the index itself is unusable: nothing to retry
        except Exception as exc:  # e.g. a disk error: keep running, try these paths again a little later
            if is_read_only(exc):
                self.guard.read_only()
                return
            self._failures += 1
            delay = min(60.0, 2.0**self._failures)
            message = f"could not update the index ({type(exc).__name__}: {exc}); retrying"
            if message != self._failure_said:  # a streak of the same failure is said once
                self.on_message(f"{message} in {delay:.0f} s (and later, quietly, until it works)")
                self._failure_said = message
            for path in paths:
                self.dirty.mark(path, delay=delay, full=full)
            return
        finally:
            self._busy = False
        if self._failure_said is not None:
            self.on_message("the index is being updated again")
        if self._model_failure_said is not None and self.indexer.model_loaded:
            self.on_message("the model loaded: new photos are indexed again")
            self._model_failure_said = None
            self._model_failures = 0
        self._failures = 0
        self._failure_said = None
        self.guard.succeeded(result.summary.saved)
        stale = time.monotonic() - 60 * GONE_GRACE_SECONDS
        self._gone_since = {row_id: t for row_id, t in self._gone_since.items() if t > stale}  # rows moved meanwhile
        self._say_kept_empty(result.kept_empty, paths)
        self.rounds += 1
        deferred = set(result.deferred)
        self.stability.forget([p for p in paths if p not in deferred])
        recheck = min(self.options.quiet_period / 2, 0.25) if self.options.quiet_period > 0 else 0.05
        for path in result.deferred:
            self.dirty.mark(path, delay=recheck)
        if full and not result.summary.interrupted:
            self._full_done = True
        if self.on_round is not None:
            self.on_round(Round(result.summary, len(paths), len(deferred), time.monotonic() - started, full))

    def _present_roots_only(self, paths: list[str]) -> list[str]:
        """A root that vanished is an unmounted drive, not a deleted library: keep its index untouched."""
        missing = {root for root in self.roots if not os.path.isdir(root) and not os.path.isfile(root)}
        for root in sorted(missing - self._missing_roots):
            self.on_message(f"{root} is not there (unmounted?); its index is kept as it is")
        for root in sorted(self._missing_roots - missing):
            self.on_message(f"{root} is back; comparing it with the index")
        self._missing_roots = missing
        if not missing:
            return paths
        return [path for path in paths if not any(is_within(path, root) for root in missing)]

    def _gone_for_good(self, row: FileRow) -> bool:
        """Whether a file gone from disk has been gone long enough to drop its row. A rename or move arrives as one
        event, but a busy machine can hand the kernel's two halves over apart (watchdog pairs them for 0.5 s):
        the source alone would look deleted, and the photo would be embedded again under its new name."""
        now = time.monotonic()
        first = self._gone_since.setdefault(row.id, now)
        if now - first < GONE_GRACE_SECONDS:
            return False
        del self._gone_since[row.id]
        return True

    def _say_kept_empty(self, kept: list[str], paths: list[str]) -> None:
        """Once per folder: an empty root whose photos stay indexed (an unmounted drive's mount point)."""
        for folder in kept:
            if folder not in self._empty_said:
                self.on_message(f"{folder} {EMPTY_ROOT_KEPT}")
                self._empty_said.add(folder)
        self._empty_said -= {path for path in paths if path not in kept}

    def _report(self, activity: str) -> None:
        if self.lock is not None:
            self.lock.report(activity)

    def _say(self, message: str) -> None:
        self.on_message(message)  # looked up at each call: a caller may swap on_message while running

    # ---- which paths matter --------------------------------------------------------------------
    def wants(self, path: str, *, is_dir: bool) -> bool:
        root = next((root for root in self.roots if is_within(path, root)), None)
        if root is None:
            return False
        relative = os.path.relpath(path, root)
        if relative != "." and any(is_hidden(part) for part in relative.split(os.sep)):
            return False
        if self.options.excludes and is_excluded(path, self.options.excludes):
            return False
        return is_dir or path == root or is_candidate_name(os.path.basename(path))

    # ---- the observer --------------------------------------------------------------------------
    def _start_observer(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if not self.options.polling:
            try:
                self._observer = self._new_observer(Observer)
                return
            except OSError as exc:  # e.g. the inotify watch limit (fs.inotify.max_user_watches)
                self.on_message(f"cannot use file system events ({exc.strerror or exc}); polling instead")
        self._observer = self._new_observer(PollingObserver)

    def _watched_identities(self) -> dict[str, tuple[int, int] | None]:
        """(device, inode) of the folder watched for each root, None while it is missing."""
        identities: dict[str, tuple[int, int] | None] = {}
        for root in self.roots:
            try:
                info = os.stat(root if os.path.isdir(root) else os.path.dirname(root))
            except OSError:
                identities[root] = None
            else:
                identities[root] = (info.st_dev, info.st_ino)
        return identities

    def _new_observer(self, kind):
        self._watched = self._watched_identities()
        observer = kind()
        handler = _EventHandler(self)
        for root in self.roots:
            if not os.path.exists(root):
                continue  # unmounted: reconciled (and watched again) once a restart finds it back
            if os.path.isdir(root):
                observer.schedule(handler, root, recursive=True)
            else:  # a single photo: watch its folder, not what lies below it
                observer.schedule(handler, os.path.dirname(root), recursive=False)
        observer.daemon = True
        try:
            observer.start()
        except BaseException:
            observer.stop()
            raise
        return observer

    def _keep_observer_alive(self) -> None:
        observer, now = self._observer, time.monotonic()
        if observer is None or now < self._next_observer_check:
            return
        self._next_observer_check = now + 5.0
        emitters = observer.emitters
        present = sum(1 for root in self.roots if os.path.exists(root))
        alive = observer.is_alive() and len(emitters) >= present and all(e.is_alive() for e in emitters)
        # A drive unplugged or plugged back: the watched folder is gone, or another one under the same name. The
        # kernel's watches stay on the old folder and report nothing more, so the observer starts afresh.
        remounted = self._watched_identities() != self._watched
        if alive and not remounted:
            return
        if not remounted:
            self.on_message("the file system observer stopped; restarting it and reconciling")
        self._stop_observer()
        try:
            self._start_observer()
        except OSError as exc:
            self.on_message(f"cannot restart the observer: {exc.strerror or exc}")
            return
        self.reconcile_all()

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=2.0)
        except Exception as exc:  # a dying observer must not keep us from stopping
            log.debug("stopping the observer: %s", exc)


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # Ctrl-C, a service manager, a closed terminal


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP stop a watcher cleanly, from the moment they are installed (before the watcher
    exists: a signal then is remembered and stops it as soon as it is attached).

    The batch in flight gets `stop_grace` seconds to finish, then it is rolled back (its transaction never
    commits, so nothing half-written remains); a second signal rolls back at once.
    """

    def __init__(self) -> None:
        import signal

        self.requested = threading.Event()
        self._watcher: Watcher | None = None
        self._timer: threading.Timer | None = None
        self._previous = {}
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:  # no SIGHUP on Windows
                self._previous[number] = signal.signal(number, self._handle)
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def attach(self, watcher: Watcher) -> None:
        self._watcher = watcher
        if self.requested.is_set():
            watcher.request_stop()

    def _handle(self, signum, frame) -> None:
        watcher = self._watcher
        first = not self.requested.is_set()
        self.requested.set()
        if watcher is None:
            return
        if not first or watcher.stopping:
            if watcher.busy:
                raise KeyboardInterrupt  # the transaction in flight rolls back
            return
        watcher.request_stop()
        self._timer = threading.Timer(watcher.options.stop_grace, self._abort_if_busy)
        self._timer.daemon = True
        self._timer.start()

    def _unraisable(self, unraisable: Any) -> None:
        """Our KeyboardInterrupt can land inside a finaliser (`__del__`), where Python only prints it: the stop
        stays requested, so interrupt the batch again a moment later instead of printing a traceback."""
        if unraisable.exc_type is KeyboardInterrupt and self.requested.is_set():
            retry = threading.Timer(0.05, self._abort_if_busy)
            retry.daemon = True
            retry.start()
            return
        self._previous_hook(unraisable)

    def _abort_if_busy(self) -> None:
        import _thread
        import signal

        watcher = self._watcher
        if watcher is not None and watcher.busy:
            _thread.interrupt_main(signal.SIGINT)  # lands in `_handle` above, on the main thread

    def restore(self) -> None:
        import signal

        if self._timer is not None:
            self._timer.cancel()
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._previous_hook


def install_stop_signals(watcher: Watcher) -> Callable[[], None]:
    """StopSignals for a watcher that already exists; returns the function that restores the old handlers."""
    stopper = StopSignals()
    stopper.attach(watcher)
    return stopper.restore


NAMED_CHANGES_AFTER_CATCH_UP = 20  # a catch-up that changed more than this says how many, not which


def describe_changes(round_: Round, display: Callable[[str], str] = str) -> list[str]:
    """The lines a watcher prints for a reconcile step: one per change, naming the file; a catch-up (start-up,
    rescan) first says what it found in total, and names the files only when they are few."""
    stamp = time.strftime("%H:%M:%S")
    lines = [describe_round(round_)] if round_.full else []
    changes = round_.summary.changes or []
    if round_.full and len(changes) > NAMED_CHANGES_AFTER_CATCH_UP:
        return lines
    reasons = dict(round_.summary.failures)
    for what, path, source in changes:
        if what == "moved" and source is not None:
            lines.append(f"{stamp} moved {display(source)} -> {display(path)}")
        elif what == "failed":
            lines.append(f"{stamp} failed {display(path)}: {reasons.get(path, 'could not be indexed')}")
        else:
            lines.append(f"{stamp} {what} {display(path)}")
    return lines


def describe_round(round_: Round) -> str:
    """One line for the log: what a reconcile step changed."""
    counters = {name: count for name, count in round_.summary.counters().items() if count}
    if round_.full:
        counters.pop("unchanged", None)
    changes = ", ".join(f"{name} {count}" for name, count in counters.items()) or "no changes"
    what = "caught up" if round_.full else "updated"
    later = f"; {round_.deferred} still being written" if round_.deferred else ""
    return f"{time.strftime('%H:%M:%S')} {what}: {changes} ({round_.seconds:.1f} s){later}"

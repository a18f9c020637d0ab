"""Carry out a plan: load changed photos on worker threads, embed them in batches, store each batch at once.

Planning (what changed) is planning.py; this module is the pipeline that reads, embeds and writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from . import backlog
from .embed import is_out_of_memory, release_accelerator_memory
from .errors import ImageLoadError, UmsearchError
from .imageload import LoadedImage, describe_os_error, load_image
from .metadata import PhotoMeta, extract_metadata, metadata_from_exif
from .planning import Job, Plan, check_roots, content_hash, found_in_scope, is_within, outermost_paths, plan_changes
from .scan import FoundFile, normalize_root, scan
from .store import FileRow, IndexSettings, Store

if TYPE_CHECKING:
    import numpy as np

    from .embed import Embedder
    from .manners import PowerGate

COUNTERS = ("added", "updated", "moved", "removed", "unchanged", "failed")


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0  # files that could not be indexed: in this run, or before and unchanged since (as status counts)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) failed in this run
    interrupted: bool = False
    # Each change as (what, path, where from): kept only when asked for (the watcher prints one line each);
    # None for `umsearch index`, whose first run over a large library would hold a row per photo.
    changes: list[tuple[str, str, str | None]] | None = None

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def count(self, what: str, path: str, source: str | None = None) -> None:
        """One added, updated, moved or removed file."""
        setattr(self, what, getattr(self, what) + 1)
        if self.changes is not None:
            self.changes.append((what, path, source))

    def fail(self, path: str, reason: str) -> None:
        self.failed += 1
        self.failures.append((path, reason))
        if self.changes is not None:
            self.changes.append(("failed", path, None))


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, count: int = 1) -> None: ...
    def note(self, text: str | None) -> None:
        """What the run waits for (e.g. "loading model"); None when it works again."""

    def finish(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def note(self, text: str | None) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class Rejected:
    """The model refused one image (its batch went through without it): the reason is stored as its failure."""

    reason: str


@dataclass
class Loaded:
    job: Job
    digest: str | None
    image: LoadedImage | None
    error: str | None
    tokens: int = 0  # visual tokens the model will spend on the image (batches group similar counts)
    vanished: bool = False  # deleted between the scan and the read: not a failure, just gone
    meta: PhotoMeta | None = None  # read on the loader thread, next to decoding


class Indexer:
    """Runs one incremental pass. The model is only loaded when something actually needs embedding."""

    def __init__(
        self,
        store: Store,
        embedder_factory: Callable[[], "Embedder"],
        *,
        max_pixels: int,
        batch_size: int = 8,
        workers: int | None = None,
        progress: Progress | None = None,
        image_budget: tuple[int, int] | None = None,
        window: int | None = None,
        model_turn: Callable[[], AbstractContextManager[object]] | None = None,
        power: PowerGate | None = None,
    ) -> None:
        """`image_budget` (min, max visual tokens, the embedder's) lets loader threads do the model's
        resizing ahead of it; `window` is how many decoded photos are sorted by token count before
        being cut into batches (default 4 batches). `model_turn` is entered around each model call when the
        model is shared (the watcher's service passes `Session.gate.batch`: a query goes before the next batch).
        `power` holds embedding while on battery (background runs: the watcher, the service)."""
        self.store = store
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.max_pixels = max_pixels
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.progress = progress or NoProgress()
        self.image_budget = image_budget
        self.window = max(self.batch_size, window or self.batch_size * 4)
        self._model_turn = model_turn or contextlib.nullcontext
        self.power = power
        # The run's backlog (backlog.py): jobs planned, and how many have been dealt with so far.
        self._planned = 0
        self._done = 0
        self._should_stop: Callable[[], bool] = lambda: False

    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            self.progress.note("loading model")
            embedder = self._embedder_factory()
            self.progress.note(None)
            info = embedder.info
            self.store.bind(IndexSettings(info.model_id, info.dim, info.min_image_tokens, info.max_image_tokens))
            from .runtime import record_runtime

            record_runtime(self.store, info)
            self._embedder = embedder
        return self._embedder

    def index(
        self,
        roots: Sequence[str],
        excludes: Sequence[str] = (),
        on_scan_error: Callable[[str, str], None] | None = None,
    ) -> IndexSummary:
        roots = check_roots(roots)
        summary = IndexSummary()
        unreadable: list[str] = []

        def scan_error(path: str, reason: str) -> None:
            unreadable.append(path)
            if on_scan_error is not None:
                on_scan_error(path, reason)

        plan = plan_changes(self.store, roots, scan(roots, excludes, on_error=scan_error))
        if unreadable:  # a folder that could not be listed is not a folder whose photos were deleted
            plan.removals = [row for row in plan.removals if not any(is_within(row.path, f) for f in unreadable)]
        summary.unchanged, summary.failed = plan.unchanged, plan.still_failed
        self._apply_moves_and_removals(plan, summary)
        try:
            with self._backlog(len(plan.jobs)):
                self.process(plan.jobs, summary)
            self.fill_missing_metadata()
        except (KeyboardInterrupt, StopRequested):
            summary.interrupted = True
        return summary

    @contextmanager
    def _backlog(self, planned: int) -> Iterator[None]:
        """Record the run's backlog in the index while it lasts (a query says what it did not search yet)."""
        self._planned, self._done = planned, 0
        if planned:
            with self.store.transaction():
                backlog.record(self.store, planned)
        try:
            yield
        finally:
            self._planned = self._done = 0
            if planned:
                with self.store.transaction():
                    backlog.clear(self.store)

    def _advance(self, count: int = 1) -> None:
        self._done += count
        self.progress.advance(count)

    def _wait_for_power(self) -> None:
        """Before each batch: on battery, hold until the charger is back (recorded, so queries can say so)."""
        gate = self.power
        if gate is None or not gate.must_wait():
            return
        with self.store.transaction():
            backlog.record(self.store, self._planned - self._done, backlog.PAUSED)
        if not gate.wait_for_mains(self._should_stop):
            raise StopRequested
        with self.store.transaction():
            backlog.record(self.store, self._planned - self._done)

    def fill_missing_metadata(self) -> int:
        """Read EXIF for indexed photos that lack it (indexes from before metadata, copies): no re-embedding."""
        rows = self.store.files_missing_metadata()
        if not rows:
            return 0

        def read(row: FileRow) -> tuple[FileRow, PhotoMeta | None]:
            if not os.path.isfile(row.path):
                return row, None  # outside this run's folders and gone (or unmounted): leave it alone
            try:
                return row, extract_metadata(row.path, row.mtime_ns)
            except OSError:
                return row, None  # gone or unreadable since the scan: the next run sees it

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="umsearch-meta") as executor:
            for start in range(0, len(rows), 256):
                results = list(executor.map(read, rows[start : start + 256]))
                with self.store.transaction():
                    for row, meta in results:
                        if meta is not None:
                            self.store.set_metadata(row.id, meta)
        return len(rows)

    def _apply_moves_and_removals(self, plan: Plan, summary: IndexSummary) -> None:
        with self.store.transaction():
            for row, item in plan.moves:
                self.store.move_file(row.id, item.path, size=item.size, mtime_ns=item.mtime_ns)
            self.store.delete_files(row.id for row in plan.removals)
        for row, item in plan.moves:
            summary.count("moved", item.path, row.path)
        for row in plan.removals:
            summary.count("removed", row.path)

    def process(self, jobs: Sequence[Job], summary: IndexSummary) -> None:
        """Load jobs on worker threads (reading ahead) and embed them in batches, one transaction each."""
        if not jobs:
            return
        self.progress.start(len(jobs))
        try:
            window: list[Loaded] = []
            for loaded in self._load_ahead(jobs):
                if self._resolve_without_model(loaded, summary):
                    self._advance()
                    continue
                window.append(loaded)
                if len(window) >= self.window:
                    self._embed_window(window, summary)
                    window = []
            if window:
                self._embed_window(window, summary)
        finally:
            self.progress.finish()

    def _embed_window(self, window: list[Loaded], summary: IndexSummary) -> None:
        """Embed a read-ahead window in batches of similar token counts (less padding, even memory use).

        While the model runs one batch, the next one's inputs are prepared on a helper thread, so the
        accelerator does not wait for pixel normalisation and tokenisation either.
        """
        window = sorted(window, key=lambda loaded: loaded.tokens)
        batches = [window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        self._wait_for_power()  # before the model loads: loading is heavy work too
        embedder = self.embedder
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umsearch-prepare") as helper:
            upcoming = helper.submit(embedder.prepare_images, [b.image.image for b in batches[0]])
            for i, batch in enumerate(batches):
                prepared, upcoming = upcoming, None
                if i + 1 < len(batches):
                    # Submitted only once the previous preparation is done: one tokenizer user at a time.
                    prepared.exception()
                    upcoming = helper.submit(embedder.prepare_images, [b.image.image for b in batches[i + 1]])
                self._embed_and_store(batch, summary, prepared=prepared, settle=upcoming)
            if upcoming is not None:
                upcoming.exception()

    def _load_ahead(self, jobs: Sequence[Job]) -> Iterator[Loaded]:
        # Deep enough that the next window is decoded while the model works through this one; bounded
        # because loader threads shrink each photo to the model's budget (image_budget).
        depth = max(self.window, self.workers * 2)
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="umsearch-load")
        pending: deque[Future[Loaded]] = deque()
        try:
            queue = iter(jobs)
            for job in queue:
                pending.append(executor.submit(self._load, job))
                if len(pending) >= depth:
                    break
            while pending:
                loaded = pending.popleft().result()
                next_job = next(queue, None)
                if next_job is not None:
                    pending.append(executor.submit(self._load, next_job))
                yield loaded
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    def _load(self, job: Job) -> Loaded:
        try:
            return self._read(job)
        except Exception as exc:  # one odd file must never end a long run: record it and go on
            return Loaded(job, None, None, f"unexpected {type(exc).__name__} while reading: {exc}")

    def _read(self, job: Job) -> Loaded:
        try:
            digest = content_hash(job.found.path)
        except FileNotFoundError:
            return Loaded(job, None, None, None, vanished=True)
        except OSError as exc:
            return Loaded(job, None, None, describe_os_error(exc))
        if job.previous is not None and job.previous.hash == digest:
            return Loaded(job, digest, None, None)  # touched, same bytes: no decode needed
        try:
            image = load_image(job.found.path, self.max_pixels)
            meta = (
                metadata_from_exif(image.exif, (image.width, image.height), job.found.mtime_ns)
                if image.exif is not None
                else extract_metadata(job.found.path, job.found.mtime_ns)  # e.g. RAW: its preview has no EXIF
            )
            if self.image_budget is None:
                return Loaded(job, digest, image, None, image.image.width * image.image.height, meta=meta)
            from .gme import fit_image, image_token_count

            low, high = self.image_budget
            fitted = dataclasses.replace(image, image=fit_image(image.image, low, high))
            return Loaded(job, digest, fitted, None, image_token_count(*fitted.image.size, low, high), meta=meta)
        except ImageLoadError as exc:
            if not os.path.exists(job.found.path):
                return Loaded(job, None, None, None, vanished=True)
            return Loaded(job, digest, None, str(exc))
        except ValueError as exc:  # an aspect ratio beyond what the model accepts, say
            return Loaded(job, digest, None, f"cannot prepare this image for the model: {exc}")

    def _resolve_without_model(self, loaded: Loaded, summary: IndexSummary) -> bool:
        """Failures, touched files and copies of indexed files are stored without running the model."""
        found, previous = loaded.job.found, loaded.job.previous
        if loaded.vanished:
            if previous is not None:
                self.store.delete_files([previous.id])
                summary.count("removed", previous.path)
            return True
        if loaded.error is not None:
            self.store.put_file(
                found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, error=loaded.error
            )
            summary.fail(found.path, loaded.error)
            return True
        if previous is not None and previous.hash == loaded.digest:
            self.store.touch_file(previous.id, size=found.size, mtime_ns=found.mtime_ns)
            summary.unchanged += 1
            return True
        twin = next(iter(self.store.ok_files_by_hash(loaded.digest)), None) if loaded.digest else None
        if twin is not None:
            self.store.copy_vector_to(
                twin.id, found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, meta=loaded.meta
            )
            self._count_stored(loaded, summary)
            return True
        return False

    def _embed_and_store(
        self,
        batch: list[Loaded],
        summary: IndexSummary,
        *,
        prepared: Future | None = None,
        settle: Future | None = None,
    ) -> None:
        self._wait_for_power()
        vectors = self._embed_batch(batch, prepared=prepared, settle=settle)
        with self.store.transaction():
            if self._planned:
                backlog.record(self.store, self._planned - self._done - len(batch))
            for loaded, vector in zip(batch, vectors, strict=True):
                found, image = loaded.job.found, loaded.image
                if isinstance(vector, Rejected):
                    self.store.put_file(
                        found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, error=vector.reason
                    )
                    summary.fail(found.path, vector.reason)
                    continue
                self.store.put_file(
                    found.path,
                    size=found.size,
                    mtime_ns=found.mtime_ns,
                    digest=loaded.digest,
                    vector=vector,
                    width=image.width,
                    height=image.height,
                    meta=loaded.meta,
                )
                self._count_stored(loaded, summary)
        self._advance(len(batch))

    def _embed_batch(
        self, batch: list[Loaded], *, prepared: Future | None = None, settle: Future | None = None
    ) -> list[np.ndarray | Rejected]:
        """Vectors for the batch; if the batch fails, each image alone, so one bad image fails alone.

        Out of accelerator memory, the batch is halved (and so is the batch size for the rest of the
        run) and retried: never dropped. `prepared` holds the batch's inputs made ahead on a helper
        thread; `settle` is that thread's next job, waited for before preparing anything here.
        """
        images = [loaded.image.image for loaded in batch]
        try:
            return list(self._run_model(images, prepared))
        except (UmsearchError, MemoryError):
            raise
        except Exception as exc:
            if settle is not None:
                settle.exception()
            if is_out_of_memory(exc):
                return self._embed_halves(batch, exc)
        results: list[np.ndarray | Rejected] = []
        for loaded in batch:
            try:
                with self._model_turn():
                    results.append(self.embedder.embed_images([loaded.image.image], batch_size=1)[0])
            except Exception as exc:  # the model rejected this image; record why, keep going
                if is_out_of_memory(exc):
                    self._embed_halves([loaded], exc)  # raises: a photo is never recorded as failed for memory
                results.append(Rejected(f"the model could not embed this image: {exc}"))
        return results

    def _run_model(self, images: list, prepared: Future | None = None) -> np.ndarray:
        embedder = self.embedder
        inputs = prepared.result() if prepared is not None else None
        with self._model_turn():
            if inputs is not None:
                return embedder.embed_prepared(inputs)
            return embedder.embed_images(images, batch_size=len(images))

    def _embed_halves(self, batch: list[Loaded], exc: BaseException) -> list[np.ndarray | Rejected]:
        release_accelerator_memory()
        if len(batch) == 1:
            loaded = batch[0]
            raise UmsearchError(
                f"out of memory embedding {loaded.job.found.path} on its own ({loaded.tokens} visual tokens): "
                "use --quality fast (fewer tokens per photo), --quant nf4, or --device cpu"
            ) from None
        half = (len(batch) + 1) // 2
        self.batch_size = max(1, min(self.batch_size, half))
        return self._embed_batch(batch[:half]) + self._embed_batch(batch[half:])

    @staticmethod
    def _count_stored(loaded: Loaded, summary: IndexSummary) -> None:
        summary.count("added" if loaded.job.previous is None else "updated", loaded.job.found.path)

    def sync(
        self,
        paths: Sequence[str],
        excludes: Sequence[str] = (),
        *,
        ready: Callable[[FoundFile], bool] | None = None,
        should_stop: Callable[[], bool] | None = None,
        claim_moves: bool = True,
    ) -> "SyncResult":
        """Bring just these files and folders in step with the disk (the watcher's reconcile step).

        A path may be a file or a folder, present or gone: what is on disk below it is planned against what
        the index holds below it, so moves between any of the paths keep their vectors, and a new file whose
        bytes match an indexed file gone from disk takes over its row. Files that `ready` rejects (still being
        written) keep their old row and come back in `deferred` (with gone rows of the same size, which may be
        their move's source), as do jobs not started because `should_stop` turned true (checked between batches).
        `claim_moves=False` skips the gone-twin check (it reads each new file once more): for whole roots,
        where every move is planned anyway.
        """
        scope = outermost_paths(normalize_root(p) for p in paths)
        result = SyncResult()
        result.summary.changes = []  # the watcher names each change
        found: list[FoundFile] = []
        waiting: list[FoundFile] = []
        for item in found_in_scope(scope, excludes):
            (found if ready is None or ready(item) else waiting).append(item)
        result.deferred = [item.path for item in waiting]
        plan = plan_changes(self.store, scope, found)
        if waiting:
            # A gone row may be the source of a waiting file's move (same size): keep it until that file is
            # read, and look at its path again then; a row at a waiting file's path stays as it is.
            held = set(result.deferred)
            held_sizes = {item.size for item in waiting}
            kept = [row for row in plan.removals if row.path in held or row.size in held_sizes]
            plan.removals = [row for row in plan.removals if row.path not in held and row.size not in held_sizes]
            result.deferred.extend(row.path for row in kept if row.path not in held)
        result.summary.unchanged, result.summary.failed = plan.unchanged, plan.still_failed
        self._apply_moves_and_removals(plan, result.summary)
        jobs = [
            job
            for job in plan.jobs
            if job.previous is not None or not (claim_moves and self._claim_vanished_twin(job, result))
        ]
        step = self.batch_size * 4  # a few batches per call: read-ahead stays useful, stops stay prompt
        self._should_stop = should_stop or (lambda: False)
        try:
            with self._backlog(len(jobs)):
                for start in range(0, len(jobs), step):
                    try:
                        if self._should_stop():
                            raise StopRequested
                        self.process(jobs[start : start + step], result.summary)
                    except StopRequested:  # asked to stop, or to stop waiting for the charger
                        result.deferred.extend(job.found.path for job in jobs[start:])
                        result.summary.interrupted = True
                        break
        finally:
            self._should_stop = lambda: False
        return result

    def _claim_vanished_twin(self, job: Job, result: "SyncResult") -> bool:
        """A new file with the bytes of an indexed file that is gone from disk was moved here from outside
        the synced paths (another root, or the other half of a move reported later): its row follows it."""
        try:
            digest = content_hash(job.found.path)
        except OSError:
            return False
        for row in self.store.ok_files_by_hash(digest):
            if not os.path.exists(row.path):
                found = job.found
                self.store.move_file(row.id, found.path, size=found.size, mtime_ns=found.mtime_ns)
                result.summary.count("moved", found.path, row.path)
                return True
        return False


class StopRequested(Exception):
    """A stop was asked for while the run waited (for the charger, say): the rest is left for later."""


@dataclass
class SyncResult:
    summary: IndexSummary = field(default_factory=IndexSummary)
    deferred: list[str] = field(default_factory=list)  # paths to look at again later

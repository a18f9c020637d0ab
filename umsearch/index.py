"""Keep the index in step with folders: scan, plan, then load and embed only what changed."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import ImageLoadError, UmsearchError
from .imageload import LoadedImage, load_image
from .metadata import PhotoMeta, extract_metadata
from .scan import FoundFile, normalize_root, scan
from .store import FileRow, IndexSettings, Store

if TYPE_CHECKING:
    from .embed import Embedder

COUNTERS = ("added", "updated", "moved", "removed", "unchanged", "failed")


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) failed in this run
    interrupted: bool = False

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, count: int = 1) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class Job:
    """A file that needs reading: new or changed since the index last saw it."""

    found: FoundFile
    previous: FileRow | None  # the row at the same path, when the file changed


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    moves: list[tuple[FileRow, FoundFile]] = field(default_factory=list)
    removals: list[FileRow] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class Loaded:
    job: Job
    digest: str | None
    image: LoadedImage | None
    error: str | None
    meta: PhotoMeta | None = None  # read on the loader thread, next to decoding


def content_hash(path: str) -> str:
    """A digest of the bytes: the identity that follows a photo through renames and moves."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_roots(roots: Sequence[str]) -> list[str]:
    """Missing roots are an error, never 'everything was deleted' (an unmounted drive must not wipe its index)."""
    checked = []
    for root in roots:
        path = normalize_root(root)
        if not os.path.exists(path):
            raise UmsearchError(f"{root}: no such file or folder")
        checked.append(path)
    return checked


def plan_changes(store: Store, roots: Sequence[str], found: Iterable[FoundFile]) -> Plan:
    """Compare the disk with the index below the roots: what to read, move, remove, or leave alone."""
    plan = Plan()
    known = {row.path: row for row in store.iter_files(roots)}
    new_files: list[FoundFile] = []
    for item in found:
        row = known.pop(item.path, None)
        if row is None:
            new_files.append(item)
        elif row.size == item.size and row.mtime_ns == item.mtime_ns:
            plan.unchanged += 1
        else:
            plan.jobs.append(Job(item, row))
    gone = list(known.values())
    # A moved file keeps its size; only hash new files whose size matches a vanished one.
    gone_by_size: dict[int, list[FileRow]] = {}
    for row in gone:
        if row.status == "ok" and row.hash:
            gone_by_size.setdefault(row.size, []).append(row)
    moved_ids: set[int] = set()
    for item in new_files:
        source = _find_moved_source(item, gone_by_size.get(item.size, []), moved_ids)
        if source is None:
            plan.jobs.append(Job(item, None))
        else:
            moved_ids.add(source.id)
            plan.moves.append((source, item))
    plan.removals = [row for row in gone if row.id not in moved_ids]
    return plan


def _find_moved_source(item: FoundFile, candidates: list[FileRow], taken: set[int]) -> FileRow | None:
    candidates = [row for row in candidates if row.id not in taken]
    if not candidates:
        return None
    try:
        digest = content_hash(item.path)
    except OSError:
        return None
    return next((row for row in candidates if row.hash == digest), None)


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
    ) -> None:
        self.store = store
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.max_pixels = max_pixels
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.progress = progress or NoProgress()

    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            embedder = self._embedder_factory()
            info = embedder.info
            self.store.bind(
                IndexSettings(info.model_id, info.dim, info.min_image_tokens, info.max_image_tokens)
            )
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
        plan = plan_changes(self.store, roots, scan(roots, excludes, on_error=on_scan_error))
        summary.unchanged = plan.unchanged
        self._apply_moves_and_removals(plan, summary)
        try:
            self.process(plan.jobs, summary)
            self.fill_missing_metadata()
        except KeyboardInterrupt:
            summary.interrupted = True
        return summary

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
        summary.moved += len(plan.moves)
        summary.removed += len(plan.removals)

    def process(self, jobs: Sequence[Job], summary: IndexSummary) -> None:
        """Load jobs on worker threads (reading ahead) and embed them in batches, one transaction each."""
        if not jobs:
            return
        self.progress.start(len(jobs))
        try:
            batch: list[Loaded] = []
            for loaded in self._load_ahead(jobs):
                if self._resolve_without_model(loaded, summary):
                    self.progress.advance()
                    continue
                batch.append(loaded)
                if len(batch) >= self.batch_size:
                    self._embed_and_store(batch, summary)
                    batch = []
            if batch:
                self._embed_and_store(batch, summary)
        finally:
            self.progress.finish()

    def _load_ahead(self, jobs: Sequence[Job]) -> Iterator[Loaded]:
        depth = max(self.batch_size * 2, self.workers * 2)
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
            digest = content_hash(job.found.path)
        except OSError as exc:
            return Loaded(job, None, None, exc.strerror or str(exc))
        if job.previous is not None and job.previous.hash == digest:
            return Loaded(job, digest, None, None)  # touched, same bytes: no decode needed
        try:
            image = load_image(job.found.path, self.max_pixels)
        except ImageLoadError as exc:
            return Loaded(job, digest, None, str(exc))
        return Loaded(job, digest, image, None, extract_metadata(job.found.path, job.found.mtime_ns))

    def _resolve_without_model(self, loaded: Loaded, summary: IndexSummary) -> bool:
        """Failures, touched files and copies of indexed files are stored without running the model."""
        found, previous = loaded.job.found, loaded.job.previous
        if loaded.error is not None:
            self.store.put_file(
                found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, error=loaded.error
            )
            summary.failed += 1
            summary.failures.append((found.path, loaded.error))
            return True
        if previous is not None and previous.hash == loaded.digest:
            self.store.touch_file(previous.id, size=found.size, mtime_ns=found.mtime_ns)
            summary.unchanged += 1
            return True
        twin = next(iter(self.store.ok_files_by_hash(loaded.digest)), None) if loaded.digest else None
        if twin is not None:
            self.store.copy_vector_to(
                twin.id, found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest
            )
            self._count_stored(loaded, summary)
            return True
        return False

    def _embed_and_store(self, batch: list[Loaded], summary: IndexSummary) -> None:
        vectors = self._embed_batch(batch)
        with self.store.transaction():
            for loaded, vector in zip(batch, vectors):
                found, image = loaded.job.found, loaded.image
                if isinstance(vector, str):
                    self.store.put_file(
                        found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, error=vector
                    )
                    summary.failed += 1
                    summary.failures.append((found.path, vector))
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
        self.progress.advance(len(batch))

    def _embed_batch(self, batch: list[Loaded]) -> list:
        """Vectors for the batch; if the batch fails, each image alone, so one bad image fails alone."""
        images = [loaded.image.image for loaded in batch]
        try:
            return list(self.embedder.embed_images(images, batch_size=len(images)))
        except (UmsearchError, MemoryError):
            raise
        except Exception:
            pass
        results: list = []
        for image in images:
            try:
                results.append(self.embedder.embed_images([image], batch_size=1)[0])
            except Exception as exc:  # the model rejected this image; record why, keep going
                results.append(f"the model could not embed this image: {exc}")
        return results

    @staticmethod
    def _count_stored(loaded: Loaded, summary: IndexSummary) -> None:
        if loaded.job.previous is None:
            summary.added += 1
        else:
            summary.updated += 1

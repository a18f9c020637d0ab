"""Keep the index in step with folders: scan, plan, then load and embed only what changed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import ImageLoadError, UmsearchError
from .imageload import LoadedImage, load_image
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
    tokens: int = 0  # visual tokens the model will spend on the image (batches group similar counts)


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


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError other backends (MPS, older torch) raise for it."""
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_accelerator_memory() -> None:
    """Hand cached blocks back after an out-of-memory error, so the halved batch has room."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


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
    ) -> None:
        """`image_budget` (min, max visual tokens, the embedder's) lets loader threads do the model's
        resizing ahead of it; `window` is how many decoded photos are sorted by token count before
        being cut into batches (default 4 batches)."""
        self.store = store
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.max_pixels = max_pixels
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.progress = progress or NoProgress()
        self.image_budget = image_budget
        self.window = max(self.batch_size, window or self.batch_size * 4)

    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            embedder = self._embedder_factory()
            info = embedder.info
            self.store.bind(
                IndexSettings(info.model_id, info.dim, info.min_image_tokens, info.max_image_tokens)
            )
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
        plan = plan_changes(self.store, roots, scan(roots, excludes, on_error=on_scan_error))
        summary.unchanged = plan.unchanged
        self._apply_moves_and_removals(plan, summary)
        try:
            self.process(plan.jobs, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
        return summary

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
            window: list[Loaded] = []
            for loaded in self._load_ahead(jobs):
                if self._resolve_without_model(loaded, summary):
                    self.progress.advance()
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
        embedder = self.embedder
        if not hasattr(embedder, "prepare_images"):
            for batch in batches:
                self._embed_and_store(batch, summary)
            return
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
            digest = content_hash(job.found.path)
        except OSError as exc:
            return Loaded(job, None, None, exc.strerror or str(exc))
        if job.previous is not None and job.previous.hash == digest:
            return Loaded(job, digest, None, None)  # touched, same bytes: no decode needed
        try:
            image = load_image(job.found.path, self.max_pixels)
            if self.image_budget is None:
                return Loaded(job, digest, image, None, image.image.width * image.image.height)
            from .embed import fit_image, image_token_count

            low, high = self.image_budget
            fitted = dataclasses.replace(image, image=fit_image(image.image, low, high))
            return Loaded(job, digest, fitted, None, image_token_count(*fitted.image.size, low, high))
        except ImageLoadError as exc:
            return Loaded(job, digest, None, str(exc))
        except ValueError as exc:  # an aspect ratio beyond what the model accepts, say
            return Loaded(job, digest, None, f"cannot prepare this image for the model: {exc}")

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

    def _embed_and_store(
        self, batch: list[Loaded], summary: IndexSummary, *, prepared: Future | None = None, settle: Future | None = None
    ) -> None:
        vectors = self._embed_batch(batch, prepared=prepared, settle=settle)
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
                )
                self._count_stored(loaded, summary)
        self.progress.advance(len(batch))

    def _embed_batch(self, batch: list[Loaded], *, prepared: Future | None = None, settle: Future | None = None) -> list:
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
        results: list = []
        for loaded in batch:
            try:
                results.append(self.embedder.embed_images([loaded.image.image], batch_size=1)[0])
            except Exception as exc:  # the model rejected this image; record why, keep going
                if is_out_of_memory(exc):
                    self._embed_halves([loaded], exc)  # raises: a photo is never recorded as failed for memory
                results.append(f"the model could not embed this image: {exc}")
        return results

    def _run_model(self, images: list, prepared: Future | None = None):
        embedder = self.embedder
        if prepared is not None:
            return embedder.embed_prepared(prepared.result())
        return embedder.embed_images(images, batch_size=len(images))

    def _embed_halves(self, batch: list[Loaded], exc: BaseException) -> list:
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
        if loaded.job.previous is None:
            summary.added += 1
        else:
            summary.updated += 1

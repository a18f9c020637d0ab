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
from typing import TYPE_CHECKING, Any, Protocol

from . import backlog, settings
from .embed import is_out_of_memory, release_accelerator_memory
from .errors import DiskFullError, ImageLoadError, UmsearchError
from .families import GME, Family, family_named
from .imageload import LoadedImage, describe_os_error, load_image
from .kinds import DOCUMENT, PHOTO, TEXT_KINDS, VIDEO, image_kind, kind_by_extension, kind_of_file
from .metadata import PhotoMeta, extract_metadata, metadata_from_exif
from .planning import (
    EMPTY_ROOT_KEPT,
    Job,
    Plan,
    check_roots,
    content_hash,
    found_in_scope,
    hold_empty_roots,
    is_within,
    outermost_paths,
    plan_changes,
)
from .scan import FoundFile, normalize_root, scan
from .settings import max_frames, max_pages, text_budget
from .store import FileRow, IndexSettings, Store
from .store.health import is_disk_full
from .store.segments import Segment

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from .embed import Embedder
    from .manners import PowerGate
    from .video import SamplingPolicy

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

    @property
    def saved(self) -> int:
        """Photos embedded (or given a copy's vector) and committed."""
        return self.added + self.updated

    def add(self, other: IndexSummary) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        if self.changes is not None and other.changes is not None:
            self.changes.extend(other.changes)

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
class Part:
    """One picture of a file for the model: a photo, one frame of a video, one page of a PDF."""

    image: Image.Image  # already at the size the model will use (fit_image), when a budget is known
    tokens: int  # visual tokens the model will spend on it (batches group similar counts)
    time: float | None = None  # seconds into a video
    page: int | None = None  # page of a document


@dataclass
class Loaded:
    job: Job
    digest: str | None
    image: LoadedImage | None
    error: str | None
    tokens: int = 0  # visual tokens of all parts together
    vanished: bool = False  # deleted between the scan and the read: not a failure, just gone
    meta: PhotoMeta | None = None  # read on the loader thread, next to decoding
    parts: list[Part] = field(default_factory=list)  # what the model embeds: one for a photo
    kind: str = PHOTO

    @property
    def decoded(self) -> LoadedImage:
        """The image of a file that goes to the model (only decoded files reach a batch)."""
        if self.image is None:
            raise ValueError(f"{self.job.found.path} was not decoded")
        return self.image

    @property
    def multi(self) -> bool:
        """A video or a PDF: stored as segments with times or pages, even when only one was kept."""
        return self.kind == VIDEO or (self.kind == DOCUMENT and self.parts[0].page is not None)


@dataclass
class _Unit:
    """One part on its way through the model, and the file it belongs to."""

    loaded: Loaded
    index: int

    @property
    def part(self) -> Part:
        return self.loaded.parts[self.index]


class Indexer:
    """Runs one incremental pass. The model is only loaded when something actually needs embedding."""

    def __init__(
        self,
        store: Store,
        embedder_factory: Callable[[], Embedder],
        *,
        max_pixels: int,
        batch_size: int = settings.DEFAULT_BATCH_SIZE,
        workers: int | None = None,
        progress: Progress | None = None,
        image_budget: tuple[int, int] | None = None,
        window: int | None = None,
        video_policy: SamplingPolicy | None = None,
        pages_per_document: int | None = None,
        model_turn: Callable[[], AbstractContextManager[object]] | None = None,
        power: PowerGate | None = None,
        family: Family | None = None,
    ) -> None:
        """`image_budget` (min, max visual tokens, the embedder's) lets loader threads do the model's
        resizing ahead of it (screenshots and documents get `settings.text_budget` of it); `window` is how
        many decoded pictures (photos, frames, pages) are sorted by token count before being cut into
        batches (default 4 batches). `video_policy` chooses the frames of a video (default: scene cuts,
        at most `settings.max_frames()`), `pages_per_document` the pages of a PDF (`settings.max_pages()`).
        `model_turn` is entered around each model call when the model is shared (the watcher's service
        passes `Session.gate.batch`: a query goes before the next batch). `power` holds embedding while on
        battery (background runs: the watcher, the service). `family` is the model family whose resizing the
        loader threads do (default: the index's, else GME); a model of another family is refused."""
        self.store = store
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.max_pixels = max_pixels
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.progress = progress or NoProgress()
        self.image_budget = image_budget
        recorded = store.settings()
        self.family = family or (family_named(recorded.family) if recorded else GME)
        self.text_budget = text_budget(*image_budget) if image_budget is not None else None
        self.window = max(self.batch_size, window or self.batch_size * 4)
        if video_policy is None:
            from .video import SamplingPolicy

            video_policy = SamplingPolicy(max_frames=max_frames())
        self.video_policy = video_policy
        self.pages_per_document = pages_per_document or max_pages()
        self._model_turn = model_turn or contextlib.nullcontext
        self.power = power
        # The run's backlog (backlog.py): jobs planned, and how many have been dealt with so far.
        self._planned = 0
        self._done = 0
        self._should_stop: Callable[[], bool] = lambda: False

    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self.progress.note("loading model")
            embedder = self._embedder_factory()
            self.progress.note(None)
            info = embedder.info
            if info.family != self.family.name:
                # Loader threads resized photos the other family's way: its vectors would be subtly off.
                raise UmsearchError(
                    f"the indexer was set up for {self.family.label} models but got a {info.family} model; "
                    "pass its family to Indexer(family=...)"
                )
            self.store.bind(
                IndexSettings(info.model_id, info.dim, info.min_image_tokens, info.max_image_tokens, info.family)
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
        unreadable: list[str] = []

        def scan_error(path: str, reason: str) -> None:
            unreadable.append(path)
            if on_scan_error is not None:
                on_scan_error(path, reason)

        plan = plan_changes(self.store, roots, scan(roots, excludes, on_error=scan_error))
        if unreadable:  # a folder that could not be listed is not a folder whose photos were deleted
            plan.removals = [row for row in plan.removals if not any(is_within(row.path, f) for f in unreadable)]
        for root in hold_empty_roots(plan, roots, self.store.root_devices()):
            if on_scan_error is not None:
                on_scan_error(root, EMPTY_ROOT_KEPT)
        summary.unchanged, summary.failed = plan.unchanged, plan.still_failed
        with self.disk_full_said_plainly(summary):
            self.store.record_roots(roots)
            self._apply_moves_and_removals(plan, summary)
            try:
                with self._backlog(len(plan.jobs)):
                    self.process(plan.jobs, summary)
                self.fill_missing_metadata()
            except (KeyboardInterrupt, StopRequested):
                summary.interrupted = True
        return summary

    @contextmanager
    def disk_full_said_plainly(self, summary: IndexSummary) -> Iterator[None]:
        """A full disk under the index becomes one line with what was saved (every commit before it stands)."""
        try:
            yield
        except DiskFullError:
            raise
        except Exception as exc:
            folder = self.store.path.parent
            if is_disk_full(exc, folder):
                raise DiskFullError(str(folder), summary.saved) from None
            raise

    @contextmanager
    def _backlog(self, planned: int) -> Iterator[None]:
        """Record the run's backlog in the index while it lasts (a query says what it did not search yet)."""
        self._planned, self._done = planned, 0
        if planned:
            with self.store.transaction():
                backlog.record(self.store, planned)
        try:
            yield
        except BaseException:
            # The error that ended the run is the one to report: a full disk or a read-only index also stops
            # the clearing, and the record left behind is a stale one (its process gone) that readers ignore.
            self._planned = self._done = 0
            if planned:
                with contextlib.suppress(Exception), self.store.transaction():
                    backlog.clear(self.store)
            raise
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

        def read(row: FileRow) -> tuple[FileRow, PhotoMeta | None, str | None]:
            if not os.path.isfile(row.path):
                return row, None, None  # outside this run's folders and gone (or unmounted): leave it alone
            kind = kind_by_extension(row.path)
            if kind is not None:  # a video or a PDF (a copy, say): its header's facts; its kind is known
                from .mediameta import media_metadata

                return row, media_metadata(row.path, row.mtime_ns), kind
            try:
                return row, extract_metadata(row.path, row.mtime_ns), kind_of_file(row.path)
            except OSError:
                return row, None, None  # gone or unreadable since the scan: the next run sees it

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="umsearch-meta") as executor:
            for start in range(0, len(rows), 256):
                results = list(executor.map(read, rows[start : start + 256]))
                with self.store.transaction():
                    for row, meta, kind in results:
                        if meta is not None:
                            self.store.set_metadata(row.id, meta, kind)
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
                if sum(len(w.parts) for w in window) >= self.window:
                    self._embed_window(window, summary)
                    window = []
            if window:
                self._embed_window(window, summary)
        finally:
            self.progress.finish()

    def _embed_window(self, window: list[Loaded], summary: IndexSummary) -> None:
        """Embed a read-ahead window in batches of similar token counts (less padding, even memory use).

        The window's pictures (a photo, or each frame of a video and each page of a PDF) are batched
        together; a file is stored once all its pictures have their vectors, in the transaction of the batch
        that completed it, so a video's frames land together or not at all. While the model runs one batch,
        the next one's inputs are prepared on a helper thread, so the accelerator does not wait for pixel
        normalisation and tokenisation either.
        """
        units = sorted((_Unit(loaded, i) for loaded in window for i in range(len(loaded.parts))), key=_unit_tokens)
        batches = [units[i : i + self.batch_size] for i in range(0, len(units), self.batch_size)]
        waiting = {id(loaded): len(loaded.parts) for loaded in window}
        vectors: dict[int, list[np.ndarray | Rejected | None]] = {id(w): [None] * len(w.parts) for w in window}
        self._wait_for_power()  # before the model loads: loading is heavy work too
        embedder = self.embedder
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umsearch-prepare") as helper:
            upcoming: Future[Any] | None = helper.submit(self._prepare, embedder, batches[0])
            for i, batch in enumerate(batches):
                prepared, upcoming = upcoming, None
                assert prepared is not None  # submitted for this batch by the round before
                if i + 1 < len(batches):
                    # Submitted only once the previous preparation is done: one tokenizer user at a time.
                    prepared.exception()
                    upcoming = helper.submit(self._prepare, embedder, batches[i + 1])
                self._wait_for_power()
                results = self._embed_batch(batch, prepared=prepared, settle=upcoming)
                complete: list[Loaded] = []
                for unit, vector in zip(batch, results, strict=True):
                    vectors[id(unit.loaded)][unit.index] = vector
                    waiting[id(unit.loaded)] -= 1
                    if waiting[id(unit.loaded)] == 0:
                        complete.append(unit.loaded)
                self._store_embedded(complete, vectors, summary)
            if upcoming is not None:
                upcoming.exception()

    def _prepare(self, embedder: Embedder, batch: list[_Unit]) -> Any:
        images = [unit.part.image for unit in batch]
        if self.text_budget is None or all(unit.loaded.kind not in TEXT_KINDS for unit in batch):
            return embedder.prepare_images(images)  # photos and frames: the embedder's own budget
        return embedder.prepare_images(images, max_image_tokens=self.text_budget[1])

    def _store_embedded(
        self, complete: list[Loaded], vectors: dict[int, list[np.ndarray | Rejected | None]], summary: IndexSummary
    ) -> None:
        """Files whose every picture has been through the model: stored in one transaction."""
        clips = self._clip_vectors(complete, vectors)  # model calls: before the transaction, not in it
        # Counted once committed: a batch that never lands (a full disk, a stop) was not saved.
        tally = IndexSummary(changes=[] if summary.changes is not None else None)
        with self.store.transaction():
            if self._planned:
                backlog.record(self.store, self._planned - self._done - len(complete))
            for loaded in complete:
                found, image = loaded.job.found, loaded.decoded
                results = vectors.pop(id(loaded))
                kept = [
                    (part, v)
                    for part, v in zip(loaded.parts, results, strict=True)
                    if v is not None and not isinstance(v, Rejected)
                ]
                if not kept:  # a photo the model refused (or every frame of a video): its reason is the failure
                    reason = next(v.reason for v in results if isinstance(v, Rejected))
                    self.store.put_file(
                        found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, error=reason
                    )
                    tally.fail(found.path, reason)
                    continue
                segments = [Segment(vector, part.time, part.page) for part, vector in kept]
                if id(loaded) in clips:  # the clip as a whole first: it is the video's own vector
                    segments.insert(0, Segment(clips[id(loaded)], kept[0][0].time))
                store_as = {"segments": segments} if loaded.multi else {"vector": kept[0][1]}
                self.store.put_file(
                    found.path,
                    size=found.size,
                    mtime_ns=found.mtime_ns,
                    digest=loaded.digest,
                    width=image.width,
                    height=image.height,
                    meta=loaded.meta,
                    kind=loaded.kind,
                    **store_as,
                )
                self._count_stored(loaded, tally)
        summary.add(tally)
        self._advance(len(complete))

    def _clip_vectors(
        self, complete: list[Loaded], vectors: dict[int, list[np.ndarray | Rejected | None]]
    ) -> dict[int, np.ndarray]:
        """For a family that reads videos (Qwen3-VL), each finished video's kept frames, in time order, as one
        video input: a vector for the clip as a whole, beside the frames' own (which give the timestamps).

        A clip the model cannot take (out of memory, say) is left out: its frames still find the video."""
        if not self.family.clips:
            return {}
        from .qwen3vl import VideoClip

        clips: dict[int, np.ndarray] = {}
        for loaded in complete:
            if loaded.kind != VIDEO:
                continue
            results = vectors[id(loaded)]
            frames = [
                p for p, v in zip(loaded.parts, results, strict=True) if v is not None and not isinstance(v, Rejected)
            ]
            if not frames:
                continue
            clip = VideoClip(tuple(p.image for p in frames), tuple(p.time or 0.0 for p in frames))
            try:
                with self._model_turn():
                    clips[id(loaded)] = self.embedder.embed_videos([clip])[0]  # type: ignore[attr-defined]
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_accelerator_memory()
        return clips

    def _load_ahead(self, jobs: Sequence[Job]) -> Iterator[Loaded]:
        # Deep enough that the next window is decoded while the model works through this one; bounded
        # because loader threads shrink each picture to the model's budget (image_budget), and counted in
        # pictures: a video in flight counts as its most frames, a PDF as its most pages.
        depth = max(self.window, self.workers * 2)
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="umsearch-load")
        pending: deque[tuple[Future[Loaded], int]] = deque()
        queue = iter(jobs)
        upcoming = [next(queue, None)]

        def refill() -> None:
            in_flight = sum(weight for _, weight in pending)
            while upcoming[0] is not None and (not pending or in_flight + self._weight(upcoming[0]) <= depth):
                weight = self._weight(upcoming[0])
                pending.append((executor.submit(self._load, upcoming[0]), weight))
                in_flight += weight
                upcoming[0] = next(queue, None)

        try:
            refill()
            while pending:
                loaded = pending.popleft()[0].result()
                refill()  # topped up before this one is handed over: loading goes on while it is embedded
                yield loaded
        finally:
            for future, _ in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    def _weight(self, job: Job) -> int:
        kind = kind_by_extension(job.found.path)
        if kind == VIDEO:
            return self.video_policy.max_frames
        return self.pages_per_document if kind == DOCUMENT else 1

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
            kind = kind_by_extension(job.found.path)
            if kind == VIDEO:
                return self._read_video(job, digest)
            if kind == DOCUMENT:
                return self._read_pdf(job, digest)
            return self._read_image(job, digest)
        except ImageLoadError as exc:
            if not os.path.exists(job.found.path):
                return Loaded(job, None, None, None, vanished=True)
            return Loaded(job, digest, None, str(exc))
        except ValueError as exc:  # an aspect ratio beyond what the model accepts, say
            return Loaded(job, digest, None, f"cannot prepare this image for the model: {exc}")

    def _read_image(self, job: Job, digest: str) -> Loaded:
        path = job.found.path
        text_pixels = self._pixels(self.text_budget)
        image = load_image(path, self.max_pixels, text_max_pixels=text_pixels)
        meta = (
            metadata_from_exif(image.exif, (image.width, image.height), job.found.mtime_ns)
            if image.exif is not None
            else extract_metadata(path, job.found.mtime_ns)  # e.g. RAW: its preview has no EXIF
        )
        kind = image_kind(
            path,
            image.width,
            image.height,
            image_format=image.format,
            exif=image.exif,
            info=image.info,
            picture=image.image,
        )
        budget = self.text_budget if kind in TEXT_KINDS else self.image_budget
        part = self._part(image.image, budget)
        fitted = dataclasses.replace(image, image=part.image)
        return Loaded(job, digest, fitted, None, part.tokens, meta=meta, parts=[part], kind=kind)

    def _read_video(self, job: Job, digest: str) -> Loaded:
        from .mediameta import video_metadata
        from .video import sample_video

        pixels = self._pixels(self.image_budget) or self.max_pixels
        video = sample_video(job.found.path, pixels, self.video_policy)
        parts = [dataclasses.replace(self._part(f.image, self.image_budget), time=f.time) for f in video.frames]
        size = (video.width, video.height)
        meta = video_metadata(video.tags, size, job.found.mtime_ns)
        image = LoadedImage(parts[0].image, video.width, video.height)
        return Loaded(job, digest, image, None, sum(p.tokens for p in parts), meta=meta, parts=parts, kind=VIDEO)

    def _read_pdf(self, job: Job, digest: str) -> Loaded:
        from .mediameta import document_metadata
        from .pdfpages import render_pdf

        pixels = self._pixels(self.text_budget) or self.max_pixels
        document = render_pdf(job.found.path, pixels, self.pages_per_document)
        parts = [dataclasses.replace(self._part(p.image, self.text_budget), page=p.number) for p in document.pages]
        size = (document.width, document.height)  # in points: a page has no pixels of its own
        meta = document_metadata(document.created, size, job.found.mtime_ns)
        image = LoadedImage(parts[0].image, *size)
        return Loaded(job, digest, image, None, sum(p.tokens for p in parts), meta=meta, parts=parts, kind=DOCUMENT)

    def _pixels(self, budget: tuple[int, int] | None) -> int | None:
        return self.family.max_pixels(budget[1]) if budget is not None else None

    def _part(self, image: Image.Image, budget: tuple[int, int] | None) -> Part:
        """The picture at the size the model will use (the family's resizes), and what it costs."""
        if budget is None:
            return Part(image, image.width * image.height)
        fitted = self.family.fit_image(image, *budget)
        return Part(fitted, self.family.image_token_count(*fitted.size, *budget))

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
        if twin is not None and loaded.digest is not None:
            self.store.copy_vector_to(
                twin.id, found.path, size=found.size, mtime_ns=found.mtime_ns, digest=loaded.digest, meta=loaded.meta
            )
            self._count_stored(loaded, summary)
            return True
        return False

    def _embed_batch(
        self, batch: list[_Unit], *, prepared: Future | None = None, settle: Future | None = None
    ) -> list[np.ndarray | Rejected]:
        """Vectors for the batch; if the batch fails, each picture alone, so one bad picture fails alone.

        Out of accelerator memory, the batch is halved (and so is the batch size for the rest of the
        run) and retried: never dropped. `prepared` holds the batch's inputs made ahead on a helper
        thread; `settle` is that thread's next job, waited for before preparing anything here.
        """
        try:
            return list(self._run_model(batch, prepared))
        except (UmsearchError, MemoryError):
            raise
        except Exception as exc:
            if settle is not None:
                settle.exception()
            if is_out_of_memory(exc):
                return self._embed_halves(batch, exc)
        results: list[np.ndarray | Rejected] = []
        for unit in batch:
            try:
                results.append(self._run_model([unit])[0])
            except Exception as exc:  # the model rejected this picture; record why, keep going
                if is_out_of_memory(exc):
                    self._embed_halves([unit], exc)  # raises: a photo is never recorded as failed for memory
                results.append(Rejected(f"the model could not embed this image: {exc}"))
        return results

    def _run_model(self, batch: list[_Unit], prepared: Future | None = None) -> np.ndarray:
        embedder = self.embedder
        inputs = prepared.result() if prepared is not None else self._prepare(embedder, batch)
        with self._model_turn():
            return embedder.embed_prepared(inputs)

    def _embed_halves(self, batch: list[_Unit], exc: BaseException) -> list[np.ndarray | Rejected]:
        release_accelerator_memory()
        if len(batch) == 1:
            unit = batch[0]
            raise UmsearchError(
                f"out of memory embedding {unit.loaded.job.found.path} on its own ({unit.part.tokens} visual "
                "tokens): use --quality fast (fewer tokens per photo), --quant nf4, or --device cpu"
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
        settled: Callable[[FileRow], bool] | None = None,
    ) -> SyncResult:
        """Bring just these files and folders in step with the disk (the watcher's reconcile step).

        A path may be a file or a folder, present or gone: what is on disk below it is planned against what
        the index holds below it, so moves between any of the paths keep their vectors, and a new file whose
        bytes match an indexed file gone from disk takes over its row. Files that `ready` rejects (still being
        written) keep their old row and come back in `deferred` (with gone rows of the same size, which may be
        their move's source), as do jobs not started because `should_stop` turned true (checked between batches).
        A path that is an empty folder while the index holds photos below it keeps them (`kept_empty`). A row whose
        file is gone is removed only once `settled(row)` says so; until then it stays and its path is deferred (the
        other half of a move may be reported a moment later, and the row should follow the photo, not be dropped).
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
        result.kept_empty = hold_empty_roots(plan, scope, self.store.root_devices())
        if waiting:
            # A gone row may be the source of a waiting file's move (same size): keep it until that file is
            # read, and look at its path again then; a row at a waiting file's path stays as it is.
            held = set(result.deferred)
            held_sizes = {item.size for item in waiting}
            kept = [row for row in plan.removals if row.path in held or row.size in held_sizes]
            plan.removals = [row for row in plan.removals if row.path not in held and row.size not in held_sizes]
            result.deferred.extend(row.path for row in kept if row.path not in held)
        if settled is not None and plan.removals:
            unsettled = {row.id: row for row in plan.removals if not settled(row)}
            if unsettled:
                plan.removals = [row for row in plan.removals if row.id not in unsettled]
                # The scope paths holding them, not each row: a deleted folder of 10k photos is one path again.
                held_in = {next((p for p in scope if is_within(row.path, p)), row.path) for row in unsettled.values()}
                result.deferred.extend(sorted(held_in - set(result.deferred)))
        result.summary.unchanged, result.summary.failed = plan.unchanged, plan.still_failed
        with self.disk_full_said_plainly(result.summary):
            self._apply_moves_and_removals(plan, result.summary)
            jobs = plan.jobs
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


def _unit_tokens(unit: _Unit) -> int:
    return unit.part.tokens


class StopRequested(Exception):
    """A stop was asked for while the run waited (for the charger, say): the rest is left for later."""


@dataclass
class SyncResult:
    summary: IndexSummary = field(default_factory=IndexSummary)
    deferred: list[str] = field(default_factory=list)  # paths to look at again later
    kept_empty: list[str] = field(default_factory=list)  # empty folders whose photos stay indexed (unmounted?)

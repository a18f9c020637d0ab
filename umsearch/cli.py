"""The `umsearch` command: a thin layer that turns arguments into library calls and results into text."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, overload

import typer

from . import settings
from .cliapp import App, show_version
from .errors import UmsearchError
from .runtime import RuntimeRequest

if TYPE_CHECKING:
    from .embed import Embedder
    from .families import Family
    from .index import Indexer, IndexSummary
    from .pace import Pace
    from .rerank import Qwen3Reranker
    from .service.route import Route
    from .session import SearchResult, Session
    from .store import Store

app = App(
    name="umsearch",
    help="Local, private, semantic photo search: find any photo by describing it, by showing another, or both.",
    no_args_is_help=True,
)

F = TypeVar("F", bound=Callable)

EXIT_ERROR = 1
EXIT_USAGE = 2  # the command line was not understood: click's own code, printed as one line by cliapp
EXIT_PARTIAL = 3  # the command finished, but some files could not be indexed
EXIT_INTERRUPTED = 130

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db", envvar="UMSEARCH_DB", help="Index file [default: in the user data folder].", show_default=False
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="UMSEARCH_MODEL",
        help="Hugging Face id or local folder of a GME or Qwen3-VL-Embedding model "
        f"[default: the index's model, else {settings.DEFAULT_MODEL}].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MinTokensOption = Annotated[
    int | None,
    typer.Option(
        "--min-image-tokens",
        min=4,
        help=f"Smallest visual token budget per image [default: {settings.DEFAULT_MIN_IMAGE_TOKENS}].",
    ),
]
MaxTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-image-tokens",
        min=4,
        help=f"Largest visual token budget per image [default: {settings.DEFAULT_MAX_IMAGE_TOKENS}].",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        envvar="UMSEARCH_DEVICE",
        help="auto, cpu, cuda or mps (auto: CUDA, then Apple MPS, then CPU).",
    ),
]
QuantOption = Annotated[
    str,
    typer.Option(
        "--quant",
        envvar="UMSEARCH_QUANT",
        help="auto, nf4, int8, int8-dynamic or none (auto: 4-bit NF4 on CUDA, PyTorch's dynamic int8 text "
        "decoder on CPUs, none on Apple MPS).",
    ),
]
DtypeOption = Annotated[
    str,
    typer.Option(
        "--dtype",
        envvar="UMSEARCH_DTYPE",
        help="auto, float32, bfloat16 or float16 compute (auto: bf16/fp16 on GPUs; on CPUs bf16 where the CPU "
        "has it natively, else float32).",
    ),
]
DimOption = Annotated[
    int | None,
    typer.Option(
        "--dim",
        min=32,
        help="A new Qwen3-VL-Embedding index keeps the first N values of each vector (e.g. 512, 1024; "
        "smaller index, faster search, a little less accurate) [default: all].",
        show_default=False,
    ),
]
RerankModelOption = Annotated[
    str | None,
    typer.Option(
        "--rerank-model",
        envvar="UMSEARCH_RERANK_MODEL",
        help=f"Hugging Face id or local folder of the reranker [default: {settings.DEFAULT_RERANK_MODEL}].",
        show_default=False,
    ),
]
NoServerOption = Annotated[
    bool,
    typer.Option(
        "--no-server",
        help="Answer in this process: use no background service and start none (also UMSEARCH_SERVER=off).",
    ),
]
IdleTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--idle-timeout",
        min=0.0,
        help="Seconds without a request before the service stops; 0: never [default: UMSEARCH_IDLE_TIMEOUT, else 600].",
        show_default=False,
    ),
]
ExcludeOption = Annotated[
    list[str] | None, typer.Option("--exclude", help="Skip paths matching this glob (repeatable).")
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per model call.")]
QualityOption = Annotated[
    str | None,
    typer.Option(
        "--quality",
        help="Image detail: "
        + ", ".join(f"{name} ({low}-{high} visual tokens)" for name, (low, high) in settings.QUALITY_PRESETS.items())
        + " for GME; Qwen3-VL's best is its reference 4-1800; or auto [default: the index's; a new index: auto = "
        + ", ".join(f"{preset} on {device}" for device, preset in settings.AUTO_QUALITY.items())
        + "].",
        show_default=False,
    ),
]


def friendly_errors(command: F) -> F:
    """Every expected failure becomes one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from . import present

        try:
            return command(*args, **kwargs)
        except UmsearchError as exc:
            present.error(str(exc))
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            present.err.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("UMSEARCH_DEBUG"):
                raise
            if type(exc).__module__ == "apsw" and type(exc).__name__ == "FullError":
                present.error("the disk holding the index is full; free space and run again")
                raise typer.Exit(EXIT_ERROR) from None
            if type(exc).__module__ == "apsw" and (
                type(exc).__name__ in ("CorruptError", "NotADBError") or "blob read error" in str(exc)
            ):
                # damage found only when a page is read (after the index opened fine)
                present.error(f"the index is corrupt ({exc}); move it away and re-index")
                raise typer.Exit(EXIT_ERROR) from None
            present.error(f"unexpected {type(exc).__name__}: {exc} (set UMSEARCH_DEBUG=1 to see the traceback)")
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


# ---- shared plumbing ---------------------------------------------------------------------------
def open_store(db: Path | None, *, create: bool) -> Store:
    from .store import Store

    return Store.open(db or settings.default_db_path(), create=create)


def chosen_model(store: Store, model: str | None) -> str:
    """An explicit --model must match the index (its family, then its id); without one, the index's own."""
    from .families import family_of_spec

    recorded = store.settings()
    if model is None:
        return recorded.model_id if recorded else settings.default_model()
    model_id = settings.normalize_model_spec(model)
    store.check_model(model_id, family_of_spec(model_id).name)
    return model_id


def model_family(store: Store, model_id: str) -> Family:
    """The index's model family, or (a new index) the family of the model about to build it."""
    from .families import family_named, family_of_spec

    recorded = store.settings()
    return family_named(recorded.family) if recorded else family_of_spec(model_id)


def index_settings(
    store: Store,
    model: str | None,
    min_tokens: int | None,
    max_tokens: int | None,
    quality: str | None,
    runtime: RuntimeRequest | None = None,
) -> tuple[str, tuple[int, int]]:
    """The model and image budget an index or watch run will use, refused early when the index disagrees.

    A new index without --quality (or with auto) gets the preset of the device `runtime` runs on."""
    from .runtime import check_index_budget, resolve_budget, runs_on

    model_id = chosen_model(store, model)
    recorded = store.settings()
    device = None
    if recorded is None and quality in (None, "auto") and runtime is not None:
        device = runs_on(runtime)
    family = model_family(store, model_id)
    budget = resolve_budget(recorded, quality, min_tokens, max_tokens, family, device=device)
    check_index_budget(recorded, budget, str(store.path))
    return model_id, budget


def first_run_notice(
    indexer: Indexer, budget: tuple[int, int], quality: str | None, family: Family
) -> Callable[[Pace], None]:
    """What a first run says once its pace is measured: quality and cost, and on a terminal, if the run will
    take hours, how to make it cheaper."""
    from . import present
    from .pace import RunFacts, first_run_lines
    from .runtime import quality_name

    def say(pace: Pace) -> None:
        per_photo = pace.per_photo()
        if per_photo is None:
            return
        facts = RunFacts(
            device=indexer.embedder.info.device,
            quality=quality_name(*budget, family),
            auto_quality=quality in (None, "auto"),
            to_do=max(0, pace.total - pace.done),
            model=family.label,
        )
        for line in first_run_lines(facts, per_photo, interactive=present.err.is_terminal):
            present.err.print(line, markup=False)

    return say


def vector_length(store: Store, family: Family, dim: int | None) -> int | None:
    """The --dim an index or watch run embeds at: the index's own, or `dim` for a new Qwen3-VL index."""
    from .errors import ModelMismatchError
    from .runtime import index_dim

    if dim is not None and not family.shortens:
        raise UmsearchError(f"--dim shortens Qwen3-VL-Embedding vectors only; {family.label} vectors keep their length")
    recorded = store.settings()
    if recorded is None:
        return dim
    if dim is not None and dim != recorded.dim:
        raise ModelMismatchError(
            f"index {store.path} holds {recorded.dim}-d vectors, not {dim}-d: drop --dim to keep its length, "
            "or use --db NEW_FILE for a separate index"
        )
    return index_dim(recorded)


def index_model(db_path: Path) -> str | None:
    """The model an existing index was built with (what its queries will load), or None."""
    if not db_path.exists():
        return None
    try:
        with open_store(db_path, create=False) as store:
            recorded = store.settings()
    except UmsearchError:
        return None  # the index check of `doctor` reports what is wrong with the file
    return recorded.model_id if recorded else None


def load_model(
    model_id: str, budget: tuple[int, int], runtime: RuntimeRequest, dim: int | None = None, *, spinner: bool = True
) -> Embedder:
    """The one way CLI commands load a model: fetch it on first use (progress bars), then a spinner (not while
    a progress bar already says "loading model"). `dim` shortens a Qwen3-VL-Embedding model's vectors (--dim)."""
    from contextlib import nullcontext

    from . import present
    from .session import load_for_session

    download_on_first_use(model_id)
    with present.spinner(f"loading model {model_id} …") if spinner else nullcontext():
        return load_for_session(model_id, budget, runtime, dim)


def load_reranker(model_id: str, budget: tuple[int, int], runtime: RuntimeRequest) -> Qwen3Reranker:
    """How CLI commands load the reranker: fetch it on first use, a spinner, then the CPU cost warning."""
    from . import present
    from .rerank import rerank_cost_note
    from .session import load_reranker_for_session

    download_on_first_use(model_id)
    with present.spinner(f"loading reranker {model_id} …"):
        reranker = load_reranker_for_session(model_id, budget, runtime)
    note = rerank_cost_note(reranker.info.device)
    if note:
        present.warn(note)
    return reranker


def open_session(
    db: Path | None,
    *,
    model: str | None = None,
    runtime: RuntimeRequest | None = None,
    quality: str | None = None,
    rerank_model: str | None = None,
    frugal: bool = False,
) -> Session:
    """The index's session, loading its model the CLI's way (with progress) when a command needs it."""
    from .session import Session

    path = db or settings.default_db_path()
    return Session(
        open_store(path, create=False),
        model=model,
        runtime=runtime,
        quality=quality,
        embedder_factory=load_model,
        reranker_factory=load_reranker,
        rerank_model=rerank_model,
        frugal=frugal,
    )


def make_route(
    db: Path | None,
    *,
    model: str | None = None,
    runtime: RuntimeRequest | None = None,
    quality: str | None = None,
    no_server: bool = False,
    rerank_model: str | None = None,
) -> Route:
    """How a command reaches its index: the running service, the index alone, a service it starts, or
    in-process (see service/route.py). Light: imports neither the server nor the model. In-process, one
    model at a time is held (frugal: the embedder goes before a reranker loads)."""
    from . import present
    from .service.route import Route, server_wanted

    path = db or settings.default_db_path()
    runtime = runtime or RuntimeRequest()
    return Route(
        db=path,
        open_session=lambda: open_session(
            path, model=model, runtime=runtime, quality=quality, rerank_model=rerank_model, frugal=True
        ),
        model=model,
        rerank_model=rerank_model,
        runtime=runtime,
        quality=quality,
        server=server_wanted(no_server),
        warn=present.warn,
        prepare=download_on_first_use,
        waiting=lambda model_id: present.spinner(f"loading model {model_id} in the umsearch service …"),
    )


@overload
def absolute(path: Path | str) -> str: ...
@overload
def absolute(path: None) -> None: ...
def absolute(path: Path | str | None) -> str | None:
    """A path given on the command line, made absolute here: the process that uses it may run elsewhere."""
    return None if path is None else os.path.abspath(os.path.expanduser(str(path)))


def download_on_first_use(model_id: str) -> None:
    """Fetch a missing hub model before the loading spinner starts, so huggingface_hub's progress bars show."""
    from . import present
    from .hub import download_model, model_info
    from .modelfiles import hub_offline, looks_like_path

    if looks_like_path(model_id) or Path(model_id).expanduser().is_dir() or model_info(model_id).downloaded:
        return  # a local folder (loading says what is wrong with it), or already downloaded
    if not hub_offline():  # offline, the failure below is the only line
        present.err.print(f"downloading model {model_id} (first use; 'umsearch model info' shows where it goes) …")
    download_model(model_id)


def warn_nothing_found(paths: list[Path]) -> None:
    """An index run that found no photo at all was most likely pointed at the wrong place: say what it looks for."""
    from . import present
    from .scan import extensions_looked_for

    where = ", ".join(present.display_path(str(p)) for p in paths)
    present.warn(
        f"no photos found in {where}: umsearch looks for files ending in {extensions_looked_for()} "
        "(any case), in subfolders too, skipping hidden ones"
    )


def max_pixels(budget: tuple[int, int]) -> int:
    return settings.max_pixels(budget[1])


def join_watcher(store: Store, roots: list[str], watcher) -> IndexSummary:
    """`index` beside a running watcher: when the watcher keeps these folders, wait until it has caught up
    (the index is then up to date, and nothing was embedded twice); otherwise say which process holds the index.
    Raises WriterGone when the watcher stops before catching up."""
    from . import present
    from .index import IndexSummary
    from .scan import is_within
    from .watchstate import wait_until_caught_up

    if not all(any(is_within(root, kept) for kept in watcher.roots) for root in roots):
        raise UmsearchError(
            f"a watcher (pid {watcher.pid}) updates this index, watching {', '.join(watcher.roots)}; "
            "add these folders to it, or stop it first"
        )
    present.err.print(f"the watcher (pid {watcher.pid}) keeps these folders indexed; waiting until it has caught up")
    paused = wait_until_caught_up(store.path, watcher)  # WriterGone when it stops first
    if paused is not None:
        raise UmsearchError(f"the watcher (pid {paused.pid}) that keeps this index is {paused.activity}")
    summary = IndexSummary()
    summary.unchanged = sum(1 for row in store.iter_files(roots) if row.status == "ok")
    return summary


def describe_watcher(watcher: dict | None) -> str:
    if watcher is None:
        return "not running ('umsearch watch FOLDER' keeps the index live)"
    return f"running (pid {watcher['pid']}): {watcher['activity']} — {', '.join(watcher['roots'])}"


def running_service(db: Path) -> dict | None:
    """The index's resident service as `status` reports it (pid, model loaded, watching), or None."""
    from .service.client import find_service
    from .service.paths import service_paths

    client = find_service(service_paths(db))
    if client is None:
        return None
    return {key: client.identity.get(key) for key in ("pid", "model_loaded", "watching")}


def describe_service(service: dict | None) -> str:
    if service is None:
        return "not running (the first query that needs the model starts it)"
    model = "model loaded" if service["model_loaded"] else "model not loaded yet"
    return f"running (pid {service['pid']}, {model}) — 'umsearch server status' for more"


# ---- search filters (query and similar) ---------------------------------------------------------
InOption = Annotated[
    list[Path] | None, typer.Option("--in", help="Only photos below this folder (repeatable).", show_default=False)
]
AfterOption = Annotated[
    str | None,
    typer.Option(
        "--after",
        help="Taken on or after a date: YYYY[-MM[-DD]] or a phrase ('last summer', '3 weeks ago', '去年夏天'); "
        "EXIF date, else file time.",
    ),
]
BeforeOption = Annotated[
    str | None, typer.Option("--before", help="Taken before a date: YYYY[-MM[-DD]] or a phrase ('this year').")
]
TypeOption = Annotated[str | None, typer.Option("--type", help="Only these file types, e.g. jpg,png.")]
CameraOption = Annotated[str | None, typer.Option("--camera", help="Camera make or model contains TEXT.")]
PlaceOption = Annotated[
    str | None, typer.Option("--place", help="Place (city, region or country, from GPS) contains TEXT.")
]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind", help="Only these kinds: photo, screenshot, document, video (e.g. video or screenshot,document)."
    ),
]
MinScoreOption = Annotated[float | None, typer.Option("--min-score", help="Drop matches scoring below X.")]
SortOption = Annotated[
    str | None, typer.Option("--sort", help="Order the best matches by score (default) or date (newest first).")
]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, max=settings.MAX_LIMIT, help="How many results.")]
PathsOption = Annotated[bool, typer.Option("--paths", help="Print only paths, one per line.")]
PreviewOption = Annotated[
    bool, typer.Option("--preview", help="Show small thumbnails where the terminal can draw images.")
]


def cli_filters(folder, after, before, types, camera, place, kinds=None):
    from .filters import build_filters

    return build_filters(
        folders=[str(f) for f in folder or ()],
        after=after,
        before=before,
        types=types,
        camera=camera,
        place=place,
        kinds=kinds,
    )


def show_dates(phrases) -> None:
    """What each date phrase was taken to mean (on stderr): "last summer" depends on today and the hemisphere."""
    from . import present

    for phrase in phrases:
        present.err.print(f"[dim]taken {phrase.text}: {phrase.when.describe()}[/]", markup=True)


def read_description(source: Path) -> str:
    """A query's text from a file (`-`: standard input), for descriptions too long for a command line."""
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UmsearchError(f"{source}: {(exc.strerror or str(exc)).lower()}") from None
    if not text.strip():
        raise UmsearchError(f"{source}: the description is empty")
    return " ".join(text.split())  # one line: paragraphs and indentation carry no meaning for the model


def show_result(result: SearchResult, *, as_json: bool, paths_only: bool, preview: bool) -> None:
    """What query and similar print: a notice about settings (stderr), then the hits as asked."""
    from . import present

    if result.notice:
        present.warn(result.notice)
    if not (as_json or paths_only):
        from .searchview import print_hits_with_facts

        print_hits_with_facts(result.hits, previews=preview)
        return
    present.print_hits(result.hits, as_json=as_json, paths_only=paths_only)


# ---- commands ----------------------------------------------------------------------------------
@app.callback()
def umsearch_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


@app.command()
@friendly_errors
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders (or single photos) to index.", show_default=False)],
    exclude: ExcludeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    batch_size: BatchSizeOption = settings.DEFAULT_BATCH_SIZE,
    min_image_tokens: MinTokensOption = None,
    max_image_tokens: MaxTokensOption = None,
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
    dim: DimOption = None,
) -> None:
    """Add new photos, re-embed changed ones, follow moves and drop deleted ones."""
    from . import present
    from .index import Indexer
    from .planning import check_roots
    from .watchstate import INDEX, IndexLock, WriterGone, acquire_waiting

    runtime = RuntimeRequest(device, quant, dtype)  # a typo fails now, not after the scan
    with open_store(db, create=True) as store:
        first_run = store.settings() is None
        model_id, budget = index_settings(store, model, min_image_tokens, max_image_tokens, quality, runtime)
        family = model_family(store, model_id)
        length = vector_length(store, family, dim)
        roots = check_roots([str(p) for p in paths])
        lock = IndexLock(store.path, tuple(roots), INDEX)
        while (watcher := acquire_waiting(lock, functools.partial(present.err.print, markup=False))) is not None:
            # A watcher keeps this index: never two processes embedding the same photos.
            try:
                summary = join_watcher(store, roots, watcher)
            except WriterGone:
                continue  # it stopped before catching up: this run does the work
            present.print_summary(summary, as_json=as_json)
            return
        with lock:
            lock.report("indexing")
            progress = present.BarProgress()
            indexer = Indexer(
                store,
                lambda: load_model(model_id, budget, runtime, length, spinner=False),
                max_pixels=max_pixels(budget),
                batch_size=batch_size,
                progress=progress,
                image_budget=budget,
                family=family,
            )
            if first_run:
                progress.on_estimate = first_run_notice(indexer, budget, quality, family)
            summary = indexer.index(
                roots,
                exclude or (),
                on_scan_error=lambda path, reason: present.warn(f"{present.display_path(path)}: {reason}"),
            )
        present.print_summary(summary, as_json=as_json)
    if not any(summary.counters().values()) and not summary.interrupted:
        warn_nothing_found(paths)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
@friendly_errors
def query(
    text: Annotated[str | None, typer.Argument(help="What to look for, in words.", show_default=False)] = None,
    image: Annotated[
        Path | None, typer.Option("--image", "-i", help="Find photos like this one (with TEXT: both at once).")
    ] = None,
    limit: LimitOption = settings.DEFAULT_LIMIT,
    instruction: Annotated[
        str | None, typer.Option("--instruction", help="Override the model's task instruction for this query.")
    ] = None,
    db: DbOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    paths_only: PathsOption = False,
    also: Annotated[
        list[str] | None, typer.Option("--and", help="Another positive term, TEXT or TEXT^WEIGHT (repeatable).")
    ] = None,
    avoid: Annotated[
        list[str] | None, typer.Option("--not", help="Move away from this, TEXT or TEXT^WEIGHT (repeatable).")
    ] = None,
    avoid_images: Annotated[
        list[Path] | None, typer.Option("--not-image", help="Move away from photos like this one (repeatable).")
    ] = None,
    literal: Annotated[
        bool, typer.Option("--literal", help="Take TEXT as plain words, not the search language (key:value, -word).")
    ] = False,
    folder: InOption = None,
    after: AfterOption = None,
    before: BeforeOption = None,
    types: TypeOption = None,
    camera: CameraOption = None,
    place: PlaceOption = None,
    kind: KindOption = None,
    min_score: MinScoreOption = None,
    sort: SortOption = None,
    preview: PreviewOption = False,
    description: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Read a (long) description to search for from this file, '-' for standard input; taken as plain words.",
        ),
    ] = None,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
    rerank: Annotated[
        int | None,
        typer.Option(
            "--rerank",
            min=1,
            max=4096,
            help="Rescore the best N matches with Qwen3-VL-Reranker and order them by its judgement "
            f"(N defaults to {settings.DEFAULT_RERANK_TOP}; one model pass per photo: slow on a CPU).",
            show_default=False,
        ),
    ] = None,
    rerank_model: RerankModelOption = None,
    no_server: NoServerOption = False,
) -> None:
    """Search by text, by image (--image), or both fused; TEXT may use the search language, e.g.
    'beach after:2025-06 before:2025-09 place:Portugal -people' (see README, "Search power")."""
    from .querylang import request_from_cli
    from .session import SearchQuery

    if description is not None:
        if text:
            raise UmsearchError("give TEXT or --file, not both")
        text, literal = read_description(description), True
    request = request_from_cli(
        text,
        literal=literal,
        image=absolute(image),
        also=also,
        avoid=avoid,
        avoid_images=[absolute(p) for p in avoid_images or ()],
        filters=cli_filters(folder, after, before, types, camera, place, kind),
        min_score=min_score,
        sort=sort,
    )
    if not (as_json or paths_only):
        show_dates(request.dates)
    if rerank and request.sort == "date":
        raise UmsearchError("--rerank orders the matches by relevance: drop the date sort to use it")
    query = SearchQuery(request, limit=request.limit or limit, instruction=instruction, rerank=rerank)
    runtime = RuntimeRequest(device, quant, dtype)
    route = make_route(
        db, model=model, runtime=runtime, quality=quality, no_server=no_server, rerank_model=rerank_model
    )
    result = route.search(query)
    show_result(result, as_json=as_json, paths_only=paths_only, preview=preview)


@app.command()
@friendly_errors
def status(
    db: DbOption = None,
    as_json: JsonOption = False,
    failures: Annotated[
        int, typer.Option("--failures", min=0, help="How many failed files to list.")
    ] = settings.FAILURES_SHOWN,
) -> None:
    """What is indexed: counts, model, dimension, database path and size, failed files."""
    from . import present

    path = db or settings.default_db_path()
    report: dict[str, Any]
    if not path.exists():
        report = {
            "db": str(path),
            "exists": False,
            "indexed": 0,
            "failed": 0,
            "model": None,
            "family": None,
            "dim": None,
            "watcher": None,
            "gone": [],
        }
        if as_json:
            present.print_json(report)
        else:
            present.out.print(f"no index yet at {path}: run 'umsearch index FOLDER' to create it")
        return
    with open_session(path) as session:
        report = session.status(failures)
    report["service"] = running_service(path)
    from .library import GoneFolder, describe_gone

    if as_json:
        present.print_json(report)
        return
    present.out.print(f"index     {report['db']} ({present.human_bytes(report['db_bytes'])})", markup=False)
    kinds = ", ".join(f"{count} {kind}{'s' if count != 1 else ''}" for kind, count in report["kinds"].items() if count)
    present.out.print(
        f"photos    {report['indexed']} indexed, {report['failed']} failed" + (f" ({kinds})" if kinds else "")
    )
    if report.get("backlog"):
        pending, state = report["backlog"]["pending"], report["backlog"]["state"]
        present.out.print(f"backlog   {pending:,} photos still to embed ({state}, pid {report['backlog']['pid']})")
    if report["model"]:
        from .families import family_named

        family = family_named(report["family"]).label
        present.out.print(f"model     {report['model']} ({family}, {report['dim']}-d)", markup=False)
        low, high = report["image_tokens"]
        present.out.print(f"images    {low}–{high} visual tokens")
        if report["quality"]:
            present.out.print(f"quality   {report['quality']}")
        if report["device"]:
            present.out.print(f"runtime   {report['device']}, {report['dtype']}, quantization {report['quant']}")
    present.out.print(f"watcher   {describe_watcher(report['watcher'])}", markup=False)
    present.out.print(f"service   {describe_service(report['service'])}", markup=False)
    present.out.print(f"places    {report['places']}", markup=False)
    if report["metadata_missing"]:
        present.out.print(
            f"metadata  {report['metadata_missing']} photos not yet read (run 'umsearch index' on their folders)"
        )
    for folder in report["gone"]:
        present.out.print(f"gone      {describe_gone(GoneFolder(**folder))}", markup=False)
    for failure in report["failures"]:
        present.out.print(f"failed    {present.display_path(failure['path'])}: {failure['reason']}", markup=False)
    if report["failed"] > len(report["failures"]):
        present.out.print(f"          … and {report['failed'] - len(report['failures'])} more (--failures N)")


@app.command()
@friendly_errors
def forget(
    path: Annotated[
        Path, typer.Argument(help="A folder (or photo) to drop from the index: a root, or any folder below one.")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")] = False,
    db: DbOption = None,
) -> None:
    """Drop a folder from the index, with its photos' vectors: a drive you no longer use, a library that moved."""
    from . import present
    from .library import describe_counts
    from .scan import is_within
    from .watchstate import INDEX, IndexLock, acquire_waiting

    target = absolute(path)
    with open_store(db, create=False) as store:
        lock = IndexLock(store.path, (target,), INDEX)
        watcher = acquire_waiting(lock, functools.partial(present.err.print, markup=False))  # an index run first
        with lock if lock.held else contextlib.nullcontext():
            if watcher is not None and os.path.exists(target):
                watched = [root for root in watcher.roots if is_within(target, root) or is_within(root, target)]
                if watched:
                    raise UmsearchError(
                        f"the watcher (pid {watcher.pid}) watches {watched[0]} and would index these photos again; "
                        "stop it first"
                    )
            indexed, failed = store.count_below(target)
            if not (indexed or failed or store.roots_below(target)):
                raise UmsearchError(f"nothing in the index at or below {target}")
            what = f"{describe_counts(indexed, failed)} at or below {target}"
            if not yes:
                if not sys.stdin.isatty():
                    raise UmsearchError(f"forget {what}? add --yes to confirm without a terminal")
                if not typer.confirm(f"forget {what}?", default=False):
                    raise typer.Exit(EXIT_ERROR)
            store.forget_below(target)
    present.out.print(f"forgot {what}", markup=False)
    if os.path.exists(target):
        present.err.print("(still on disk: indexing a folder above it adds them again)", markup=False)


@app.command()
@friendly_errors
def embed(
    text: Annotated[str | None, typer.Option("--text", help="Text to embed.")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Image to embed.")] = None,
    instruction: Annotated[str | None, typer.Option("--instruction", help="The model's task instruction.")] = None,
    model: ModelOption = None,
    min_image_tokens: MinTokensOption = None,
    max_image_tokens: MaxTokensOption = None,
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
    dim: DimOption = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            envvar="UMSEARCH_DB",
            help="Index whose service may answer (when it runs the same model) [default: in the user data folder].",
            show_default=False,
        ),
    ] = None,
    no_server: NoServerOption = False,
) -> None:
    """Print the vector of a text, an image, or both (a JSON list)."""
    from . import present
    from .families import family_of_spec
    from .runtime import resolve_budget
    from .session import check_image_path, embed_input

    if not (text and text.strip()) and image is None:
        raise UmsearchError("give --text, --image, or both")
    if image is not None:
        check_image_path(str(image))
    model_id = settings.normalize_model_spec(model or settings.default_model())
    budget = resolve_budget(None, quality, min_image_tokens, max_image_tokens, family_of_spec(model_id))
    runtime = RuntimeRequest(device, quant, dtype)
    image_path = absolute(image)

    def in_process() -> list[float]:
        embedder = load_model(model_id, budget, runtime, dim)
        return [float(x) for x in embed_input(embedder, text, image_path, instruction, settings.max_pixels(budget[1]))]

    if dim is not None:  # a service embeds at its index's length, not this one
        vector = in_process()
    else:
        route = make_route(db, runtime=runtime, no_server=no_server)
        vector = route.embed(text, image_path, instruction, model_id=model_id, budget=budget, local=in_process)
    present.print_json([round(x, 7) for x in vector])


@app.command()
@friendly_errors
def watch(
    paths: Annotated[list[Path], typer.Argument(help="Folders to keep indexed.", show_default=False)],
    exclude: ExcludeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    batch_size: BatchSizeOption = settings.DEFAULT_BATCH_SIZE,
    min_image_tokens: MinTokensOption = None,
    max_image_tokens: MaxTokensOption = None,
    quiet_period: Annotated[
        float,
        typer.Option(
            "--quiet-period",
            min=0.0,
            help="Seconds a file must stand still before it is read (unless closed after writing).",
        ),
    ] = 1.0,
    rescan_interval: Annotated[
        float | None,
        typer.Option(
            "--rescan-interval",
            min=1.0,
            help="Also compare all folders with the index every N seconds (network drives).",
        ),
    ] = None,
    polling: Annotated[
        bool, typer.Option("--polling", help="Poll the folders instead of using file system events.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per change applied.")] = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
    dim: DimOption = None,
    no_server: Annotated[
        bool,
        typer.Option("--no-server", help="Only watch: do not also answer queries (also UMSEARCH_SERVER=off)."),
    ] = False,
    on_battery: Annotated[
        str,
        typer.Option(
            "--on-battery",
            envvar="UMSEARCH_ON_BATTERY",
            help="pause: hold embedding while the machine runs on battery (queries are still answered); "
            "run: keep going.",
        ),
    ] = "pause",
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            envvar="UMSEARCH_THREADS",
            help="Cores the model may use [default: half of them, so the machine stays responsive].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Catch up, then keep the index in step as photos arrive, change, move and disappear (Ctrl-C stops).

    The watcher is the index's service too: query, similar, embed and tui are answered by this process, with
    the same model (one copy in memory); a query waits at most for the batch being embedded. It runs politely:
    low CPU and disk priority, half the cores, and no embedding on battery power (queries still answered)."""
    from . import present
    from .index import Indexer
    from .manners import ON_BATTERY_CHOICES, PowerGate, be_polite
    from .service.route import server_wanted
    from .session import Session
    from .watch import StopSignals, Watcher, WatchOptions, describe_changes
    from .watchstate import WatcherLock, acquire_waiting, busy_error

    # First of all: from here on SIGINT, SIGTERM and SIGHUP end the watcher cleanly (exit 0), at any moment.
    stopper = StopSignals()
    try:
        runtime = RuntimeRequest(device, quant, dtype)  # a typo fails now, not when the first photo arrives
        if on_battery not in ON_BATTERY_CHOICES:
            raise UmsearchError(f"unknown --on-battery '{on_battery}' (expected {' or '.join(ON_BATTERY_CHOICES)})")
        manners = be_polite(threads)  # before torch loads, so its thread pools start capped

        def power_changed(message: str) -> None:
            present.err.print(message, markup=False)
            if watcher.lock is not None:
                resumed = "catching up" if not watcher.caught_up.is_set() else "indexing new photos"
                watcher.lock.report("paused on battery" if power.paused else resumed)

        power = PowerGate(on_battery, on_change=power_changed)
        with open_store(db, create=True) as store:
            model_id, budget = index_settings(store, model, min_image_tokens, max_image_tokens, quality, runtime)
            family = model_family(store, model_id)
            length = vector_length(store, family, dim)

            def first_model():
                if watcher.lock is not None:
                    watcher.lock.report(f"loading model {model_id}")
                loaded = load_model(model_id, budget, runtime, length)
                if watcher.lock is not None:
                    watcher.lock.report("catching up" if not watcher.caught_up.is_set() else "indexing new photos")
                return loaded

            # One session for the watcher's indexer and the queries it answers: one model, taking turns at its gate.
            session = Session(
                open_store(store.path, create=False),
                model=model_id,
                runtime=runtime,
                embedder_factory=lambda *_, **__: first_model(),
            )
            session.budget = budget  # the watcher's (a new index may be given --min/--max-image-tokens)
            host = None
            try:
                indexer = Indexer(
                    store,
                    session.embedder,
                    max_pixels=max_pixels(budget),
                    batch_size=batch_size,
                    image_budget=budget,
                    model_turn=session.gate.batch,
                    power=power,
                    family=family,
                )
                options = WatchOptions(
                    excludes=tuple(exclude or ()),
                    quiet_period=quiet_period,
                    rescan_interval=rescan_interval,
                    polling=polling,
                )

                def show(round_) -> None:
                    if as_json:
                        present.print_json(
                            {
                                **round_.summary.counters(),
                                "deferred": round_.deferred,
                                "seconds": round(round_.seconds, 3),
                            }
                        )
                        for path, reason in round_.summary.failures:
                            present.warn(f"{present.display_path(path)}: {reason}")
                    else:
                        for line in describe_changes(round_, present.display_path):
                            present.err.print(line, markup=False)

                watcher = Watcher(indexer, [str(p) for p in paths], options, on_round=show, on_message=present.warn)
                stopper.attach(watcher)
                lock = WatcherLock(store.path, watcher.roots)
                say = functools.partial(present.err.print, markup=False)
                other = acquire_waiting(lock, say, should_stop=stopper.requested.is_set)  # an index run goes first
                if other is not None:
                    raise busy_error(other)
                try:
                    if lock.held:
                        watcher.lock = lock
                        if server_wanted(no_server):
                            from .service.server import host_for_watcher

                            host = host_for_watcher(session, watcher.request_stop, warn=present.warn)
                        present.err.print(
                            f"watching {', '.join(watcher.roots)} (Ctrl-C stops; {manners.describe()}; "
                            f"on battery: {on_battery})",
                            markup=False,
                        )
                        watcher.run()
                finally:
                    lock.release()
            finally:
                if host is not None:
                    host.close()
                session.close()
    except KeyboardInterrupt:
        if not stopper.requested.is_set():
            raise
    finally:
        stopper.restore()
    present.err.print("stopped", markup=False)
    # Everything is committed and closed. Tearing down an interpreter that holds torch and the model can take
    # seconds on a busy machine, and a service manager expects a prompt exit after SIGTERM: skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
@friendly_errors
def serve(
    db: DbOption = None,
    model: ModelOption = None,
    idle_timeout: IdleTimeoutOption = None,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
    rerank_model: RerankModelOption = None,
) -> None:
    """Run the index's resident service in the foreground (for service managers; queries start one themselves).

    It keeps the index open and the model loaded (at the first query that needs it) and answers query, similar,
    embed and tui on a Unix socket beside the index, until SIGTERM, 'umsearch server stop' or the idle timeout."""
    from .manners import be_polite
    from .service.route import idle_timeout as chosen_idle_timeout
    from .service.server import serve as run_service

    runtime = RuntimeRequest(device, quant, dtype)
    # A background process: the user's foreground work goes first. Every core stays available, though: what
    # the service does (a query) is something the user is waiting for.
    be_polite(cap_threads=False)
    run_service(
        db or settings.default_db_path(),
        runtime=runtime,
        model=model,
        quality=quality,
        idle_timeout=chosen_idle_timeout(idle_timeout),
        rerank_model=rerank_model,
    )
    # Tearing down an interpreter that holds torch and the model can take seconds: the service is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


server_app = App(
    help="See or stop the resident service of an index (started by query, similar, embed, tui or serve).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@server_app.command("status")
@friendly_errors
def server_status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Whether a service runs for the index: pid, model, device, dtype, uptime, requests served, memory."""
    from . import present
    from .service.client import find_service
    from .service.paths import service_paths

    paths = service_paths(db or settings.default_db_path())
    client = find_service(paths)
    if client is None:
        if as_json:
            present.print_json({"running": False, "index": str(paths.db)})
        else:
            present.out.print(f"no service runs for index {paths.db}", markup=False)
        return
    report = {"running": True, **client.status()}
    if as_json:
        present.print_json(report)
        return
    idle = report["idle_timeout_s"]
    if report["watching"]:
        lifetime = "runs as long as its watcher (umsearch watch)"
    elif idle:
        lifetime = f"stops after {_duration(idle)} without a request (idle {_duration(report['idle_s'])})"
    else:
        lifetime = "never stops on its own"
    rss, peak = report["rss_bytes"], report["peak_rss_bytes"]
    lines = [
        ("service", f"running (pid {report['pid']}), umsearch {report['version']}, up {_duration(report['uptime_s'])}"),
        ("requests", f"{report['requests']} served, {report['in_flight']} in progress"),
        ("index", report["index"]),
        ("model", f"{report['model']} ({'loaded' if report['model_loaded'] else 'loaded at the first query'})"),
        ("runtime", f"{report['device']}, {report['dtype']}, quantization {report['quant']}"),
        (
            "memory",
            f"{present.human_bytes(rss) if rss else '?'} (peak {present.human_bytes(peak) if peak else '?'})",
        ),
        ("lifetime", lifetime),
        ("socket", report["socket"] or f"loopback TCP ({report['transport']})"),
        ("log", report["log"]),
    ]
    if report.get("web"):
        lines.append(("gallery", report["web"]["url"].split("?")[0]))
    for name, value in lines:
        present.out.print(f"{name:<9} {value}", markup=False)


@server_app.command("stop")
@friendly_errors
def server_stop(db: DbOption = None) -> None:
    """Stop the index's service (one that a watcher runs stops with its watch)."""
    from . import present
    from .service.client import find_service, remove_stale
    from .service.paths import service_paths

    paths = service_paths(db or settings.default_db_path())
    client = find_service(paths)
    if client is None:
        remove_stale(paths)
        present.out.print(f"no service runs for index {paths.db}", markup=False)
        return
    client.stop()
    present.out.print(f"stopped the umsearch service (pid {client.pid})")


model_app = App(help="Download the GME model ahead of use, or see what is downloaded.", no_args_is_help=True)
app.add_typer(model_app, name="model")
ModelIdArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL",
        help=f"Hugging Face id or local folder [default: UMSEARCH_MODEL if set, else {settings.DEFAULT_MODEL}].",
        show_default=False,
    ),
]


def _print_model_info(info, as_json: bool) -> None:
    from . import present

    if as_json:
        present.print_json(info.as_dict())
        return
    present.out.print(f"model     {info.spec}", markup=False)
    if info.path:
        present.out.print(f"path      {info.path}", markup=False)
    if info.revision:
        present.out.print(f"revision  {info.revision}")
    if info.size_bytes:
        present.out.print(f"size      {present.human_bytes(info.size_bytes)}")
    state = "ready" if info.downloaded else (info.problem or "not downloaded")
    present.out.print(f"state     {state}", markup=False)
    if info.source == "hub":
        present.out.print(f"cache     {info.cache_dir} (from {info.endpoint})", markup=False)


@model_app.command("download")
@friendly_errors
def model_download(model_id: ModelIdArgument = None, as_json: JsonOption = False) -> None:
    """Download a model (safetensors only) into the Hugging Face cache, with progress."""
    from .hub import download_model

    _print_model_info(download_model(model_id or settings.default_model()), as_json)


@model_app.command("info")
@friendly_errors
def model_info_command(model_id: ModelIdArgument = None, as_json: JsonOption = False) -> None:
    """Where a model is cached, its size and revision, or that it is not downloaded (never uses the network)."""
    from .hub import model_info

    _print_model_info(model_info(model_id or settings.default_model()), as_json)


@app.command()
@friendly_errors
def similar(
    photo: Annotated[Path, typer.Argument(help="A photo: indexed (its stored vector is used) or any image file.")],
    limit: LimitOption = settings.DEFAULT_LIMIT,
    db: DbOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    paths_only: PathsOption = False,
    folder: InOption = None,
    after: AfterOption = None,
    before: BeforeOption = None,
    types: TypeOption = None,
    camera: CameraOption = None,
    place: PlaceOption = None,
    kind: KindOption = None,
    min_score: MinScoreOption = None,
    sort: SortOption = None,
    preview: PreviewOption = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    no_server: NoServerOption = False,
) -> None:
    """Photos that look like PHOTO (the photo itself is left out)."""
    from .querylang import SORTS, SearchRequest
    from .session import SearchQuery

    if sort is not None and sort not in SORTS:
        raise UmsearchError(f"--sort {sort}: use score or date")
    filters = cli_filters(folder, after, before, types, camera, place, kind)
    request = SearchRequest(filters=filters, min_score=min_score, sort=sort or "score")
    route = make_route(db, model=model, runtime=RuntimeRequest(device, quant, dtype), no_server=no_server)
    result = route.similar(str(absolute(photo)), SearchQuery(request, limit=limit))
    show_result(result, as_json=as_json, paths_only=paths_only, preview=preview)


@app.command()
@friendly_errors
def tui(
    db: DbOption = None,
    model: ModelOption = None,
    images: Annotated[
        str, typer.Option("--images", help="How to draw photos: auto, tgp, sixel, halfcell or unicode.")
    ] = "auto",
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    rerank_model: RerankModelOption = None,
    no_server: NoServerOption = False,
) -> None:
    """Search and browse photos interactively in the terminal (ctrl+r: rerank the best matches)."""
    from .tui.widgets.images import IMAGE_MODES  # no Textual import yet

    if images not in IMAGE_MODES:
        raise UmsearchError(f"--images must be one of {', '.join(IMAGE_MODES)}, not '{images}'")
    runtime = RuntimeRequest(device, quant, dtype)  # a typo fails here, not inside the app
    from .service.route import server_wanted
    from .tui.app import make_app  # Textual is imported only for this command
    from .tui.service import background_work_running

    tui_app = make_app(
        db, model, image_mode=images, runtime=runtime, server=server_wanted(no_server), rerank_model=rerank_model
    )
    tui_app.run()
    if background_work_running():
        # A model load or embedding is still running on a daemon thread: quitting must not wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(tui_app.return_code or 0)


@app.command()
@friendly_errors
def dupes(
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Cosine similarity at or above which photos group.")
    ] = 0.95,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Groups of near-duplicate photos (bursts, edits, resized or re-encoded copies), largest first."""
    from .dupes import find_duplicates
    from .searchview import print_duplicate_groups

    with open_store(db, create=False) as store:
        groups = find_duplicates(store, threshold)
    print_duplicate_groups(groups, as_json=as_json)


@app.command()
@friendly_errors
def web(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")] = 8571,
    no_open: Annotated[bool, typer.Option("--no-open", help="Print the URL but do not open a browser.")] = False,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback needs --allow-remote.")
    ] = "127.0.0.1",
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a --host that other computers can reach.")
    ] = False,
    db: DbOption = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    rerank_model: RerankModelOption = None,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server", help="Serve the gallery from this process until Ctrl-C, not from the background service."
        ),
    ] = False,
) -> None:
    """Search and browse your photos in the browser: a private gallery on this computer (prints its URL).

    The index's background service serves it (started if needed), so this command returns at once; the
    gallery stops with the service ('umsearch server stop', or its idle timeout). Its Rerank switch (under
    Filters) rescores the best matches with the reranker."""
    from .web.server import check_host

    check_host(host, allow_remote)
    runtime = RuntimeRequest(device, quant, dtype)
    path = db or settings.default_db_path()
    if not path.exists():
        raise UmsearchError(f"no index at {path}: run 'umsearch index FOLDER' first")
    route = make_route(path, model=model, runtime=runtime, no_server=no_server, rerank_model=rerank_model)
    client = route.connect(start=True) if route.server else None
    if client is None:
        _serve_gallery_here(path, model, runtime, rerank_model, host, port, open_browser=not no_open)
        return
    shown = client.start_web(host=host, port=port, allow_remote=allow_remote)
    print(shown["url"], flush=True)
    sys.stderr.write(
        f"the gallery is served by the umsearch service (pid {client.pid}); 'umsearch server stop' ends it\n"
    )
    if not no_open:
        _open_browser(shown["url"])


def _serve_gallery_here(
    db: Path,
    model: str | None,
    runtime: RuntimeRequest,
    rerank_model: str | None,
    host: str,
    port: int,
    *,
    open_browser: bool,
) -> None:
    from .web.server import GalleryServer

    with open_session(db, model=model, runtime=runtime, rerank_model=rerank_model) as session:
        server = GalleryServer(session, host=host, port=port)
        print(server.url, flush=True)
        sys.stderr.write("serving the gallery from this process; Ctrl-C stops it\n")
        if open_browser:
            _open_browser(server.url)
        server.serve()


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception:
        pass  # no browser here (SSH, a server): the printed URL is enough


@app.command()
@friendly_errors
def doctor(
    db: DbOption = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    as_json: JsonOption = False,
    search: Annotated[
        bool,
        typer.Option(
            "--search",
            help="Also measure the fast search on your own photos: recall@20 against an exact scan of every "
            "vector (reads the whole index: seconds per 100,000 photos).",
        ),
    ] = False,
) -> None:
    """Check this machine: Python, PyTorch, GPU, bitsandbytes, SQLite, model and index, with fixes."""
    from . import present
    from .doctor import NOTE, OK, diagnose

    db_path = db or settings.default_db_path()
    model_id = model or index_model(db_path) or settings.default_model()
    report = diagnose(model_id, db_path, device, quant, dtype, search=search)
    if as_json:
        present.print_json(report.as_dict())
    else:
        marks = {OK: "[green]ok[/]     ", NOTE: "[cyan]note[/]   "}
        for check in report.checks:
            present.out.print(marks.get(check.status, "[bold red]problem[/]") + f" {check.name:<13}", end="")
            present.out.print(check.detail, markup=False)
            if check.fix:
                present.out.print(f"{'':<22}fix: {check.fix}", markup=False)
        problems = len(report.problems)
        present.out.print("no problems found" if not problems else f"{problems} problem(s) found")
    if report.problems:
        raise typer.Exit(EXIT_ERROR)


# Options whose value may be left out on the command line: "--rerank" alone means "--rerank 30".
_OPTIONAL_VALUES = {"--rerank": str(settings.DEFAULT_RERANK_TOP)}


def with_optional_values(argv: list[str]) -> list[str]:
    """`argv` with the default filled in after an optional-value option given without a number (click has
    such options, typer does not pass them through); nothing after a lone "--" is touched."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--":
            return out + argv[i + 1 :]
        if arg in _OPTIONAL_VALUES and (i + 1 == len(argv) or not argv[i + 1].isdigit()):
            out.append(_OPTIONAL_VALUES[arg])
    return out


def main() -> None:
    app(args=with_optional_values(sys.argv[1:]))


if __name__ == "__main__":
    main()

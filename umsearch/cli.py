"""The `umsearch` command: a thin layer that turns arguments into library calls and results into text."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer

from . import config
from .errors import UmsearchError

if TYPE_CHECKING:
    from .embed import GmeEmbedder
    from .store import Store

app = typer.Typer(
    name="umsearch",
    help="Local, private, semantic photo search: find any photo by describing it, by showing another, or both.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable)

EXIT_ERROR = 1
EXIT_PARTIAL = 3  # the command finished, but some files could not be indexed
EXIT_INTERRUPTED = 130

DbOption = Annotated[
    Optional[Path],
    typer.Option("--db", envvar="UMSEARCH_DB", help="Index file [default: in the user data folder].", show_default=False),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        envvar="UMSEARCH_MODEL",
        help=f"Hugging Face id or local folder of a GME model [default: the index's model, else {config.DEFAULT_MODEL}].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MinTokensOption = Annotated[
    Optional[int], typer.Option("--min-image-tokens", min=4, help="Smallest visual token budget per image [default: 256].")
]
MaxTokensOption = Annotated[
    Optional[int], typer.Option("--max-image-tokens", min=4, help="Largest visual token budget per image [default: 1280].")
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device", envvar="UMSEARCH_DEVICE", help="auto, cpu, cuda or mps (auto: CUDA, then Apple MPS, then CPU).",
    ),
]
QuantOption = Annotated[
    str,
    typer.Option(
        "--quant", envvar="UMSEARCH_QUANT",
        help="auto, nf4, int8 or none (auto: 4-bit NF4 on CUDA, full precision elsewhere).",
    ),
]
DtypeOption = Annotated[
    str,
    typer.Option(
        "--dtype", envvar="UMSEARCH_DTYPE",
        help="auto, float32, bfloat16 or float16 compute (auto: bf16/fp16 on GPUs, float32 on CPUs).",
    ),
]
QualityOption = Annotated[
    Optional[str],
    typer.Option(
        "--quality",
        help="Image detail: fast (128-256 visual tokens), balanced (256-576) or best (256-1280) "
        "[default: the index's, else best].",
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
            present.error(f"unexpected {type(exc).__name__}: {exc} (set UMSEARCH_DEBUG=1 to see the traceback)")
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


# ---- shared plumbing ---------------------------------------------------------------------------
def open_store(db: Path | None, *, create: bool) -> "Store":
    from .store import Store

    return Store.open(db or config.default_db_path(), create=create)


def chosen_model(store: "Store", model: str | None) -> str:
    """An explicit --model must match the index; without one, the index's own model is used."""
    settings = store.settings()
    if model is None:
        return settings.model_id if settings else config.default_model()
    model_id = config.normalize_model_spec(model)
    store.check_model(model_id)
    return model_id


def token_budget(
    store: "Store", min_tokens: int | None, max_tokens: int | None, quality: str | None = None
) -> tuple[int, int]:
    from .runtime import resolve_budget

    return resolve_budget(store.settings(), quality, min_tokens, max_tokens)


def load_model(
    model_id: str, budget: tuple[int, int], device: str = "auto", quant: str = "auto", dtype: str = "auto"
) -> "GmeEmbedder":
    """The one way CLI commands (and the TUI) load the model: device/quant policy, then a spinner."""
    from . import present
    from .embed import load_embedder
    from .runtime import RuntimeRequest

    request = RuntimeRequest(device, quant, dtype)  # validates before the slow part
    download_on_first_use(model_id)
    with present.err.status(f"loading model {model_id} …"):
        return load_embedder(
            model_id, device=request.device, quant=request.quant, dtype=request.dtype, min_image_tokens=budget[0],
            max_image_tokens=budget[1],
        )


def download_on_first_use(model_id: str) -> None:
    """Fetch a missing hub model before the loading spinner starts, so huggingface_hub's progress bars show."""
    from . import present
    from .hub import download_model, model_info
    from .modelfiles import _hub_offline

    if Path(model_id).expanduser().is_dir() or model_info(model_id).downloaded:
        return
    if not _hub_offline():  # offline, the failure below is the only line
        present.err.print(f"downloading model {model_id} (first use; 'umsearch model info' shows where it goes) …")
    download_model(model_id)


def max_pixels(budget: tuple[int, int]) -> int:
    return budget[1] * 28 * 28


# ---- commands ----------------------------------------------------------------------------------
@app.command()
@friendly_errors
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders (or single photos) to index.", show_default=False)],
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", help="Skip paths matching this glob (repeatable).")
    ] = None,
    db: DbOption = None,
    model: ModelOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per model call.")] = config.DEFAULT_BATCH_SIZE,
    min_image_tokens: MinTokensOption = None,
    max_image_tokens: MaxTokensOption = None,
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
) -> None:
    """Add new photos, re-embed changed ones, follow moves and drop deleted ones."""
    from . import present
    from .index import Indexer
    from .runtime import RuntimeRequest

    RuntimeRequest(device, quant, dtype)  # a typo fails now, not after the scan
    with open_store(db, create=True) as store:
        model_id = chosen_model(store, model)
        budget = token_budget(store, min_image_tokens, max_image_tokens, quality)
        from .runtime import check_index_budget

        check_index_budget(store.settings(), budget, str(store.path))
        indexer = Indexer(
            store,
            lambda: load_model(model_id, budget, device, quant, dtype),
            max_pixels=max_pixels(budget),
            batch_size=batch_size,
            progress=present.BarProgress(),
            image_budget=budget,
        )
        summary = indexer.index(
            [str(p) for p in paths],
            exclude or (),
            on_scan_error=lambda path, reason: present.warn(f"{path}: {reason}"),
        )
        present.print_summary(summary, as_json=as_json)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
@friendly_errors
def query(
    text: Annotated[Optional[str], typer.Argument(help="What to look for, in words.", show_default=False)] = None,
    image: Annotated[
        Optional[Path], typer.Option("--image", "-i", help="Find photos like this one (with TEXT: both at once).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=4096, help="How many results.")] = config.DEFAULT_LIMIT,
    instruction: Annotated[
        Optional[str], typer.Option("--instruction", help="Override GME's task instruction for this query.")
    ] = None,
    db: DbOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Print only paths, one per line.")] = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
) -> None:
    """Search the index by text, by image (--image), or both fused into one query."""
    from . import present
    from .search import Query, query_vector, rank

    request = Query(text=text, image=str(image) if image else None, instruction=instruction)
    with open_store(db, create=False) as store:
        model_id = chosen_model(store, model)
        if store.counts().indexed == 0:
            raise UmsearchError(f"index {store.path} has no photos yet: run 'umsearch index FOLDER' first")
        if request.image and not Path(request.image).is_file():
            raise UmsearchError(f"{request.image}: no such file")
        from .runtime import query_embedder

        download_on_first_use(model_id)
        with present.err.status(f"loading model {model_id} …"):
            embedder, mismatch = query_embedder(
                store, model, device=device, quant=quant, quality=quality, has_image=request.image is not None,
                dtype=dtype,
            )
        if mismatch:
            present.warn(mismatch)
        budget = (embedder.info.min_image_tokens, embedder.info.max_image_tokens)
        vector = query_vector(embedder, request, max_pixels(budget))
        hits = rank(store, vector, limit)
    present.print_hits(hits, as_json=as_json, paths_only=paths_only)


@app.command()
@friendly_errors
def status(
    db: DbOption = None,
    as_json: JsonOption = False,
    failures: Annotated[int, typer.Option("--failures", min=0, help="How many failed files to list.")] = 20,
) -> None:
    """What is indexed: counts, model, dimension, database path and size, failed files."""
    from . import present

    path = db or config.default_db_path()
    if not path.exists():
        report = {"db": str(path), "exists": False, "indexed": 0, "failed": 0, "model": None, "dim": None}
        if as_json:
            present.print_json(report)
        else:
            present.out.print(f"no index yet at {path}: run 'umsearch index FOLDER' to create it")
        return
    with open_store(path, create=False) as store:
        counts = store.counts()
        settings = store.settings()
        failed_rows = store.failures(limit=failures)
        from .runtime import recorded_runtime

        runtime = recorded_runtime(store)
        report = {
            "db": str(store.path),
            "exists": True,
            "db_bytes": store.size_bytes(),
            "indexed": counts.indexed,
            "failed": counts.failed,
            "model": settings.model_id if settings else None,
            "dim": settings.dim if settings else None,
            "image_tokens": [settings.min_image_tokens, settings.max_image_tokens] if settings else None,
            "quality": runtime.quality,
            "device": runtime.device,
            "dtype": runtime.dtype,
            "quant": runtime.quant,
            "failures": [{"path": row.path, "reason": row.error} for row in failed_rows],
        }
    if as_json:
        present.print_json(report)
        return
    present.out.print(f"index     {report['db']} ({present.human_bytes(report['db_bytes'])})")
    present.out.print(f"photos    {counts.indexed} indexed, {counts.failed} failed")
    if settings:
        present.out.print(f"model     {settings.model_id} ({settings.dim}-d)")
        present.out.print(f"images    {settings.min_image_tokens}–{settings.max_image_tokens} visual tokens")
        if runtime.quality:
            present.out.print(f"quality   {runtime.quality}")
        if runtime.device:
            present.out.print(f"runtime   {runtime.device}, {runtime.dtype}, quantization {runtime.quant}")
    for row in failed_rows:
        present.out.print(f"failed    {row.path}: {row.error}", markup=False)
    if counts.failed > len(failed_rows):
        present.out.print(f"          … and {counts.failed - len(failed_rows)} more (--failures N)")


@app.command()
@friendly_errors
def embed(
    text: Annotated[Optional[str], typer.Option("--text", help="Text to embed.")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", help="Image to embed.")] = None,
    instruction: Annotated[Optional[str], typer.Option("--instruction", help="GME task instruction.")] = None,
    model: ModelOption = None,
    min_image_tokens: MinTokensOption = None,
    max_image_tokens: MaxTokensOption = None,
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    quality: QualityOption = None,
) -> None:
    """Print the GME vector of a text, an image, or both (a JSON list)."""
    from . import present
    from .search import Query, query_vector

    request = Query(text=text, image=str(image) if image else None, instruction=instruction)
    from .runtime import resolve_budget

    budget = resolve_budget(None, quality, min_image_tokens, max_image_tokens)
    if request.image and not Path(request.image).is_file():
        raise UmsearchError(f"{request.image}: no such file")
    embedder = load_model(config.normalize_model_spec(model or config.default_model()), budget, device, quant, dtype)
    vector = query_vector(embedder, request, max_pixels(budget))
    present.print_json([round(float(x), 7) for x in vector])


model_app = typer.Typer(
    help="Download the GME model ahead of use, or see what is downloaded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(model_app, name="model")
ModelIdArgument = Annotated[
    Optional[str],
    typer.Argument(help=f"Hugging Face id or local folder [default: {config.DEFAULT_MODEL}].", show_default=False),
]


def _print_model_info(info) -> None:  # noqa: ANN001
    from . import present

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
    from . import present
    from .hub import download_model

    info = download_model(model_id or config.default_model())
    if as_json:
        present.print_json(info.as_dict())
    else:
        _print_model_info(info)


@model_app.command("info")
@friendly_errors
def model_info_command(model_id: ModelIdArgument = None, as_json: JsonOption = False) -> None:
    """Where a model is cached, its size and revision, or that it is not downloaded (never uses the network)."""
    from . import present
    from .hub import model_info

    info = model_info(model_id or config.default_model())
    if as_json:
        present.print_json(info.as_dict())
    else:
        _print_model_info(info)


@app.command()
@friendly_errors
def doctor(
    db: DbOption = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quant: QuantOption = "auto",
    dtype: DtypeOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Check this machine: Python, PyTorch, GPU, bitsandbytes, SQLite, model and index, with fixes."""
    from . import present
    from .doctor import NOTE, OK, diagnose

    report = diagnose(model or config.default_model(), db or config.default_db_path(), device, quant, dtype)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()

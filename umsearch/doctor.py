"""`umsearch doctor`: what this machine can run, in plain words, with a fix next to every problem.

Every check catches its own failures, so a broken or missing piece (no torch, a CUDA driver mismatch, an
unreadable index) is reported rather than crashing the report.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OK, NOTE, PROBLEM = "ok", "note", "problem"


@dataclass
class Check:
    name: str
    status: str  # ok, note (worth knowing, nothing to fix) or problem (with a fix)
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)  # the device/dtype/quant umsearch would use

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == PROBLEM]

    def as_dict(self) -> dict:
        return {"checks": [c.as_dict() for c in self.checks], "runtime": self.runtime, "problems": len(self.problems)}


def diagnose(
    model: str,
    db_path: Path,
    device: str = "auto",
    quant: str = "auto",
    dtype: str = "auto",
    *,
    search: bool = False,
) -> Report:
    report = Report()
    add = report.checks.append
    add(Check("python", OK, f"Python {platform.python_version()} ({sys.executable})"))
    torch = _guard(add, "torch", _check_torch)
    if torch is not None:
        _guard(add, "gpu", lambda a: _check_gpu(a, torch))
        _guard(add, "cpu", lambda a: _check_cpu(a, torch))
        _guard(add, "bitsandbytes", lambda a: _check_bitsandbytes(a, torch))
        _guard(add, "runtime", lambda a: _check_runtime(a, report, device, quant, dtype))
    _guard(add, "sqlite", _check_sqlite)
    _guard(add, "formats", _check_formats)
    _guard(add, "model", lambda a: _check_model(a, model))
    _guard(add, "index", lambda a: _check_index(a, db_path))
    if search:
        _guard(add, "search", lambda a: _check_search(a, db_path))
    return report


def _guard(add: Callable[[Check], None], name: str, check: Callable[[Callable[[Check], None]], Any]) -> Any:
    try:
        return check(add)
    except Exception as exc:  # a check must never take the whole report down
        add(
            Check(
                name,
                PROBLEM,
                f"the check itself failed: {type(exc).__name__}: {exc}",
                "report this at the umsearch issue tracker with the output of 'umsearch doctor --json'",
            )
        )
        return None


def _check_torch(add: Callable[[Check], None]) -> Any:
    try:
        import torch
    except ImportError as exc:
        add(
            Check(
                "torch",
                PROBLEM,
                f"PyTorch is not installed or does not import ({exc})",
                "pip install torch (see pytorch.org for the CUDA build that matches your driver)",
            )
        )
        return None
    cuda = torch.version.cuda
    build = f"CUDA {cuda} build" if cuda else "CPU-only build"
    add(Check("torch", OK, f"PyTorch {torch.__version__} ({build}), {torch.get_num_threads()} CPU threads"))
    return torch


def _check_gpu(add: Callable[[Check], None], torch: Any) -> None:
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            major, minor = torch.cuda.get_device_capability(i)
            bf16 = "bf16" if torch.cuda.is_bf16_supported() else "no bf16 (fp16 compute)"
            detail = (
                f"GPU {i}: {torch.cuda.get_device_name(i)}, {_gib(free)} free of {_gib(total)}, "
                f"compute capability {major}.{minor}, {bf16}"
            )
            status, fix = OK, None
            if free < 3 * 2**30:
                status, fix = PROBLEM, "close other programs using the GPU, or use --quality fast / --device cpu"
                detail += " (GME-2B in 4 bits wants about 3 GB free)"
            add(Check("gpu", status, detail, fix))
        return
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        add(Check("gpu", OK, "Apple GPU (MPS) available: the model runs there in float16"))
        return
    if torch.version.cuda is None and platform.system() != "Darwin":
        fix = "for an NVIDIA GPU, install a CUDA build of PyTorch (pytorch.org); without one, indexing runs on the CPU"
    else:
        fix = None
    add(
        Check(
            "gpu",
            NOTE,
            "no GPU available to PyTorch: the model runs on the CPU (slow for large libraries; try --quality fast)",
            fix,
        )
    )


def _check_cpu(add: Callable[[Check], None], torch: Any) -> None:
    """What this CPU gets: its vector units, the CPU path umsearch picks, and a decoder layer timed now in
    float32, bfloat16 and int8 (a tenth of a second each), so the speed-ups are this machine's own."""
    from .embed import cpu_has_native_bf16
    from .weights import int8_available

    features = cpu_features(torch)
    path = cpu_path_description(cpu_has_native_bf16(), int8_available())
    speeds = layer_speedups(torch)
    measured = ", ".join(f"{name} {factor:.1f}x" for name, factor in speeds.items() if name != "float32")
    add(
        Check(
            "cpu",
            OK,
            f"CPU: {os.cpu_count()} logical cores, {features}; on the CPU umsearch runs {path}"
            + (f" (a decoder layer here, against float32: {measured})" if measured else ""),
        )
    )


def cpu_features(torch: Any) -> str:
    """The vector instructions PyTorch found, in words."""
    probe = getattr(torch, "cpu", None)

    def has(name: str) -> bool:
        return bool(getattr(probe, name, lambda: False)())

    extras = [
        label
        for name, label in (
            ("_is_avx512_bf16_supported", "BF16"),
            ("_is_amx_tile_supported", "AMX"),
            ("_is_vnni_supported", "VNNI"),
        )
        if has(name)
    ]
    base = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "unknown"
    return base + (f" with {', '.join(extras)}" if extras else "")


def cpu_path_description(native_bf16: bool, int8: bool) -> str:
    """The CPU path `choose_runtime` takes by default, in words."""
    if native_bf16:
        return "the model in bfloat16, natively"
    if int8:
        return "the text decoder in int8 (PyTorch dynamic quantisation) and the vision tower in float32"
    return "the model in float32"


def layer_speedups(torch: Any, rows: int = 64, rounds: int = 5) -> dict[str, float]:
    """One GME-2B decoder MLP projection (1536 -> 8960) on `rows` tokens: speed against float32.

    The variants take turns, `rounds` times, and each keeps its fastest time, so a busy moment on the machine
    does not favour one of them."""
    import time
    import warnings

    from .weights import int8_available, quantize_int8

    with torch.inference_mode():
        layer = torch.nn.Linear(1536, 8960)
        x = torch.randn(rows, 1536)
        half, xh = torch.nn.Linear(1536, 8960).to(torch.bfloat16), x.to(torch.bfloat16)
        runs: dict[str, Callable[[], Any]] = {"float32": lambda: layer(x), "bfloat16": lambda: half(xh)}
        if int8_available():
            holder = torch.nn.Sequential(torch.nn.Linear(1536, 8960))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_int8(holder)
            runs["int8"] = lambda: holder(x)
        best = dict.fromkeys(runs, float("inf"))
        for run in runs.values():
            run()  # warm-up: kernels, packing
        for _ in range(rounds):
            for name, run in runs.items():
                started = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - started)
    return {name: best["float32"] / seconds for name, seconds in best.items()}


def _check_bitsandbytes(add: Callable[[Check], None], torch: Any) -> None:
    from .embed import quiet_bitsandbytes

    quiet_bitsandbytes()
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as bnbf
    except Exception as exc:  # ImportError, or a broken CUDA setup raising at import
        on_cuda = torch.cuda.is_available()
        add(
            Check(
                "bitsandbytes",
                PROBLEM if on_cuda else NOTE,
                f"bitsandbytes is not usable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}):"
                " 4-bit models are unavailable",
                "pip install bitsandbytes accelerate" if on_cuda else None,
            )
        )
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # A tiny real 4-bit operation: quantise, then a 4-bit matmul, compared with full precision.
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 64, generator=generator).to(device)
    inputs = torch.randn(4, 64, generator=generator).to(device)
    packed, state = bnbf.quantize_4bit(weight, quant_type="nf4")
    restored = bnbf.dequantize_4bit(packed, state, quant_type="nf4")
    product = bnb.matmul_4bit(inputs, packed.t(), quant_state=state)
    expected = inputs @ restored.t()
    error = float((product - expected).abs().max() / expected.abs().max())
    quant_error = float((restored - weight).abs().mean() / weight.abs().mean())
    if error > 1e-2 or quant_error > 0.2:
        add(
            Check(
                "bitsandbytes",
                PROBLEM,
                f"bitsandbytes {bnb.__version__} gives wrong 4-bit results on {device} (error {error:.3g})",
                "reinstall bitsandbytes (pip install -U bitsandbytes), or use --quant none",
            )
        )
        return
    add(Check("bitsandbytes", OK, f"bitsandbytes {bnb.__version__}: a 4-bit NF4 matmul works on {device}"))


def _check_runtime(add: Callable[[Check], None], report: Report, device: str, quant: str, wanted: str) -> None:
    from .embed import choose_runtime, cpu_has_native_bf16
    from .errors import UmsearchError

    try:
        chosen_device, dtype, chosen_quant = choose_runtime(device, quant, wanted)
    except UmsearchError as exc:
        add(Check("runtime", PROBLEM, str(exc), "use --device auto --quant auto, or pick what this machine has"))
        return
    report.runtime = {"device": chosen_device, "dtype": dtype, "quant": chosen_quant}
    quant_text = {
        "none": "full weights",
        "nf4": "4-bit NF4 weights",
        "int8": "8-bit weights",
        "int8-dynamic": "an int8 text decoder (PyTorch dynamic quantisation)",
    }[chosen_quant]
    add(
        Check(
            "runtime",
            OK,
            f"umsearch will run the model on {chosen_device} in {dtype} with {quant_text} "
            f"(--device {device} --quant {quant} --dtype {wanted})",
        )
    )
    if chosen_device == "cpu" and dtype == "float32" and cpu_has_native_bf16():
        add(
            Check(
                "cpu-bf16",
                NOTE,
                "this CPU computes bfloat16 natively (AVX512-BF16 or AMX): --dtype bfloat16 "
                "is about twice as fast, with vectors slightly different from float32 ones",
            )
        )


def _check_sqlite(add: Callable[[Check], None]) -> None:
    from .store import sqlite_route, sqlite_vec_path
    from .store.sql import scalar

    route = sqlite_route()
    try:
        import apsw

        db = apsw.Connection(":memory:")
        db.enable_load_extension(True)
        db.load_extension(sqlite_vec_path())
        version = scalar(db, "SELECT vec_version()")
        db.close()
    except Exception as exc:
        add(Check("sqlite", PROBLEM, f"{route}; sqlite-vec does not load: {exc}", "pip install -U sqlite-vec apsw"))
        return
    add(Check("sqlite", OK, f"{route}; sqlite-vec {version} loads"))


# What each optional package of the `all` extra lets umsearch read; without it those files are listed as failed.
OPTIONAL_FORMATS = (
    ("av", "av", "videos"),
    ("pypdfium2", "pypdfium2", "PDF pages"),
    ("pillow_heif", "pillow-heif", "HEIC/HEIF photos"),
    ("rawpy", "rawpy", "camera RAW files"),
    ("reverse_geocoder", "reverse-geocoder", "place names from GPS"),
)


def _check_formats(add: Callable[[Check], None]) -> None:
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    from .imageload import INSTALL_ALL

    present, absent = [], []
    for module, package, what in OPTIONAL_FORMATS:
        if find_spec(module) is None:
            absent.append(f"{what} ({package})")
            continue
        try:
            present.append(f"{what} ({package} {version(package)})")
        except PackageNotFoundError:
            present.append(f"{what} ({package})")
    reads = "JPEG, PNG, WebP, TIFF, GIF, BMP" + "".join(f", {p}" for p in present)
    if absent:
        add(Check("formats", NOTE, f"reads {reads}; not installed: {', '.join(absent)}", INSTALL_ALL))
    else:
        add(Check("formats", OK, f"reads {reads}"))


def _check_model(add: Callable[[Check], None], model: str) -> None:
    from .errors import ModelError
    from .hub import model_info
    from .present import human_bytes

    try:
        info = model_info(model)
    except ModelError as exc:
        add(Check("model", PROBLEM, str(exc), "pass --model with a hub id or a model folder"))
        return
    if info.downloaded:
        where = f"revision {info.revision[:12]}, " if info.revision else ""
        add(Check("model", OK, f"{model}: ready at {info.path} ({where}{human_bytes(info.size_bytes)})"))
    elif info.problem:
        add(Check("model", PROBLEM, info.problem, f"umsearch model download {model}"))
    else:
        add(
            Check(
                "model",
                PROBLEM,
                f"{model} is not downloaded (cache: {info.cache_dir})",
                f"umsearch model download {model}",
            )
        )


def _check_index(add: Callable[[Check], None], db_path: Path) -> None:
    from .errors import StoreError
    from .present import human_bytes
    from .store import Store

    if not db_path.exists():
        add(Check("index", NOTE, f"no index yet at {db_path}", "umsearch index FOLDER creates it"))
        return
    try:
        with Store.open(db_path, create=False) as store:
            counts = store.counts()
            settings = store.settings()
            size = store.size_bytes()
            runtime = (store.meta("device"), store.meta("dtype"), store.meta("quant"))
    except StoreError as exc:
        add(Check("index", PROBLEM, str(exc), "move the file away (or pass --db) and re-index"))
        return
    model = f", model {settings.model_id} ({settings.dim}-d)" if settings else ""
    made = f", made on {runtime[0]} {runtime[1]} quant {runtime[2]}" if runtime[0] else ""
    add(
        Check(
            "index",
            OK,
            f"{db_path} ({human_bytes(size)}): {counts.indexed} photos, {counts.failed} failed{model}{made}",
        )
    )


def _check_search(add: Callable[[Check], None], db_path: Path) -> None:
    from .errors import StoreError
    from .searchcheck import check_recall
    from .settings import rescore_shortlist
    from .store import Store

    if not db_path.exists():
        add(Check("search", NOTE, "no index to check yet", "umsearch index FOLDER creates it"))
        return
    try:
        with Store.open(db_path, create=False) as store:
            report = check_recall(store)
    except StoreError as exc:
        add(Check("search", PROBLEM, str(exc), "move the file away (or pass --db) and re-index"))
        return
    if report is None:
        add(Check("search", NOTE, "too few photos to measure the search's recall (21 or more needed)"))
        return
    detail = (
        f"recall@{report.k} of the fast search against an exact scan of all {report.photos} photos, with "
        f"{report.queries} of them as queries: mean {report.mean:.3f}, worst query {report.worst:.2f} "
        f"(mean cosine between photos {report.mean_cosine:.2f}; {report.seconds:.1f} s)"
    )
    if report.healthy:
        add(Check("search", OK, detail))
        return
    shortlist = rescore_shortlist()
    add(
        Check(
            "search",
            PROBLEM,
            detail + ": the fast search misses photos an exact one finds on this index's vectors",
            f"rescore more photos per search: UMSEARCH_SHORTLIST={shortlist * 4} (now {shortlist}), then run "
            "'umsearch doctor --search' again; please report the figures above at the umsearch issue tracker",
        )
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"

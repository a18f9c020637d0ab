"""CPU paths for GME side by side: float32, bfloat16, PyTorch dynamic int8, thread counts.

For each path (``QUANT:DTYPE[:THREADS]``) one child process loads the model through the real
``load_embedder`` and measures, in this order: load time and RSS; text queries one at a time (median wall
and CPU seconds, after a warm-up); then for each quality preset one or more 4:3 photos (seconds per photo,
wall and CPU); peak RSS. Every path embeds the same texts and photos, so the parent reports the cosine of
each vector against the first path's (the float32 reference): the mean and the worst over all inputs.

Each child takes the shared heavy-work lock (/tmp/umsearch-heavy.lock) for its whole run, so other
full-size model runs on a shared machine wait rather than distort the figures; the load average is
recorded before and after each path.

Example (the full-size 2B with random weights, float32 files as the real repo ships them):
    python -m umsearch.devmodel --size 2b --dtype float32 /work/models/gme-2b-f32
    python benchmarks/cpu_paths.py --model /work/models/gme-2b-f32 \\
        --paths none:float32,none:bfloat16,int8-dynamic:float32,int8-dynamic:bfloat16 --json cpu-paths.json
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from embed_throughput import TEXTS, machine_line, photo  # noqa: E402

from umsearch.settings import QUALITY_PRESETS  # noqa: E402  (cheap: no torch)

LOCK = "/tmp/umsearch-heavy.lock"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (e.g. /work/models/gme-2b-f32)")
    parser.add_argument(
        "--paths",
        default="none:float32,none:bfloat16,int8-dynamic:float32",
        help="comma list of QUANT:DTYPE[:THREADS]; the first is the reference for cosines",
    )
    parser.add_argument("--qualities", default="fast,balanced,best", help="comma list of presets ('' for none)")
    parser.add_argument("--images", type=int, default=1, help="photos per preset")
    parser.add_argument("--texts", type=int, default=5, help="timed text queries (after one warm-up)")
    parser.add_argument("--no-lock", action="store_true", help="do not take the shared heavy-work lock")
    parser.add_argument("--json", dest="json_out", help="also write all results (and vectors' cosines) here")
    parser.add_argument(
        "--side-by-side",
        type=int,
        metavar="ROUNDS",
        help="load every path in one process and take turns, ROUNDS times (fair ratios on a busy machine)",
    )
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: run one path in this process
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.point:
        print("RESULT " + json.dumps(run_path(args)), flush=True)
        return

    print(machine_line(), flush=True)
    if args.side_by_side:
        with open(LOCK, "a") as lock:
            if not args.no_lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
            print(side_by_side(args), flush=True)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, spec in enumerate(args.paths.split(",")):
            vectors = Path(tmp) / f"path{n}.npz"
            result = run_child(spec, vectors, args)
            result["vectors"] = str(vectors)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "vectors"}), flush=True)
        add_cosines(results)
    for r in results:
        r.pop("vectors", None)
    print()
    print(table(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine_line(), "results": results}, indent=1))


def run_child(spec: str, vectors: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--model",
        args.model,
        "--point",
        spec,
        "--vectors",
        str(vectors),
        "--qualities",
        args.qualities,
        "--images",
        str(args.images),
        "--texts",
        str(args.texts),
    ]
    with open(LOCK, "a") as lock:
        if not args.no_lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
        load_before = round(os.getloadavg()[0], 2)
        completed = subprocess.run(command, capture_output=True, text=True)
        load_after = round(os.getloadavg()[0], 2)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[len("RESULT ") :]), "load_before": load_before, "load_after": load_after}
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
    return {"path": spec, "error": f"exit {completed.returncode}: {' | '.join(tail)}"}


def rss_gb() -> dict[str, float]:
    """Current and peak resident set, and the file-backed part (memory-mapped weights), in GB."""
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssFile", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 2**20, 2)
    except OSError:
        values["VmHWM"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return values


def run_path(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from umsearch.embed import load_embedder
    from umsearch.gme import _load_processors, fit_image

    quant, dtype, *rest = args.point.split(":")
    if rest:
        torch.set_num_threads(int(rest[0]))
    result: dict = {"path": args.point, "quant": quant, "threads": torch.get_num_threads()}
    qualities = [q for q in args.qualities.split(",") if q]
    low, high = QUALITY_PRESETS[qualities[0] if qualities else "fast"]
    started = time.perf_counter()
    embedder = load_embedder(
        args.model, device="cpu", quant=quant, dtype=dtype, min_image_tokens=low, max_image_tokens=high
    )
    result["load_s"] = round(time.perf_counter() - started, 2)
    result["dtype"] = embedder.info.dtype
    result["rss_loaded_gb"] = rss_gb().get("VmRSS")

    vectors: dict[str, np.ndarray] = {}
    embedder.embed_query("warm-up")
    walls, cpus = [], []
    for i in range(args.texts):
        text = TEXTS[i % len(TEXTS)]
        started, cpu = time.perf_counter(), time.process_time()
        vectors[f"text{i}"] = embedder.embed_query(text)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    result["text_s"] = round(statistics.median(walls), 3)
    result["text_cpu_s"] = round(statistics.median(cpus), 3)
    result["rss_text_peak_gb"] = rss_gb().get("VmHWM")

    for quality in qualities:
        low, high = QUALITY_PRESETS[quality]
        # A budget is only the image processor's limits: same weights, so no reload.
        _, embedder.image_processor = _load_processors(Path(args.model), low, high)
        embedder.info = replace(embedder.info, min_image_tokens=low, max_image_tokens=high)
        wall = cpu_s = 0.0
        for i in range(args.images):
            image = fit_image(photo(i), low, high)
            started, cpu = time.perf_counter(), time.process_time()
            vectors[f"{quality}{i}"] = embedder.embed_images([image])[0]
            wall += time.perf_counter() - started
            cpu_s += time.process_time() - cpu
        result[f"{quality}_s"] = round(wall / args.images, 2)
        result[f"{quality}_cpu_s"] = round(cpu_s / args.images, 2)
    result["peak_rss_gb"] = rss_gb().get("VmHWM")
    np.savez(args.vectors, **vectors)
    return result


def side_by_side(args: argparse.Namespace) -> str:
    """All paths loaded at once; each round times one text query and one photo per preset on every path in
    turn, so a busy moment on the machine hits all of them alike. Medians over the rounds."""
    import numpy as np
    import torch

    from umsearch.embed import load_embedder
    from umsearch.gme import _load_processors, fit_image

    load_avg = [os.getloadavg()[0]]
    specs = args.paths.split(",")
    qualities = [q for q in args.qualities.split(",") if q]
    models: dict[tuple[str, str], object] = {}
    for spec in specs:
        quant, dtype = spec.split(":")[:2]
        if (quant, dtype) not in models:
            models[quant, dtype] = load_embedder(args.model, device="cpu", quant=quant, dtype=dtype)
    processors = {q: _load_processors(Path(args.model), *QUALITY_PRESETS[q])[1] for q in qualities}
    photos = {q: fit_image(photo(0), *QUALITY_PRESETS[q]) for q in qualities}
    default_threads = torch.get_num_threads()
    times: dict[str, dict[str, list[float]]] = {spec: {} for spec in specs}
    vectors: dict[str, dict[str, np.ndarray]] = {spec: {} for spec in specs}
    for spec in specs:  # warm-up: every path once (first calls, the vision towers' first load)
        quant, dtype = spec.split(":")[:2]
        models[quant, dtype].embed_query(TEXTS[0])
    for n in range(args.side_by_side):
        for spec in specs:
            quant, dtype, *rest = spec.split(":")
            torch.set_num_threads(int(rest[0]) if rest else default_threads)
            model = models[quant, dtype]
            started = time.perf_counter()
            vectors[spec][f"text{n}"] = model.embed_query(TEXTS[n % len(TEXTS)])
            times[spec].setdefault("text", []).append(time.perf_counter() - started)
            for quality in qualities:
                model.image_processor = processors[quality]
                started = time.perf_counter()
                vectors[spec][f"{quality}{n}"] = model.embed_images([photos[quality]])[0]
                times[spec].setdefault(quality, []).append(time.perf_counter() - started)
        load_avg.append(os.getloadavg()[0])
    reference = vectors[specs[0]]
    lines = [
        "| path | threads | text s | " + " | ".join(f"{q} s/photo" for q in qualities) + " | cos min vs first |",
        "|---" * (4 + len(qualities)) + "|",
    ]
    for spec in specs:
        quant, dtype, *rest = spec.split(":")
        cos = min(float(np.dot(reference[k], vectors[spec][k])) for k in reference)
        cells = [f"{statistics.median(times[spec][q]):.2f}" for q in qualities]
        lines.append(
            f"| {quant} {dtype} | {rest[0] if rest else default_threads} | {statistics.median(times[spec]['text']):.3f} "
            f"| {' | '.join(cells)} | {cos:.4f} |"
        )
    lines.append(f"\n{args.side_by_side} rounds; load average {min(load_avg):.1f}–{max(load_avg):.1f}")
    return "\n".join(lines)


def add_cosines(results: list[dict]) -> None:
    import numpy as np

    reference = next((r for r in results if "error" not in r), None)
    if reference is None:
        return
    ref = np.load(reference["vectors"])
    for r in results:
        if "error" in r:
            continue
        own = np.load(r["vectors"])
        common = sorted(set(ref.files) & set(own.files))
        cos = [float(np.dot(ref[k], own[k])) for k in common]
        text = [c for k, c in zip(common, cos) if k.startswith("text")]
        image = [c for k, c in zip(common, cos) if not k.startswith("text")]
        r["cos_text_min"] = round(min(text), 5) if text else None
        r["cos_image_min"] = round(min(image), 5) if image else None
        r["cos_mean"] = round(sum(cos) / len(cos), 5) if cos else None


def table(results: list[dict]) -> str:
    head = (
        "| path | threads | load s | RSS loaded | text s (CPU s) | fast s/photo | balanced s/photo | best s/photo "
        "| photos/h (fast) | peak RSS | cos text (min) | cos image (min) | load avg |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['path']} | error: {r['error']} |")
            continue

        def per_photo(q: str) -> str:
            return f"{r[q + '_s']} ({r[q + '_cpu_s']})" if q + "_s" in r else "–"

        per_hour = round(3600 / r["fast_s"]) if r.get("fast_s") else "–"
        lines.append(
            f"| {r['quant']} {r['dtype']} | {r['threads']} | {r['load_s']} | {r['rss_loaded_gb']} GB "
            f"| {r['text_s']} ({r['text_cpu_s']}) | {per_photo('fast')} | {per_photo('balanced')} "
            f"| {per_photo('best')} | {per_hour} | {r['peak_rss_gb']} GB | {r.get('cos_text_min')} "
            f"| {r.get('cos_image_min')} | {r['load_before']}–{r['load_after']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

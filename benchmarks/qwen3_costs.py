"""What the Qwen3-VL-Embedding family costs on this machine, next to GME (random full-size weights).

Three parts, each point in its own process (clean peak RSS, no warm caches carried over):

* ``--embed``: load time, RSS after load and peak, one text query (median after a warm-up), and seconds
  per photo at each quality preset (a 4:3 photo larger than every budget), for the Qwen3-VL-2B folder and,
  with ``--gme-model``, a GME-2B folder under the same load, side by side;
* ``--dims``: index bytes per photo and search time (p50/p95 of the real query path) for each ``--dim``,
  on synthetic clustered vectors shortened the MRL way (first N values, re-normalised);
* ``--video``: one clip of ``--frames`` frames (a minute of footage sampled at the reference's 1 fps) as one
  video input, the reference's frame-list path: seconds per minute of footage;
* ``--rerank``: reranker load time and seconds per candidate (one pass per photo at the given quality), for
  N candidates; each pass is independent, so N=30/100 are the measured per-candidate time times N.

Full-size models are not downloaded: build them once with
``python -m umsearch.devmodel_qwen3 DIR --size 2b --dtype float32`` (the same folder serves as reranker).
Heavy: run under ``flock /tmp/umsearch-heavy.lock``. Example:

    PYTHONPATH=. python benchmarks/qwen3_costs.py --model /work/models/qwen3-vl-2b-f32 \\
        --gme-model /work/models/gme-2b-f32 --embed --dims --rerank --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHOTO_SIZE = (2400, 1800)  # a 4:3 photo above every preset's budget (best: 1800 tokens = 1.84 MP)
TEXTS = ["a cat asleep on a red sofa", "snow covered mountains reflected in a lake at dawn"]
DIMS = (2048, 1024, 512, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Qwen3-VL-Embedding folder (e.g. a 2b dev model)")
    parser.add_argument("--gme-model", help="a GME folder to measure the same points on, side by side")
    parser.add_argument("--rerank-model", help="reranker folder [default: --model]")
    parser.add_argument("--qualities", default="fast,balanced,best")
    parser.add_argument("--gme-qualities", default="fast", help="presets for --gme-model (the comparison row)")
    parser.add_argument("--images", type=int, default=1, help="photos per quality point")
    parser.add_argument("--embed", action="store_true")
    parser.add_argument("--dims", action="store_true")
    parser.add_argument("--photos", type=int, default=20_000, help="index size for --dims")
    parser.add_argument("--video", action="store_true")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rerank", action="store_true")
    parser.add_argument("--rerank-quality", default="fast")
    parser.add_argument("--candidates", type=int, default=10, help="candidates actually rescored")
    parser.add_argument("--json", dest="json_out")
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.point:
        point = json.loads(args.point)
        runner = {"embed": embed_point, "rerank": rerank_point, "video": video_point}[point["kind"]]
        print("RESULT " + json.dumps(runner(point)), flush=True)
        return

    report: dict = {"machine_before": machine_line(), "embed": [], "dims": [], "rerank": None, "video": None}
    print(report["machine_before"], flush=True)
    if args.embed:
        models = [("qwen3-vl", args.model, args.qualities)]
        if args.gme_model:
            models.append(("gme", args.gme_model, args.gme_qualities))
        for family, model, qualities in models:
            for quality in qualities.split(","):
                point = dict(kind="embed", family=family, model=model, quality=quality, images=args.images)
                report["embed"].append(child(point))
                print(json.dumps(report["embed"][-1]), flush=True)
    if args.dims:
        report["dims"] = dims_report(args.photos)
        for row in report["dims"]:
            print(json.dumps(row), flush=True)
    if args.video:
        report["video"] = child(dict(kind="video", model=args.model, frames=args.frames))
        print(json.dumps(report["video"]), flush=True)
    if args.rerank:
        point = dict(
            kind="rerank",
            model=args.rerank_model or args.model,
            quality=args.rerank_quality,
            candidates=args.candidates,
        )
        report["rerank"] = child(point)
        print(json.dumps(report["rerank"]), flush=True)
    report["machine_after"] = machine_line()
    print(report["machine_after"])
    print(tables(report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))


def machine_line() -> str:
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def child(point: dict) -> dict:
    started = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--model", "-", "--point", json.dumps(point)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {**point, "error": proc.stderr.strip().splitlines()[-1:] or ["no result"]}
    return {**json.loads(lines[-1][7:]), "load_avg": f"{started:.1f}→{os.getloadavg()[0]:.1f}"}


def rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1e6
    return 0.0


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def photo(seed: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = PHOTO_SIZE
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, int(rng.integers(256)))], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def embed_point(point: dict) -> dict:
    from umsearch.embed import load_embedder
    from umsearch.families import FAMILIES

    family = FAMILIES[point["family"]]
    low, high = family.budget(point["quality"])
    started = time.perf_counter()
    embedder = load_embedder(
        point["model"], device="cpu", quant="none", dtype="float32", min_image_tokens=low, max_image_tokens=high
    )
    load_s = time.perf_counter() - started
    loaded_rss = rss_gb()
    embedder.embed_query(TEXTS[0])  # warm-up
    text_times = []
    for text in TEXTS:
        t0 = time.perf_counter()
        embedder.embed_query(text)
        text_times.append(time.perf_counter() - t0)
    image_times = []
    fitted = [family.fit_image(photo(i), low, high) for i in range(point["images"])]
    tokens = family.image_token_count(*fitted[0].size, low, high)
    for image in fitted:
        batch = embedder.prepare_images([image])
        t0 = time.perf_counter()
        embedder.embed_prepared(batch)
        image_times.append(time.perf_counter() - t0)
    return dict(
        family=point["family"],
        quality=point["quality"],
        tokens=tokens,
        load_s=round(load_s, 1),
        text_s=round(statistics.median(text_times), 3),
        photo_s=round(statistics.median(image_times), 2),
        rss_loaded_gb=round(loaded_rss, 2),
        peak_rss_gb=round(peak_rss_gb(), 2),
    )


def video_point(point: dict) -> dict:
    from umsearch.embed import load_embedder
    from umsearch.qwen3vl import VideoClip

    embedder = load_embedder(point["model"], device="cpu", quant="none", dtype="float32")
    frames = tuple(photo(i).resize((1280, 720)) for i in range(point["frames"]))  # 720p footage
    clip = VideoClip(frames, times=tuple(float(i) for i in range(point["frames"])))
    batch = embedder.prepare([_video_input(clip)])
    t0 = time.perf_counter()
    embedder.embed_prepared(batch)
    seconds = time.perf_counter() - t0
    grid = batch["video_grid_thw"][0].tolist()
    return dict(
        frames=point["frames"],
        tokens=int(batch["input_ids"].shape[1]),
        visual_tokens=grid[0] * grid[1] * grid[2] // 4,
        seconds=round(seconds, 1),
        per_minute_s=round(seconds * 60 / point["frames"], 1),
        peak_rss_gb=round(peak_rss_gb(), 2),
    )


def _video_input(clip):
    from umsearch.qwen3vl import INDEX_INSTRUCTION, Qwen3Input

    return Qwen3Input(video=clip, instruction=INDEX_INSTRUCTION)


def rerank_point(point: dict) -> dict:
    from umsearch.families import QWEN3_VL
    from umsearch.rerank import RerankItem, load_reranker

    low, high = QWEN3_VL.budget(point["quality"])
    started = time.perf_counter()
    reranker = load_reranker(
        point["model"], device="cpu", quant="none", dtype="float32", min_image_tokens=low, max_image_tokens=high
    )
    load_s = time.perf_counter() - started
    candidates = [RerankItem(image=QWEN3_VL.fit_image(photo(i), low, high)) for i in range(point["candidates"])]
    query = RerankItem(text=TEXTS[0])
    reranker.score(query, candidates[:1])  # warm-up
    t0 = time.perf_counter()
    reranker.score(query, candidates)
    total = time.perf_counter() - t0
    per = total / len(candidates)
    return dict(
        quality=point["quality"],
        tokens=QWEN3_VL.image_token_count(*candidates[0].image.size, low, high),
        load_s=round(load_s, 1),
        candidates=len(candidates),
        measured_s=round(total, 1),
        per_candidate_s=round(per, 2),
        n10_s=round(per * 10, 1),
        n30_s=round(per * 30, 1),
        n100_s=round(per * 100, 1),
        peak_rss_gb=round(peak_rss_gb(), 2),
    )


def dims_report(photos: int) -> list[dict]:
    """Bytes per photo and search time per --dim, through the real Store and search path."""
    import numpy as np

    import benchmarks.search_scale as scale
    from benchmarks.search_scale import make_batch, pct
    from umsearch.search import search
    from umsearch.store import IndexSettings, Store

    scale.DIM = DIMS[0]  # the clustered generator at the model's full width
    full = make_batch(0, photos, photos)
    queries = make_batch(10**9, 30, photos)
    rows = []
    for dim in DIMS:
        vectors = full[:, :dim] / np.linalg.norm(full[:, :dim], axis=1, keepdims=True)
        qs = queries[:, :dim] / np.linalg.norm(queries[:, :dim], axis=1, keepdims=True)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "dims.db"
            with Store.open(db) as store:
                store.bind(IndexSettings("bench/qwen3", dim, 4, 1800, "qwen3-vl"))
                store.db.execute("PRAGMA synchronous = OFF")
                with store.transaction():
                    for n in range(photos):
                        store.put_file(f"/p/{n:07d}.jpg", size=n, mtime_ns=n, digest=f"{n:032x}", vector=vectors[n])
            with Store.open(db, create=False) as store:
                size = store.size_bytes()
                search(store, qs[0], 20)  # warm the page cache
                times = []
                exact_hits = 0
                for q in qs:
                    t0 = time.perf_counter()
                    hits = search(store, q, 20)
                    times.append(time.perf_counter() - t0)
                    exact = set(np.argsort(-(vectors @ q))[:20] + 1)
                    exact_hits += len(exact & {hit.file_id for hit in hits})
        rows.append(
            dict(
                dim=dim,
                photos=photos,
                bytes_per_photo=round(size / photos),
                search_p50_ms=round(pct(times, 0.5) * 1000, 1),
                search_p95_ms=round(pct(times, 0.95) * 1000, 1),
                recall_at_20=round(exact_hits / (20 * len(qs)), 3),
                load_avg=f"{os.getloadavg()[0]:.1f}",
            )
        )
    return rows


def tables(report: dict) -> str:
    out = []
    if report["embed"]:
        out.append("| family | quality | tokens | s/photo | text query s | load s | RSS loaded | peak RSS | load avg |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for r in report["embed"]:
            if "error" in r:
                out.append(f"| {r['family']} | {r['quality']} | error: {r['error']} |")
                continue
            out.append(
                f"| {r['family']} | {r['quality']} | {r['tokens']} | {r['photo_s']} | {r['text_s']} | {r['load_s']} "
                f"| {r['rss_loaded_gb']} GB | {r['peak_rss_gb']} GB | {r['load_avg']} |"
            )
    if report["dims"]:
        out.append("")
        out.append("| --dim | photos | bytes/photo | search p50 | p95 | recall@20 | load avg |")
        out.append("|---:|---:|---:|---:|---:|---:|---|")
        for r in report["dims"]:
            out.append(
                f"| {r['dim']} | {r['photos']} | {r['bytes_per_photo']} | {r['search_p50_ms']} ms "
                f"| {r['search_p95_ms']} ms | {r['recall_at_20']} | {r['load_avg']} |"
            )
    v = report.get("video")
    if v:
        out.append("")
        if "error" in v:
            out.append(f"video error: {v['error']}")
        else:
            out.append(
                "| clip | visual tokens | prompt tokens | seconds | per minute of footage (1 fps) | peak RSS | load avg |"
            )
            out.append("|---|---:|---:|---:|---:|---:|---|")
            out.append(
                f"| {v['frames']} frames, 720p | {v['visual_tokens']} | {v['tokens']} | {v['seconds']} s "
                f"| {v['per_minute_s']} s | {v['peak_rss_gb']} GB | {v['load_avg']} |"
            )
    r = report.get("rerank")
    if r:
        out.append("")
        if "error" in r:
            out.append(f"rerank error: {r['error']}")
        else:
            out.append(
                "| reranker quality | tokens | load s | per candidate | N=10 | N=30 | N=100 | peak RSS | load avg |"
            )
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
            out.append(
                f"| {r['quality']} | {r['tokens']} | {r['load_s']} | {r['per_candidate_s']} s | {r['n10_s']} s "
                f"| {r['n30_s']} s | {r['n100_s']} s | {r['peak_rss_gb']} GB | {r['load_avg']} |"
            )
    return "\n".join(out)


if __name__ == "__main__":
    main()

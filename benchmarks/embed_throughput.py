"""Embedding throughput and memory of full-size GME models with random weights (no download needed).

Builds gme-Qwen2-VL-2B/7B-shaped model folders from the real configs with umsearch.devmodel (random
weights, fast fill) into a cache folder, then measures, for each quantisation and quality preset:

* images/s (the model's own time: vision tower + decoder, batch of --batch-size) and the CPU-side input
  preparation time, at the visual-token count the preset gives a 4:3 photo;
* text queries/s (one query at a time, as `umsearch query` does);
* peak RSS (each point runs in its own process), and on CUDA peak VRAM (torch.cuda.max_memory_allocated);
* on CUDA, the fraction of the compute bound: analytic model FLOPs per image x images/s / GPU peak FLOP/s.

`--pipeline` instead indexes a folder of real JPEG photos through the real Indexer and reports how much
the pipeline (decode, resize, input preparation, DB writes) adds over the model's own time.

Examples:
    python benchmarks/embed_throughput.py --sizes 2b --quants none,nf4 --images 2        # CPU
    python benchmarks/embed_throughput.py --device cuda --quants none,nf4 --images 32 --batch-size 8
    python benchmarks/embed_throughput.py --pipeline --quality fast --images 6 --batch-size 2
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

from umsearch.runtime import QUALITY_PRESETS  # noqa: E402  (cheap: no torch)
from umsearch.settings import max_pixels  # noqa: E402

PHOTO_SIZE = (1600, 1200)  # a 4:3 photo, larger than every preset's budget
TEXTS = [
    "a cat asleep on a red sofa",
    "snow covered mountains reflected in a lake at dawn",
    "two children playing football in a park",
    "the old town at night with wet cobblestones",
    "a birthday cake with candles on a wooden table",
    "city skyline with a bridge and boats on the river",
]
# Dense bf16/fp16 tensor-core peaks (TFLOP/s) for GPUs whose figure is unambiguous; pass --peak-tflops
# for any other card (consumer cards differ by accumulate precision).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2b", help="comma list of 2b, 7b")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    parser.add_argument("--quants", default="none,nf4", help="comma list of none, nf4, int8")
    parser.add_argument(
        "--dtype", default="auto", help="compute dtype for every point (auto, float32, bfloat16, float16)"
    )
    parser.add_argument("--qualities", default="fast,balanced,best", help="comma list of presets")
    parser.add_argument("--quality", default="fast", help="preset for --pipeline")
    parser.add_argument("--images", type=int, default=2, help="images per point (after one warm-up batch on GPU)")
    parser.add_argument("--texts", type=int, default=4, help="text queries per point (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--cache", default=str(ROOT / ".bench"), help="where the model folders are built")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU peak dense TFLOP/s (default: by name)")
    parser.add_argument("--pipeline", action="store_true", help="measure pipeline overhead instead")
    parser.add_argument("--json", dest="json_out", help="also write all results to this JSON file")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: run one point in this process
    args = parser.parse_args()

    if args.point:
        point = json.loads(args.point)
        result = run_pipeline(point, args) if point.get("pipeline") else run_point(point, args)
        print("RESULT " + json.dumps(result), flush=True)
        return

    print(machine_line(), flush=True)
    results = []
    for size in args.sizes.split(","):
        model_dir = ensure_model(size, Path(args.cache))
        if args.pipeline:
            points = [
                dict(size=size, model=str(model_dir), quant=q, quality=args.quality, pipeline=True, dtype=args.dtype)
                for q in args.quants.split(",")
            ]
        else:
            points = [
                dict(size=size, model=str(model_dir), quant=q, quality=quality, dtype=args.dtype)
                for q in args.quants.split(",")
                for quality in args.qualities.split(",")
            ]
        for point in points:
            result = run_child(point, args)
            results.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(pipeline_table(results) if args.pipeline else table(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine_line(), "results": results}, indent=1))


def machine_line() -> str:
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def ensure_model(size: str, cache: Path) -> Path:
    from umsearch.devmodel import build_model_dir

    folder = cache / f"gme-{size}"
    if not (folder / "model.safetensors.index.json").is_file():
        print(f"building random-weight {size} model in {folder} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        build_model_dir(folder, size)
        print(f"  built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return folder


def run_child(point: dict, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--point",
        json.dumps(point),
        "--device",
        args.device,
        "--images",
        str(args.images),
        "--texts",
        str(args.texts),
        "--batch-size",
        str(args.batch_size),
    ]
    if args.peak_tflops:
        command += ["--peak-tflops", str(args.peak_tflops)]
    completed = subprocess.run(command, capture_output=True, text=True)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
    return {**point, "error": f"exit {completed.returncode}: {' | '.join(tail)}"}


# ---- one point ---------------------------------------------------------------------------------------
def photo(seed: int, size: tuple[int, int] = PHOTO_SIZE):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    channels = [
        np.clip(
            rng.uniform(0, 255) + rng.uniform(-0.2, 0.2) * x + rng.uniform(-0.2, 0.2) * y + rng.normal(0, 12, (h, w)),
            0,
            255,
        )
        for _ in range(3)
    ]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8), "RGB")


def load(point: dict, device: str):
    from umsearch.embed import load_embedder

    low, high = QUALITY_PRESETS[point["quality"]]
    started = time.perf_counter()
    embedder = load_embedder(
        point["model"],
        device=device,
        quant=point["quant"],
        dtype=point.get("dtype", "auto"),
        min_image_tokens=low,
        max_image_tokens=high,
    )
    return embedder, time.perf_counter() - started


def run_point(point: dict, args: argparse.Namespace) -> dict:
    import torch

    from umsearch.gme import fit_image

    cuda = args.device == "cuda"
    embedder, load_s = load(point, args.device)
    info = embedder.info
    result = {
        **point,
        "device": info.device,
        "dtype": info.dtype,
        "load_s": round(load_s, 1),
        "threads": torch.get_num_threads(),
        "started": time.strftime("%H:%M"),
        "load_avg": round(os.getloadavg()[0], 1),
    }
    result.pop("model")
    result["rss_after_load_gb"] = current_rss_gb()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    # Text queries, one at a time (the first is a warm-up).
    embedder.embed_query(TEXTS[0])
    text_times, text_cpu = [], []
    for i in range(args.texts):
        sync()
        started, cpu = time.perf_counter(), time.process_time()
        embedder.embed_query(TEXTS[(i + 1) % len(TEXTS)])
        sync()
        text_times.append(time.perf_counter() - started)
        text_cpu.append(time.process_time() - cpu)
    result["text_s"] = round(statistics.median(text_times), 3)
    # CPU seconds used: on a machine shared with other work, this / threads estimates an idle machine's time.
    result["text_cpu_s"] = round(statistics.median(text_cpu), 3)
    result["texts_per_s"] = round(1 / statistics.median(text_times), 2)

    if args.images == 0:  # text queries only
        result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        return result
    images = [fit_image(photo(i), info.min_image_tokens, info.max_image_tokens) for i in range(args.batch_size)]
    batch = embedder.prepare_images(images)
    tokens = int(batch["image_grid_thw"][0].prod()) // 4
    result["visual_tokens"] = tokens
    result["sequence"] = int(batch["input_ids"].shape[1])
    if cuda:
        embedder.embed_prepared(batch)  # warm-up: kernels, allocator
        torch.cuda.reset_peak_memory_stats()
    prepare_s, model_s, done = 0.0, 0.0, 0
    cpu = time.process_time()
    while done < args.images:
        started = time.perf_counter()
        batch = embedder.prepare_images(images)
        prepared = time.perf_counter()
        embedder.embed_prepared(batch)
        sync()
        prepare_s += prepared - started
        model_s += time.perf_counter() - prepared
        done += len(images)
    result["image_s"] = round(model_s / done, 3)
    result["image_cpu_s"] = round((time.process_time() - cpu) / done, 3)
    result["images_per_s"] = round(done / model_s, 3)
    result["prepare_share"] = round(prepare_s / model_s, 4)
    result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    config = json.loads((Path(point["model"]) / "config.json").read_text())
    flops = image_flops(config, tokens, result["sequence"])
    result["gflop_per_image"] = round(flops / 1e9, 1)
    result["achieved_tflops"] = round(flops * done / model_s / 1e12, 3)
    if cuda:
        result["gpu"] = torch.cuda.get_device_name(0)
        result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in result["gpu"]), None)
        if peak:
            result["compute_bound_fraction"] = round(result["achieved_tflops"] / peak, 4)
    return result


def current_rss_gb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 2**20, 2)
    except OSError:
        pass
    return None  # not Linux


def image_flops(config: dict, tokens: int, sequence: int) -> float:
    """Forward FLOPs (2 per multiply-add) of one image embedding: vision tower, merger, text decoder.

    Qwen2-VL's vision tower attends over all of an image's patches at once (4 per visual token before
    the 2x2 merge); the decoder runs over the whole prompt (`sequence` tokens). Norms, activations and
    softmax are left out (well under 1%).
    """
    vision = config["vision_config"]
    e, depth, ratio = vision["embed_dim"], vision["depth"], vision["mlp_ratio"]
    patch_in = vision["in_chans"] * vision["temporal_patch_size"] * vision["patch_size"] ** 2
    merge = vision["spatial_merge_size"] ** 2
    h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * (h // config["num_attention_heads"])
    patches = tokens * merge
    macs = patches * patch_in * e
    macs += depth * (patches * (4 * e * e + 2 * ratio * e * e) + 2 * patches * patches * e)
    macs += tokens * ((merge * e) ** 2 + merge * e * h)
    macs += layers * (sequence * (2 * h * h + 2 * h * kv + 3 * h * inter) + 2 * sequence * sequence * h)
    return 2.0 * macs


# ---- pipeline overhead -------------------------------------------------------------------------------
class TimedEmbedder:
    """The real embedder, with the time spent inside the model call added up."""

    def __init__(self, real) -> None:
        self.real, self.info = real, real.info
        self.model_s = 0.0
        self.prepare_s = 0.0

    def prepare_images(self, images):
        started = time.perf_counter()
        try:
            return self.real.prepare_images(images)
        finally:
            self.prepare_s += time.perf_counter() - started

    def embed_prepared(self, batch):
        started = time.perf_counter()
        try:
            return self.real.embed_prepared(batch)
        finally:
            self.model_s += time.perf_counter() - started

    def embed_images(self, images, batch_size=8):
        return self.embed_prepared(self.prepare_images(images))


def run_pipeline(point: dict, args: argparse.Namespace) -> dict:
    from umsearch.gme import fit_image
    from umsearch.imageload import load_image
    from umsearch.index import Indexer
    from umsearch.store import Store

    embedder, load_s = load(point, args.device)
    info = embedder.info
    budget = (info.min_image_tokens, info.max_image_tokens)
    result = {
        **point,
        "device": info.device,
        "dtype": info.dtype,
        "load_s": round(load_s, 1),
        "load_avg": round(os.getloadavg()[0], 1),
    }
    result.pop("model")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(args.images):  # 12-megapixel JPEGs, as a phone or camera writes them
            photo(100 + i, (4000, 3000)).save(folder / f"IMG_{i:04d}.jpg", quality=90)
        embedder.embed_query(TEXTS[0])  # warm-up outside the timed run
        # The stages one at a time, on one thread, for the record.
        started = time.perf_counter()
        for path in sorted(folder.iterdir()):
            fit_image(load_image(str(path), max_pixels(budget[1])).image, *budget)
        result["decode_resize_s_per_image"] = round((time.perf_counter() - started) / args.images, 3)
        timed = TimedEmbedder(embedder)
        with Store.open(Path(tmp) / "bench.db") as store:
            indexer = Indexer(
                store, lambda: timed, max_pixels=max_pixels(budget[1]), image_budget=budget, batch_size=args.batch_size
            )
            started = time.perf_counter()
            summary = indexer.index([str(folder)])
            wall = time.perf_counter() - started
        assert summary.added == args.images, summary
    result.update(
        images=args.images,
        batch_size=args.batch_size,
        wall_s=round(wall, 2),
        model_s=round(timed.model_s, 2),
        prepare_s_overlapped=round(timed.prepare_s, 2),
        overhead=round(wall / timed.model_s - 1, 4),
        peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    )
    return result


# ---- tables ------------------------------------------------------------------------------------------
def table(results: list[dict]) -> str:
    head = (
        "| model | quant | dtype | quality | tokens | s/image | images/s | text s | texts/s | prep/model "
        "| RSS loaded | peak RSS | peak VRAM | TFLOP/s | of peak | load avg |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['quant']} | | {r['quality']} | error: {r['error']} |")
            continue
        r = {
            "visual_tokens": "–",
            "image_s": "–",
            "images_per_s": "–",
            "prepare_share": 0.0,
            "achieved_tflops": "–",
            **r,
        }
        lines.append(
            f"| {r['size']} | {r['quant']} | {r['dtype']} | {r['quality']} | {r['visual_tokens']} | {r['image_s']} "
            f"| {r['images_per_s']} | {r['text_s']} | {r['texts_per_s']} | {r['prepare_share']:.1%} "
            f"| {r.get('rss_after_load_gb', '–')} GB | {r['peak_rss_gb']} GB | {r.get('peak_vram_gb', '–')} "
            f"| {r['achieved_tflops']} | {r.get('compute_bound_fraction', '–')} | {r.get('load_avg', '–')} |"
        )
    return "\n".join(lines)


def pipeline_table(results: list[dict]) -> str:
    lines = [
        "| model | quant | dtype | quality | images | batch | wall s | model s | overhead | decode+resize s/img "
        "| load avg |",
        "|---" * 11 + "|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['quant']} | {r['quality']} | error: {r['error']} |")
            continue
        lines.append(
            f"| {r['size']} | {r['quant']} | {r['dtype']} | {r['quality']} | {r['images']} | {r['batch_size']} "
            f"| {r['wall_s']} | {r['model_s']} | {r['overhead']:.1%} | {r['decode_resize_s_per_image']} "
            f"| {r['load_avg']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

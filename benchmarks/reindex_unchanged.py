"""Re-indexing an unchanged tree of N photos must only stat files: no decode, no hashing, no model.

Run: python benchmarks/reindex_unchanged.py [N]   (default 10,000; target: under 5 s)

The index is filled through the real Store with synthetic vectors (the model's output does not matter
here), then `umsearch index` runs as a user would run it, in a subprocess, and is timed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from umsearch.store import IndexSettings, Store


def make_tree(root: Path, count: int) -> list[Path]:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    data = buffer.getvalue()
    paths = []
    for i in range(count):
        folder = root / f"album{i // 500:03d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"IMG_{i:06d}.png"
        path.write_bytes(data)
        paths.append(path)
    return paths


def fill_store(db: Path, paths: list[Path], dim: int = 1536) -> None:
    rng = np.random.default_rng(0)
    with Store.open(db) as store:
        store.bind(IndexSettings("benchmark/synthetic", dim, 256, 1280))
        with store.transaction():
            for path in paths:
                st = path.stat()
                vector = rng.standard_normal(dim).astype(np.float32)
                store.put_file(
                    str(path),
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    digest=None,
                    vector=vector / np.linalg.norm(vector),
                )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root, db = Path(tmp) / "photos", Path(tmp) / "index.db"
        root.mkdir()
        paths = make_tree(root, count)
        fill_store(db, paths)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "umsearch", "index", str(root), "--db", str(db), "--json"]
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            timings.append(time.perf_counter() - start)
        print(f"{count} unchanged files: re-index {min(timings):.2f} s best, {max(timings):.2f} s worst of 3")
        print(f"summary: {done.stdout.strip()}")


if __name__ == "__main__":
    main()

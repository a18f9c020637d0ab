"""Sign bits that measure the angle between vectors on any distribution (SimHash), and the query-side tables
that re-rank a shortlist from those bits.

Why not the components' own signs: embeddings from LLM-based models such as GME share a common offset
direction, a few dimensions carry large, nearly constant values and most of the variance lies in a few
directions. Then most components have the same sign in every photo, the bits say little, and the true
nearest photos fall out of the shortlist (recall@20 0.93, worst query 0.50 on such vectors; BENCHMARKS.md).

SimHash (Charikar, 2002): bit i is the sign of h_i · v for random Gaussian hyperplanes h_i. For any two
vectors, whatever the distribution, a bit differs with probability angle(q, v) / π, so the Hamming
distance estimates the angle, i.e. the cosine that the exact step ranks by. Nothing depends on the data:
no mean to track as the library grows, nothing to refit.

The hyperplanes are one fixed random matrix per dimension, drawn from numpy's legacy RandomState, whose
stream NumPy keeps frozen across versions, so every process computes the same bits; the index records the
transform's fingerprint (meta `bits`) and recomputes its bits if that ever differs.

The query is projected but not quantised: a shortlist is re-ranked by Σ_i (h_i · q)·(±1 for bit i of v),
which estimates q · v / |v| without the query's own rounding noise, using a table per byte of the bits.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TRANSFORM = "simhash-gaussian-v1"
_SEED = 0x756D7365


@functools.lru_cache(maxsize=2)
def hyperplanes(dim: int) -> "np.ndarray":
    """(dim, dim) float32; column i is hyperplane i (~80 ms to draw at 1536-d, once per process)."""
    import numpy as np

    drawn = np.random.RandomState(_SEED).standard_normal((dim, dim)).astype(np.float32)
    drawn.setflags(write=False)
    return drawn


def fingerprint(dim: int) -> str:
    """Names the transform and checks that this process draws the same hyperplanes as the one that wrote."""
    corner = hyperplanes(dim)[:4, :4]
    return f"{TRANSFORM}/{dim}/{float(corner.astype('float64').sum()):.6f}"


def project(vectors: "np.ndarray") -> "np.ndarray":
    """h_i · v for every hyperplane: one row per vector (or one vector)."""
    import numpy as np

    values = np.asarray(vectors, dtype=np.float32)
    return values @ hyperplanes(values.shape[-1])


def pack(projected: "np.ndarray") -> "np.ndarray":
    """The signs as bits, packed the way sqlite-vec's bit[] columns hold them (bit i = byte i//8, bit i%8)."""
    import numpy as np

    return np.packbits(projected > 0, axis=-1, bitorder="little")


def sign_bits(vector: "np.ndarray | bytes") -> bytes:
    """One vector's SimHash bits (dim bits, zero-padded to whole bytes)."""
    import numpy as np

    values = np.frombuffer(vector, dtype=np.float32) if isinstance(vector, bytes) else np.asarray(vector)
    return pack(project(values)).tobytes()


@functools.lru_cache(maxsize=1)
def _byte_patterns() -> "np.ndarray":
    import numpy as np

    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    return (bits.astype(np.float32) * 2 - 1).T.copy()  # (8, 256): ±1 for bit t of byte value b


def byte_tables(projected: "np.ndarray") -> "np.ndarray":
    """(bytes, 256) float32: row j, column b = Σ_t ±projected[8j + t] for the bits t of byte value b."""
    import numpy as np

    padded = np.zeros((len(projected) + 7) // 8 * 8, dtype=np.float32)
    padded[: len(projected)] = projected
    return padded.reshape(-1, 8) @ _byte_patterns()


def estimate(tables: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """Σ_i (h_i · q)·(±1 for bit i) for each row of packed bits (uint8, (n, bytes)): ∝ q · v / |v|."""
    import numpy as np

    width = tables.shape[0]
    offsets = np.arange(width, dtype=np.intp) * 256
    return tables.ravel()[rows[:, :width].astype(np.intp) + offsets].sum(axis=1)

"""Sign bits that measure the angle between vectors on any distribution (SimHash), and the query-side tables
that re-rank a shortlist from those bits.

Why not the components' own signs: embeddings from LLM-based models such as GME share a common offset
direction, a few dimensions carry large, nearly constant values and most of the variance lies in a few
directions. Then most components have the same sign in every photo, the bits say little, and the true
nearest photos fall out of the shortlist (recall@20 0.93, worst query 0.50 on such vectors; BENCHMARKS.md).

SimHash (Charikar, 2002): bit i is the sign of h_i · v for random hyperplanes h_i. For any two vectors,
whatever the distribution, a bit differs with probability angle(q, v) / π, so the Hamming distance
estimates the angle, i.e. the cosine that the exact step ranks by. Nothing depends on the data: no mean to
track as the library grows, nothing to refit.

The hyperplanes are the rows of a fast pseudo-random rotation, HD₃·HD₂·HD₁ (random signs D, Walsh-Hadamard
H, over the dimension padded to a power of two; Ailon & Chazelle's structured transform, the rotation of
Andoni et al.'s angular LSH): as good as dense Gaussian hyperplanes for this (measured), but with no
matrix to draw or hold (a dense 1536² one is 9.4 MB and ~80 ms to draw per process) and O(d log d) work,
computed as small matrix products (a Hadamard matrix of size 2^(a+b) is the Kronecker product of those of
sizes 2^a and 2^b). The signs come from numpy's legacy RandomState, whose stream NumPy keeps frozen across
versions, so every process computes the same bits; the index records the transform's fingerprint (meta
`bits`) and recomputes its bits if that ever differs.

The query is projected but not quantised: a shortlist is re-ranked by Σ_i (h_i · q)·(±1 for bit i of v),
which estimates q · v / |v| without the query's own rounding noise, using a table per byte of the bits.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TRANSFORM = "simhash-srht3-v1"
_SEED = 0x756D7365
_ROUNDS = 3


@functools.lru_cache(maxsize=4)
def _plan(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signs (rounds, padded), H of 2^a, H of 2^b) for a dimension: padded = 2^(a+b) >= dim."""
    import numpy as np

    bits = max(1, (dim - 1).bit_length())
    signs = np.random.RandomState(_SEED).randint(0, 2, (_ROUNDS, 1 << bits)).astype(np.float32) * 2 - 1
    return signs, _hadamard(bits // 2), _hadamard(bits - bits // 2)


def _hadamard(order: int) -> np.ndarray:
    """The orthonormal Walsh-Hadamard matrix of size 2^order (Sylvester's order)."""
    import numpy as np

    matrix = np.ones((1, 1), dtype=np.float32)
    for _ in range(order):
        matrix = np.block([[matrix, matrix], [matrix, -matrix]])
    return matrix / np.float32(np.sqrt(len(matrix)))


def fingerprint(dim: int) -> str:
    """Names the transform and checks that this process draws the same signs as the one that wrote."""
    signs = _plan(dim)[0]
    return f"{TRANSFORM}/{dim}/{int((signs > 0).sum())}:{int((signs[:, :64] > 0).sum())}"


def project(vectors: np.ndarray) -> np.ndarray:
    """h_i · v for each of the dim hyperplanes: one row per vector (or one vector)."""
    import numpy as np

    values = np.asarray(vectors, dtype=np.float32)
    dim = values.shape[-1]
    signs, left, right = _plan(dim)
    rows = values.reshape(-1, dim)
    x = np.zeros((len(rows), signs.shape[1]), dtype=np.float32)
    x[:, :dim] = rows
    for round_signs in signs:
        x *= round_signs
        # H (x) = vec(L · X · R) for X the row-major (len(L), len(R)) reshaping of x: two plain products.
        x = left @ x.reshape(len(rows), len(left), len(right)).transpose(1, 0, 2).reshape(len(left), -1)
        x = x.reshape(len(left), len(rows), len(right)).transpose(1, 0, 2).reshape(-1, len(right)) @ right
        x = x.reshape(len(rows), -1)
    return x[:, :dim].reshape(values.shape)


def pack(projected: np.ndarray) -> np.ndarray:
    """The signs as bits, packed the way sqlite-vec's bit[] columns hold them (bit i = byte i//8, bit i%8)."""
    import numpy as np

    return np.packbits(projected > 0, axis=-1, bitorder="little")


def sign_bits(vector: np.ndarray | bytes) -> bytes:
    """One vector's SimHash bits (dim bits, zero-padded to whole bytes)."""
    import numpy as np

    values = np.frombuffer(vector, dtype=np.float32) if isinstance(vector, bytes) else np.asarray(vector)
    return pack(project(values)).tobytes()


@functools.lru_cache(maxsize=1)
def _byte_patterns() -> np.ndarray:
    import numpy as np

    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    return (bits.astype(np.float32) * 2 - 1).T.copy()  # (8, 256): ±1 for bit t of byte value b


def byte_tables(projected: np.ndarray) -> np.ndarray:
    """(bytes, 256) float32: row j, column b = Σ_t ±projected[8j + t] for the bits t of byte value b."""
    import numpy as np

    padded = np.zeros((len(projected) + 7) // 8 * 8, dtype=np.float32)
    padded[: len(projected)] = projected
    return padded.reshape(-1, 8) @ _byte_patterns()


def estimate(tables: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Σ_i (h_i · q)·(±1 for bit i) for each row of packed bits (uint8, (n, bytes)): ∝ q · v / |v|."""
    import numpy as np

    width = tables.shape[0]
    offsets = np.arange(width, dtype=np.intp) * 256
    return tables.ravel()[rows[:, :width].astype(np.intp) + offsets].sum(axis=1)

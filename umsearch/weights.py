"""Model weights on the CPU with one copy in memory: precision changes and int8 in place, file pages let go.

On the CPU, `embed.load_pretrained` loads weights in the precision of the files, which transformers maps
straight from the safetensors files without copying: pages are read on first touch and shared with the
page cache. When the compute precision differs (float32 files computed in bfloat16, or an int8 decoder),
`to_dtype` and `quantize_int8` convert each tensor in place and drop the file pages it came from at once,
so the old and the new copy never coexist beyond one tensor, whatever transformers' own loader does. (With
transformers 5.24 its ``from_pretrained(dtype=...)`` measured the same peak, 2.9 GB for a bfloat16 text
query from float32 files; BENCHMARKS.md, "Load less, before and after".)

Importing this module is cheap: torch loads only when a model is loaded.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def checkpoint_dtype(path: Path) -> str | None:
    """The precision of the checkpoint's floating-point tensors, read from one shard's header (no torch)."""
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        return None
    try:
        with open(shards[0], "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size < 100 * 2**20:
                return None
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return None
    for name, entry in header.items():
        if name != "__metadata__" and isinstance(entry, dict) and entry.get("dtype") in _SAFETENSORS_DTYPES:
            return _SAFETENSORS_DTYPES[entry["dtype"]]
    return None


def to_dtype(module: Any, dtype: torch.dtype, *, skip: tuple[str, ...] = ()) -> None:
    """Convert `module`'s floating-point parameters to `dtype` one tensor at a time, dropping each source
    tensor's file pages as soon as its copy exists. Parameters whose name starts with one of `skip` keep
    their precision (and their memory mapping)."""
    import torch

    with torch.no_grad():
        for name, param in list(module.named_parameters()):
            if name.startswith(skip) or not param.is_floating_point() or param.dtype == dtype:
                continue
            old = param.data
            param.data = old.to(dtype)
            release(old)


def quantize_int8(module: Any, *, skip: tuple[str, ...] = ()) -> int:
    """Replace `module`'s Linear layers by PyTorch's dynamically quantised int8 ones (weights int8 per output
    channel, activations quantised per call; fbgemm kernels, VNNI where the CPU has it), one layer at a time,
    dropping each float weight's file pages once its int8 copy exists. Returns how many layers were replaced.

    Float32 activations in and out, so the module around the layers must compute in float32.
    """
    import torch

    quantized_linear, qconfig = _dynamic_int8()
    count = 0
    # PyTorch warns on every quantised tensor it creates that these APIs move to torchao; a user needs
    # none of that on their terminal (doctor says which path runs).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for parent_name, parent in list(module.named_modules()):
            for child_name, child in list(parent.named_children()):
                full = f"{parent_name}.{child_name}" if parent_name else child_name
                if type(child) is not torch.nn.Linear or full.startswith(skip):
                    continue
                if child.weight.dtype != torch.float32:
                    child.float()  # fbgemm packs from float32
                child.qconfig = qconfig
                setattr(parent, child_name, quantized_linear.from_float(child))
                release(child.weight.data)
                count += 1
    return count


def int8_available() -> bool:
    """Whether this PyTorch has the dynamic int8 kernels (fbgemm on x86, qnnpack on ARM)."""
    try:
        import torch

        return bool(torch.backends.quantized.supported_engines) and _dynamic_int8() is not None
    except Exception:
        return False


@cache
def _dynamic_int8() -> tuple[Any, Any]:
    # torch.ao.quantization warns at import that it moves to torchao; its eager dynamic int8 path is still
    # the one with fast CPU kernels and no compile step in torch 2.13.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization.qconfig import per_channel_dynamic_qconfig

        logging.getLogger("torch.ao").setLevel(logging.ERROR)
    return DynamicLinear, per_channel_dynamic_qconfig


def release(tensor: torch.Tensor) -> None:
    """Drop the pages of a memory-mapped checkpoint tensor from this process (they stay in the page cache).

    Only whole pages inside the tensor and inside a private file mapping of a .safetensors file are touched
    (PyTorch maps checkpoints copy-on-write; inference never writes to weights), so nothing is lost: a page
    needed again is read back from the file. Elsewhere (anonymous memory, macOS, Windows) it does nothing
    and the memory goes when the last reference does.
    """
    if not sys.platform.startswith("linux") or tensor.device.type != "cpu":
        return
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = _page_size()
    first, last = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
    if last <= first or not _in_checkpoint_mapping(first, last):
        return
    _madvise_dontneed(first, last - first)


def _in_checkpoint_mapping(start: int, end: int) -> bool:
    for low, high, perms, name in _file_mappings():
        if low <= start and end <= high:
            return name.endswith(".safetensors") and perms.endswith("p")
    return False


def _file_mappings() -> Iterator[tuple[int, int, str, str]]:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6:
                    low, high = (int(x, 16) for x in parts[0].split("-"))
                    yield low, high, parts[1], parts[5].strip()
    except OSError:
        return


@cache
def _page_size() -> int:
    import mmap

    return mmap.PAGESIZE


def _madvise_dontneed(address: int, length: int) -> None:
    import ctypes

    libc = _libc()
    if libc is not None:
        libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), 4)  # MADV_DONTNEED


@cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None

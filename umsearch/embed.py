"""Embedding models behind one interface: the Embedder protocol, runtime choice, and loading by family.

A model family (GME in gme.py, Qwen3-VL-Embedding in qwen3vl.py; families.py tells them apart) turns
text, images or both into unit-length vectors of one space. `load_embedder` finds the model's files, picks
the device/dtype/quantisation this machine can run, and hands over to the family module. Everything else in umsearch talks to the `Embedder` protocol only.

Importing this module is cheap: torch and transformers load only when a model is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ModelError, UmsearchError
from .modelfiles import first_line, resolve_model
from .runtime import RuntimeRequest
from .settings import DEFAULT_BATCH_SIZE

# bitsandbytes' quantisations; "int8-dynamic" is PyTorch's own CPU int8 (weights.quantize_int8).
BNB_QUANTS = ("nf4", "int8")

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image


@dataclass(frozen=True)
class EmbedInput:
    text: str | None = None
    image: Image.Image | None = None  # already RGB, orientation fixed by the caller
    instruction: str | None = None  # None -> default_instruction(...)


@dataclass(frozen=True)
class EmbedderInfo:
    """Recorded in the index: vectors from a different model or setting are not comparable."""

    model_id: str  # the --model string, normalised (hub id, or absolute local dir)
    dim: int
    min_image_tokens: int
    max_image_tokens: int
    device: str  # "cpu", "cuda", "mps"
    dtype: str  # "float32", "float16", "bfloat16"
    quant: str  # "none", "nf4", "int8" (bitsandbytes), "int8-dynamic" (PyTorch, CPU)
    family: str = "gme"  # "gme" or "qwen3-vl" (families.py)


class Embedder(Protocol):
    """What the indexer, the search and the session need of a model, whatever its family."""

    info: EmbedderInfo

    def embed(self, inputs: Sequence[EmbedInput], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray: ...

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray: ...

    def embed_query(
        self, text: str | None = None, image: Image.Image | None = None, instruction: str | None = None
    ) -> np.ndarray: ...

    def prepare_images(self, images: Sequence[Image.Image], *, max_image_tokens: int | None = None) -> Any:
        """Model inputs for index images: the CPU half of `embed_images`, safe to run on another thread
        while `embed_prepared` runs the model on the previous batch. `max_image_tokens` raises the budget
        ceiling for images already fitted to a larger one (screenshots and documents, see kinds.py)."""
        ...

    def text_fit(self, text: str, *, with_image: bool = False, instruction: str | None = None) -> tuple[int, int]:
        """(tokens in a query's `text`, tokens of it the model reads): more than it reads is cut, and the
        front-ends say so in one line."""
        ...

    def embed_prepared(self, batch: Any) -> np.ndarray:
        """(N, dim) float32 unit vectors for a batch from `prepare_images`."""
        ...


def choose_runtime(device: str, quant: str, dtype: str = "auto") -> tuple[str, str, str]:
    """Resolve "auto" choices to (device, dtype name, quant) for this machine.

    `dtype` is the compute (and unquantised weight) precision. On CPUs "auto" is the fastest path whose
    vectors stay close to float32 ones (cosine 0.99 or more for every input on the full-size 2B, see
    BENCHMARKS.md): bfloat16 where the CPU multiplies it natively (AVX512-BF16, AMX; cosine 0.9998), else the
    text decoder in PyTorch's dynamic int8 (cosine 0.991) with the rest in float32.
    """
    import torch

    RuntimeRequest(device, quant, dtype)  # the one check of the names; what follows checks the machine
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UmsearchError("device 'cuda' was requested but no CUDA GPU is available to PyTorch")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise UmsearchError("device 'mps' was requested but Apple MPS is not available to PyTorch")

    if quant == "auto":
        if device == "cuda":
            quant = "nf4" if _bitsandbytes_usable() else "none"
        else:
            # Where bfloat16 is native it is as fast, loads faster (nothing to quantise) and stays closer.
            native = device == "cpu" and cpu_has_native_bf16()
            quant = "int8-dynamic" if device == "cpu" and not native and cpu_int8_usable() else "none"
    elif quant == "int8-dynamic" and device == "cpu" and not cpu_int8_usable():
        raise UmsearchError("this PyTorch has no dynamic int8 kernels for this CPU: use --quant none")
    if quant in BNB_QUANTS and device == "mps":
        raise UmsearchError(
            f"quantization '{quant}' needs bitsandbytes, which does not run on Apple MPS: use --quant none"
        )
    if quant == "int8-dynamic" and device != "cpu":
        raise UmsearchError("quantization 'int8-dynamic' is PyTorch's CPU int8: use it with --device cpu")

    if dtype != "auto":
        if device == "cuda" and quant == "int8" and dtype != "float16":
            raise UmsearchError("int8 quantization computes in float16: use --dtype float16 or auto")
        if device == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            raise UmsearchError("this GPU has no bfloat16 support: use --dtype float16 or auto")
        return device, dtype, quant
    if device == "cuda" and quant == "int8":
        dtype = "float16"  # bitsandbytes' int8 matmul computes in float16 and casts anything else
    elif device == "cuda":
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    elif device == "mps":
        dtype = "float16"
    elif quant in BNB_QUANTS:
        dtype = "float32"  # bitsandbytes' CPU kernels are tested and measured in float32
    else:
        dtype = "bfloat16" if cpu_has_native_bf16() else "float32"
    return device, dtype, quant


def cpu_int8_usable() -> bool:
    """Whether PyTorch's dynamic int8 runs here (fbgemm/oneDNN on x86, qnnpack on ARM)."""
    from .weights import int8_available

    return int8_available()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), where --dtype bfloat16 is faster."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _bitsandbytes_usable() -> bool:
    # transformers' bitsandbytes integration also needs accelerate.
    return find_spec("bitsandbytes") is not None and find_spec("accelerate") is not None


def load_embedder(
    model: str,
    *,
    device: str = "auto",
    quant: str = "auto",
    dtype: str = "auto",
    min_image_tokens: int | None = None,
    max_image_tokens: int | None = None,
    max_length: int | None = None,
    dim: int | None = None,
) -> Embedder:
    """Find (or download) `model`, load it on the chosen device, and return a ready embedder of its family.

    The family comes from the model's config.json (families.py). The image budget defaults to the family's
    "best" preset, `max_length` to the family's reference; `dim` (Qwen3-VL-Embedding only) keeps the first
    `dim` values of each vector, re-normalised (MRL).
    """
    from .families import family_of_dir
    from .settings import DEFAULT_QUALITY, normalize_model_spec

    if (min_image_tokens is None) != (max_image_tokens is None):
        raise UmsearchError("give both image token limits, or neither")
    if min_image_tokens is not None and max_image_tokens is not None and not 1 <= min_image_tokens <= max_image_tokens:
        raise UmsearchError(
            f"image token limits must satisfy 1 <= min ({min_image_tokens}) <= max ({max_image_tokens})"
        )
    if max_length is not None and max_length < 1:
        raise UmsearchError(f"max length must be positive, got {max_length}")
    path = resolve_model(model)
    family = family_of_dir(path)
    if min_image_tokens is None or max_image_tokens is None:
        min_image_tokens, max_image_tokens = family.budget(DEFAULT_QUALITY)
    if dim is not None and not family.shortens:
        raise UmsearchError(
            f"--dim needs a model trained for shorter vectors (Qwen3-VL-Embedding); {model} is {family.label}"
        )
    device, dtype, quant = choose_runtime(device, quant, dtype)
    options: dict[str, Any] = {"max_length": max_length} if max_length is not None else {}
    if dim is not None:
        options["dim"] = dim
    return family.code().load(
        path,
        normalize_model_spec(model),
        device=device,
        dtype=dtype,
        quant=quant,
        min_image_tokens=min_image_tokens,
        max_image_tokens=max_image_tokens,
        **options,
    )


def load_pretrained(
    model_class: Any,
    path: Path,
    device: str,
    dtype: str,
    quant: str,
    unquantized: list[str],
    *,
    config: Any = None,
    key_mapping: dict[str, str] | None = None,
) -> Any:
    """`model_class.from_pretrained(path)` on the chosen runtime, bitsandbytes-quantised except `unquantized`
    modules, with one-line errors and a check that no weight tensor is missing.

    `config` and `key_mapping` load one part of a checkpoint (a decoder, a vision tower) into its own class:
    tensors the mapping does not bring to the class's names are left on disk. On the CPU without bitsandbytes
    the weights come in the files' own precision, memory-mapped rather than copied; the family converts them
    afterwards with weights.to_dtype (one tensor at a time, never two copies of the model).
    """
    import torch
    from transformers.utils import logging as hf_logging

    from .weights import checkpoint_dtype

    # umsearch shows its own "loading model" status; transformers' per-tensor bar would be noise.
    hf_logging.disable_progress_bar()
    bitsandbytes = quant in BNB_QUANTS
    if device == "cpu" and not bitsandbytes:
        dtype = checkpoint_dtype(path) or dtype
    torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "device_map": device}
    if config is not None:
        kwargs["config"] = config
    if key_mapping is not None:
        kwargs["key_mapping"] = key_mapping
    if bitsandbytes:
        if not _bitsandbytes_usable():
            raise ModelError(
                f"quantization '{quant}' needs the bitsandbytes and accelerate packages: "
                "pip install bitsandbytes accelerate, or use --quant none"
            )
        quiet_bitsandbytes()
        kwargs["quantization_config"] = _bnb_config(quant, torch_dtype, unquantized)
    if quant == "int8" and dtype != "float16":
        # bitsandbytes logs a warning on every int8 matmul whose input is not float16 (CPU runs float32).
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    # The base model (vision tower + text decoder), or one of them, is all an embedder uses. Loading it
    # from the *ForConditionalGeneration checkpoint never materialises lm_head (1 GB for 7B in bf16, and
    # possibly absent from the checkpoint, which the full class would then random-initialise).
    # transformers' load report would flag that skipped lm_head (and the other part's tensors) as
    # UNEXPECTED; the missing-key check below replaces it. A filter, not a level change: transformers
    # runs extra checks (with their own warnings) when that logger's level is raised.
    report_logger = logging.getLogger("transformers.modeling_utils")
    report_filter = _WarningsOff()
    report_logger.addFilter(report_filter)
    try:
        model, loading = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    except Exception as exc:  # corrupt or foreign files: one line for the user, not a traceback
        raise ModelError(f"cannot load the model in {path}: {first_line(exc)}") from None
    finally:
        report_logger.removeFilter(report_filter)
    missing = sorted(loading["missing_keys"])
    if missing:
        raise ModelError(
            f"model in {path} is missing {len(missing)} weight tensor(s), e.g. {missing[0]}: "
            "an incomplete download, or a model of another kind"
        )
    model.eval()
    return model


def quiet_bitsandbytes() -> None:
    """Hide bitsandbytes' import-time advert for the optional `kernels` package (which would fetch code from
    the hub at run time; umsearch does not want that, and the built-in CPU path works without it)."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_WARNINGS_OFF)


class _WarningsOff(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


_WARNINGS_OFF = _WarningsOff()


def _bnb_config(quant: str, compute_dtype: torch.dtype, unquantized: list[str]) -> Any:
    from transformers import BitsAndBytesConfig

    if quant == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            llm_int8_skip_modules=unquantized,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=unquantized)


def embed_in_batches(
    inputs: Sequence[Any],
    batch_size: int,
    dim: int,
    prepare: Callable[[Sequence[Any]], Any],
    forward: Callable[[Any], Any],
) -> np.ndarray:
    """(N, dim) float32 vectors for `inputs`: a family's `prepare` and `forward` over batches of `batch_size`,
    without autograd (both families embed this way)."""
    import numpy as np
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not inputs:
        return np.zeros((0, dim), dtype=np.float32)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            chunks.append(forward(prepare(inputs[start : start + batch_size])).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32, copy=False)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError other backends (MPS, older torch) raise for it."""
    import torch  # already loaded: the error came from a model call

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_accelerator_memory() -> None:
    """Hand cached blocks back after an out-of-memory error, so the halved batch has room."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()

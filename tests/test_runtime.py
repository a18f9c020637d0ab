"""Model runtime: device and quantisation policy, quality presets, the 7B layout, and indexing throughput
machinery (loader-side resizing, token-grouped batches, read-ahead overlap, out-of-memory back-off)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from umsearch import devmodel, embed
from umsearch.embed import EmbedderInfo, is_out_of_memory, load_embedder
from umsearch.errors import ModelMismatchError, UmsearchError
from umsearch.gme import GmeEmbedder, fit_image, image_token_count
from umsearch.index import Indexer, IndexSummary
from umsearch.runtime import (
    QUALITY_PRESETS,
    RuntimeRequest,
    quality_name,
    query_mismatch,
    record_runtime,
    recorded_runtime,
    resolve_budget,
)
from umsearch.settings import max_pixels
from umsearch.store import IndexSettings, Store

from .photos import write_photo

# --- Device and quantisation choice, per platform -----------------------------------------------


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch):
    """Pretend to be a machine: platform(cuda=..., bf16=..., mps=..., bnb=..., cpu_bf16=..., cpu_int8=...)."""

    def pretend(
        *,
        cuda: bool = False,
        bf16: bool = False,
        mps: bool = False,
        bnb: bool = True,
        cpu_bf16: bool = False,
        cpu_int8: bool = True,
    ) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(embed, "_bitsandbytes_usable", lambda: bnb)
        monkeypatch.setattr(embed, "cpu_has_native_bf16", lambda: cpu_bf16)
        monkeypatch.setattr(embed, "cpu_int8_usable", lambda: cpu_int8)

    return pretend


@pytest.mark.parametrize(
    "machine, expected",
    [
        (dict(cuda=True, bf16=True), ("cuda", "bfloat16", "nf4")),  # Ampere and newer
        (dict(cuda=True, bf16=False), ("cuda", "float16", "nf4")),  # Turing / Pascal consumer cards
        (dict(cuda=True, bf16=True, bnb=False), ("cuda", "bfloat16", "none")),  # no bitsandbytes: still runs
        (dict(mps=True), ("mps", "float16", "none")),  # Apple silicon
        # CPUs: bf16 where the CPU computes it natively, else PyTorch's dynamic int8 decoder around float32.
        (dict(), ("cpu", "float32", "int8-dynamic")),
        (dict(cpu_bf16=True), ("cpu", "bfloat16", "none")),  # AVX512-BF16 / AMX
        (dict(cpu_int8=False), ("cpu", "float32", "none")),  # a PyTorch without the int8 kernels
        (dict(cuda=True, mps=True, bf16=True), ("cuda", "bfloat16", "nf4")),  # CUDA wins
    ],
    ids=["cuda-bf16", "cuda-fp16", "cuda-no-bnb", "mps", "cpu", "cpu-bf16", "cpu-no-int8", "cuda-before-mps"],
)
def test_auto_picks_the_best_runtime_per_platform(platform, machine: dict, expected: tuple) -> None:
    platform(**machine)
    assert embed.choose_runtime("auto", "auto") == expected


def test_explicit_choices_override_auto(platform) -> None:
    platform(cuda=True, bf16=True)
    assert embed.choose_runtime("cpu", "auto") == ("cpu", "float32", "int8-dynamic")
    assert embed.choose_runtime("cpu", "none") == ("cpu", "float32", "none")
    assert embed.choose_runtime("cuda", "none") == ("cuda", "bfloat16", "none")
    # bitsandbytes' int8 matmul computes in float16.
    assert embed.choose_runtime("cuda", "int8") == ("cuda", "float16", "int8")
    assert embed.choose_runtime("cpu", "nf4") == ("cpu", "float32", "nf4")


def test_an_explicit_dtype_is_honoured_where_the_hardware_allows_it(platform) -> None:
    platform(cuda=True, bf16=False)
    assert embed.choose_runtime("cpu", "none", "bfloat16") == ("cpu", "bfloat16", "none")
    assert embed.choose_runtime("cuda", "nf4", "float16") == ("cuda", "float16", "nf4")
    with pytest.raises(UmsearchError, match="no bfloat16 support"):
        embed.choose_runtime("cuda", "nf4", "bfloat16")
    with pytest.raises(UmsearchError, match="int8 quantization computes in float16"):
        embed.choose_runtime("cuda", "int8", "float32")
    with pytest.raises(UmsearchError, match="unknown dtype"):
        RuntimeRequest("cpu", "none", "float8")


def test_bfloat16_on_cpu_gives_vectors_close_to_float32(tiny_model_dir: Path, tiny_embedder: GmeEmbedder) -> None:
    from .photos import picture

    half = load_embedder(str(tiny_model_dir), device="cpu", quant="none", dtype="bfloat16")
    assert (half.info.dtype, half.decoder.layers[0].mlp.up_proj.weight.dtype) == ("bfloat16", torch.bfloat16)
    inputs = [embed.EmbedInput(text="a red bike by a lake"), embed.EmbedInput(image=picture(3, (200, 150)))]
    similarity = np.sum(half.embed(inputs) * tiny_embedder.embed(inputs), axis=1)
    assert np.all(similarity > 0.98), similarity


@pytest.mark.parametrize(
    "machine, device, quant, message",
    [
        (dict(), "cuda", "auto", "no CUDA GPU"),
        (dict(), "mps", "auto", "MPS is not available"),
        (dict(mps=True), "mps", "nf4", "does not run on Apple MPS"),
    ],
)
def test_impossible_choices_are_one_line_errors(platform, machine, device, quant, message) -> None:
    platform(**machine)
    with pytest.raises(UmsearchError, match=message):
        embed.choose_runtime(device, quant)


def test_unknown_device_or_quant_is_refused_before_loading_anything() -> None:
    with pytest.raises(UmsearchError, match="unknown device 'tpu'"):
        RuntimeRequest("tpu", "auto")
    with pytest.raises(UmsearchError, match="unknown quantization 'fp8'"):
        RuntimeRequest("auto", "fp8")


def test_nf4_uses_double_quantisation_and_keeps_the_vision_tower_out() -> None:
    config = embed._bnb_config("nf4", torch.bfloat16, ["visual"])
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert config.llm_int8_skip_modules == ["visual"]


# --- 7B layout: untied lm_head in the checkpoint, dimension from the config -----------------------


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model shaped like the 7B checkpoint: untied embeddings (so lm_head.weight is in the files)
    and a different hidden size (96) than the 2B-like tiny model (64)."""
    arch = dict(devmodel._ARCH["tiny"], hidden_size=96, mrope_section=[4, 4, 4], tie_word_embeddings=False)
    saved = devmodel._ARCH["tiny"]
    devmodel._ARCH["tiny"] = arch
    try:
        return devmodel.build_model_dir(tmp_path_factory.mktemp("wide-gme"), "tiny", seed=3)
    finally:
        devmodel._ARCH["tiny"] = saved


def test_lm_head_is_in_the_checkpoint_but_never_loaded(wide_model_dir: Path) -> None:
    import json

    names = json.loads((wide_model_dir / "model.safetensors.index.json").read_text())["weight_map"]
    assert "lm_head.weight" in names
    wide = load_embedder(str(wide_model_dir), device="cpu", quant="none", dtype="float32")
    # The decoder and the vision tower have no lm_head: 1 GB of the 7B never reaches memory.
    for part in (wide.decoder, wide.visual):
        assert not hasattr(part, "lm_head")
        assert not any(name.startswith("lm_head") for name, _ in part.named_parameters())


def test_dimension_comes_from_the_config_and_indexes_never_mix(
    wide_model_dir: Path, tiny_model_dir: Path, tiny_embedder: GmeEmbedder, tmp_path: Path
) -> None:
    wide = load_embedder(str(wide_model_dir), device="cpu", quant="none", dtype="float32")
    assert wide.info.dim == 96 and wide.embed_query("a dog").shape == (96,)
    assert tiny_embedder.info.dim == 64
    with Store.open(tmp_path / "small.db") as store:
        store.bind(IndexSettings(tiny_embedder.info.model_id, 64, 256, 1280))
        with pytest.raises(ModelMismatchError, match="was built with model"):
            store.check_model(wide.info.model_id)
        with pytest.raises(ModelMismatchError):
            store.bind(IndexSettings(wide.info.model_id, 96, 256, 1280))


def test_real_2b_and_7b_configs_give_1536_and_3584_dimensions(tmp_path: Path) -> None:
    from transformers import AutoConfig

    for size, dim in (("2b", 1536), ("7b", 3584)):
        folder = tmp_path / size
        folder.mkdir()
        special = {t: i for i, t in enumerate(devmodel.SPECIAL_TOKENS)}
        arch = dict(devmodel._ARCH[size])
        devmodel._write_json(folder / "config.json", devmodel._config(arch, special))
        assert AutoConfig.from_pretrained(folder).text_config.hidden_size == dim


# --- Quality presets --------------------------------------------------------------------------------


def test_quality_presets_map_to_token_budgets() -> None:
    assert QUALITY_PRESETS == {"fast": (128, 256), "balanced": (256, 576), "best": (256, 1280)}
    assert resolve_budget(None) == (256, 1280)  # the reference budget by default
    assert resolve_budget(None, "fast") == (128, 256)
    assert resolve_budget(None, "fast", max_tokens=320) == (128, 320)
    index = IndexSettings("m", 4, 256, 576)
    assert resolve_budget(index) == (256, 576)  # an index keeps its own budget
    assert resolve_budget(index, "best") == (256, 1280)
    with pytest.raises(UmsearchError, match="unknown quality"):
        resolve_budget(None, "ultra")
    with pytest.raises(UmsearchError, match="larger than"):
        resolve_budget(None, "fast", min_tokens=400)
    assert [quality_name(*b) for b in QUALITY_PRESETS.values()] == list(QUALITY_PRESETS)
    assert quality_name(100, 200) == "custom"


def info_like(base: EmbedderInfo, **changes) -> EmbedderInfo:
    return EmbedderInfo(**{**vars(base), **changes})


def test_runtime_is_recorded_and_a_query_with_other_settings_is_told(
    tiny_embedder: GmeEmbedder, tmp_path: Path
) -> None:
    info = tiny_embedder.info
    with Store.open(tmp_path / "i.db") as store:
        store.bind(IndexSettings(info.model_id, info.dim, info.min_image_tokens, info.max_image_tokens))
        record_runtime(store, info)
        recorded = recorded_runtime(store)
        assert (recorded.device, recorded.dtype, recorded.quant, recorded.quality) == ("cpu", "float32", "none", "best")
        assert query_mismatch(store, info) is None
        fast = info_like(info, min_image_tokens=128, max_image_tokens=256)
        message = query_mismatch(store, fast)
        assert "128-256" in message and "index: 256-1280" in message and "\n" not in message
        assert query_mismatch(store, fast, has_image=False) is None  # text queries have no image budget
        assert "quantization nf4 (index: none)" in query_mismatch(store, info_like(info, quant="nf4"))
        assert "bfloat16 (index: float32)" in query_mismatch(store, info_like(info, dtype="bfloat16"))


# --- Loader-side resizing gives the very same vectors -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("size", [(640, 480), (90, 60), (3000, 200), (1000, 1000)])
def test_fitting_on_the_loader_thread_changes_nothing(tiny_embedder: GmeEmbedder, size: tuple[int, int]) -> None:
    from .photos import picture

    image = picture(7, size)
    low, high = tiny_embedder.info.min_image_tokens, tiny_embedder.info.max_image_tokens
    fitted = fit_image(image, low, high)
    assert fitted.width * fitted.height <= max_pixels(high)
    tokens = image_token_count(*image.size, low, high)
    assert tokens == (fitted.width // 28) * (fitted.height // 28)
    batch = tiny_embedder.prepare_images([fitted])
    assert int(batch["image_grid_thw"].prod() // 4) == tokens
    np.testing.assert_array_equal(tiny_embedder.embed_images([fitted]), tiny_embedder.embed_images([image]))


# --- The indexing pipeline ----------------------------------------------------------------------------


def photo_folder(root: Path, count: int) -> Path:
    # Sizes vary so token counts vary (and are deliberately unsorted on disk).
    sizes = [(96, 64), (640, 480), (200, 150), (900, 700), (120, 120), (500, 260)]
    for i in range(count):
        write_photo(root / f"p{i:03d}.png", seed=i, size=sizes[i % len(sizes)])
    return root


class Spy:
    """Wraps the real embedder: records batch token counts and can fail or block the model call."""

    def __init__(self, real: GmeEmbedder) -> None:
        self.real = real
        self.info = real.info
        self.batches: list[list[int]] = []
        self.fail_above: int | None = None  # raise CUDA's out-of-memory error for bigger batches
        self.on_call = None

    def prepare_images(self, images):
        return self.real.prepare_images(images)

    def embed_prepared(self, batch):
        rows = int(batch["input_ids"].shape[0])
        if self.on_call is not None:
            self.on_call(len(self.batches))
        if self.fail_above is not None and rows > self.fail_above:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {rows} GiB")
        self.batches.append((batch["image_grid_thw"].prod(-1) // 4).tolist())
        return self.real.embed_prepared(batch)

    def embed_images(self, images, batch_size=8):
        batch = self.real.prepare_images(images)
        return self.embed_prepared(batch)


def run_index(store: Store, embedder, root: Path, **options) -> IndexSummary:
    info = embedder.info
    budget = (info.min_image_tokens, info.max_image_tokens)
    indexer = Indexer(store, lambda: embedder, max_pixels=max_pixels(budget[1]), image_budget=budget, **options)
    return indexer.index([str(root)])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_batches_group_similar_token_counts_and_vectors_match_one_by_one(
    tiny_embedder: GmeEmbedder, tmp_path: Path
) -> None:
    root = photo_folder(tmp_path / "photos", 12)
    spy = Spy(tiny_embedder)
    with Store.open(tmp_path / "i.db") as store:
        summary = run_index(store, spy, root, batch_size=3, window=12, workers=2)
        assert summary.added == 12 and summary.failed == 0
        flat = [t for batch in spy.batches for t in batch]
        assert flat == sorted(flat), "one window, sorted by visual tokens, cut into batches"
        assert all(len(batch) == 3 for batch in spy.batches)
        from umsearch.imageload import load_image

        for row in store.iter_files():
            alone = tiny_embedder.embed_images([load_image(row.path, max_pixels(1280)).image])[0]
            assert float(store.vector(row.id) @ alone) > 0.9999
        assert recorded_runtime(store).quality == "best"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_read_ahead_decodes_the_next_window_while_the_model_runs(tiny_embedder: GmeEmbedder, tmp_path: Path) -> None:
    root = photo_folder(tmp_path / "photos", 8)
    spy = Spy(tiny_embedder)
    loaded = threading.Semaphore(0)
    indexer_ref: dict = {}

    def model_call(index: int) -> None:
        if index == 0:
            # The first window is 4 photos; the other 4 must be decoded during this very call.
            for _ in range(4):
                assert loaded.acquire(timeout=60), "the loader threads did not read ahead while the model ran"

    spy.on_call = model_call
    with Store.open(tmp_path / "i.db") as store:
        indexer = Indexer(
            store, lambda: spy, max_pixels=max_pixels(1280), image_budget=(256, 1280), batch_size=4, window=4, workers=2
        )
        original = indexer._load
        count = {"n": 0}

        def counting_load(job):
            result = original(job)
            count["n"] += 1
            if count["n"] > 4:
                loaded.release()
            return result

        indexer._load = counting_load
        indexer_ref["i"] = indexer
        assert indexer.index([str(root)]).added == 8


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_out_of_memory_halves_the_batch_and_drops_nothing(tiny_embedder: GmeEmbedder, tmp_path: Path) -> None:
    root = photo_folder(tmp_path / "photos", 10)
    spy = Spy(tiny_embedder)
    spy.fail_above = 2
    with Store.open(tmp_path / "i.db") as store:
        indexer = Indexer(
            store, lambda: spy, max_pixels=max_pixels(1280), image_budget=(256, 1280), batch_size=8, window=8, workers=2
        )
        summary = indexer.index([str(root)])
        assert (summary.added, summary.failed) == (10, 0)
        assert indexer.batch_size == 2, "later batches start at the size that fitted"
        assert all(len(batch) <= 2 for batch in spy.batches)
        assert store.counts().indexed == 10


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_out_of_memory_on_a_single_photo_stops_the_run_without_recording_a_failure(
    tiny_embedder: GmeEmbedder, tmp_path: Path
) -> None:
    root = photo_folder(tmp_path / "photos", 3)
    spy = Spy(tiny_embedder)
    spy.fail_above = 0
    with Store.open(tmp_path / "i.db") as store:
        with pytest.raises(UmsearchError, match="out of memory embedding .*--quality fast"):
            run_index(store, spy, root, batch_size=2, window=2, workers=1)
        assert store.counts().failed == 0  # not marked failed: the next run tries again
        spy.fail_above = None
        assert run_index(store, spy, root, batch_size=2).added == 3


def test_out_of_memory_is_recognised_across_backends() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))

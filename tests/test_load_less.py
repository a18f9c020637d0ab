"""Load less (issue 11 item 6) and the CPU paths (issue 17 item 5): a text query loads only the decoder, the
vision tower arrives with the first image, weights are never held twice, and PyTorch's dynamic int8 runs the
decoder on CPUs. All through the real loading path, on the tiny random model in the hub layout."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from umsearch import embed, weights
from umsearch.embed import EmbedInput, load_embedder
from umsearch.errors import ModelError, UmsearchError
from umsearch.gme import GmeEmbedder
from umsearch.qwen3vl import Qwen3VLEmbedder

from .photos import picture

ITEMS = [
    EmbedInput(text="a cat asleep on a red sofa"),
    EmbedInput(text="雪山和蓝天"),
    EmbedInput(image=picture(1, (200, 150))),
    EmbedInput(image=picture(2, (90, 300))),
    EmbedInput(text="at night", image=picture(3, (160, 160))),
]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


def test_a_text_query_loads_only_the_decoder(tiny_model_dir: Path, tiny_embedder: GmeEmbedder) -> None:
    lazy = load_embedder(str(tiny_model_dir), device="cpu", quant="none", dtype="float32")
    assert not lazy.visual_loaded
    text = lazy.embed_query("a red bike by a lake")
    assert not lazy.visual_loaded, "a text query must not load the vision tower"
    np.testing.assert_array_equal(text, tiny_embedder.embed_query("a red bike by a lake"))

    vectors = lazy.embed(ITEMS)
    assert lazy.visual_loaded
    # Same vectors as an embedder whose vision tower was loaded long ago: loading order changes nothing.
    np.testing.assert_array_equal(vectors, tiny_embedder.embed(ITEMS))


def test_the_vision_tower_is_loaded_once_under_concurrent_first_images(tiny_model_dir: Path) -> None:
    import threading

    lazy = load_embedder(str(tiny_model_dir), device="cpu", quant="none", dtype="float32")
    loads = []
    real = lazy._load_visual

    def counting() -> object:
        loads.append(1)
        return real()

    lazy._load_visual = counting
    threads = [threading.Thread(target=lazy.embed_query, kwargs={"image": picture(i)}) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1


def test_a_vision_tower_whose_files_were_removed_since_the_start_is_one_line(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    lazy = load_embedder(str(model), device="cpu", quant="none", dtype="float32")
    lazy.embed_query("loaded: the text decoder only")
    shutil.rmtree(model)
    with pytest.raises(ModelError, match=f"model directory {model} does not exist"):
        lazy.embed_query(image=picture(1))
    assert lazy.embed_query("text still works").shape == (lazy.info.dim,)


def test_a_checkpoint_saved_by_transformers_5_loads_the_same(
    tiny_model_dir: Path, tiny_embedder: GmeEmbedder, tmp_path: Path
) -> None:
    """Re-saved checkpoints name tensors model.language_model.* and model.visual.*; the hub's GME repos use
    the older model.* and visual.*. Both load into the same modules."""
    renamed = tmp_path / "v5-layout"
    shutil.copytree(tiny_model_dir, renamed)
    index_path = renamed / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    new_map = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors = load_file(renamed / shard)
        moved = {}
        for name, tensor in tensors.items():
            if name.startswith("visual."):
                name = "model." + name
            elif name.startswith("model."):
                name = "model.language_model." + name[len("model.") :]
            moved[name] = tensor.clone()
        save_file(moved, renamed / shard, metadata={"format": "pt"})
        new_map.update(dict.fromkeys(moved, shard))
    index_path.write_text(json.dumps({"metadata": index["metadata"], "weight_map": new_map}))
    assert "model.language_model.layers.0.mlp.up_proj.weight" in new_map

    again = load_embedder(str(renamed), device="cpu", quant="none", dtype="float32")
    np.testing.assert_array_equal(again.embed(ITEMS), tiny_embedder.embed(ITEMS))


def test_the_checkpoint_precision_is_read_from_the_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert weights.checkpoint_dtype(tiny_model_dir) == "float32"
    save_file({"w": torch.zeros(4, dtype=torch.bfloat16)}, tmp_path / "model.safetensors")
    assert weights.checkpoint_dtype(tmp_path) == "bfloat16"
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)  # garbage header: unknown, not a crash
    assert weights.checkpoint_dtype(tmp_path) is None


@linux_only
def test_float32_weights_are_used_straight_from_the_files(tiny_model_dir: Path) -> None:
    same = load_embedder(str(tiny_model_dir), device="cpu", quant="none", dtype="float32")
    same.embed(ITEMS)
    for name, param in [*same.decoder.named_parameters(), *same.visual.named_parameters()]:
        assert _memory_mapped(param), f"{name} was copied instead of memory-mapped"


@linux_only
def test_converting_keeps_the_token_table_mapped_and_drops_each_source_copy(
    tiny_model_dir: Path, tiny_embedder: GmeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[int] = []
    real_release = weights.release
    monkeypatch.setattr(weights, "release", lambda tensor: (released.append(tensor.numel()), real_release(tensor)))

    half = load_embedder(str(tiny_model_dir), device="cpu", quant="none", dtype="bfloat16")
    table = half.decoder.embed_tokens.weight
    assert table.dtype == torch.float32 and _memory_mapped(table)
    converted = [p for n, p in half.decoder.named_parameters() if not n.startswith("embed_tokens.")]
    assert all(p.dtype == torch.bfloat16 and not _memory_mapped(p) for p in converted)
    # Every converted tensor's float32 source was released right after its copy was made.
    assert sorted(released) == sorted(p.numel() for p in converted)

    similarity = np.sum(half.embed(ITEMS) * tiny_embedder.embed(ITEMS), axis=1)
    assert half.visual.dtype == torch.bfloat16
    assert np.all(similarity > 0.98), similarity


@linux_only
def test_release_drops_file_pages_and_the_data_reads_back(tmp_path: Path) -> None:
    size_mb = 32
    expected = torch.arange(size_mb * 2**18, dtype=torch.float32)
    save_file({"w": expected}, tmp_path / "big.safetensors")
    mapped = load_file(tmp_path / "big.safetensors")["w"]
    assert _memory_mapped(mapped)
    mapped.sum()  # touch every page
    before = _rss_file_mb()
    weights.release(mapped)
    dropped = before - _rss_file_mb()
    assert dropped >= size_mb * 0.9, f"only {dropped} MB of {size_mb} MB left the process"
    assert torch.equal(mapped, expected)  # read back from the file on the next touch


@linux_only
def test_release_leaves_ordinary_memory_alone() -> None:
    ordinary = torch.arange(2**22, dtype=torch.float32)
    weights.release(ordinary)
    assert torch.equal(ordinary, torch.arange(2**22, dtype=torch.float32))


def test_int8_dynamic_quantises_the_decoder_only_and_keeps_vectors_close(
    tiny_model_dir: Path, tiny_embedder: GmeEmbedder
) -> None:
    if not weights.int8_available():
        pytest.skip("this PyTorch has no dynamic int8 kernels")
    int8 = load_embedder(str(tiny_model_dir), device="cpu", quant="int8-dynamic", dtype="float32")
    assert (int8.info.quant, int8.info.dtype) == ("int8-dynamic", "float32")
    quantized = [
        n for n, m in int8.decoder.named_modules() if type(m).__name__ == "Linear" and "dynamic" in type(m).__module__
    ]
    # 7 projections per layer (q, k, v, o, gate, up, down), 2 layers in the tiny model.
    assert len(quantized) == 14
    vectors = int8.embed(ITEMS)
    assert not any("quantized" in type(m).__module__ for m in int8.visual.modules())
    # Measured on the tiny model: 0.993 or better (the full-size 2B: see BENCHMARKS.md).
    similarity = np.sum(vectors * tiny_embedder.embed(ITEMS), axis=1)
    assert np.all(similarity > 0.98), similarity
    assert np.array_equal(np.argmax(vectors @ tiny_embedder.embed(ITEMS).T, axis=1), np.arange(len(ITEMS)))


@pytest.mark.slow
def test_a_qwen3_model_on_the_cpu_is_converted_in_place(tiny_qwen3_dir: Path, tiny_qwen3: Qwen3VLEmbedder) -> None:
    """Qwen3-VL loads through the same memory-mapped path: the files' float32 becomes the asked precision, and
    on the int8 path the text decoder's linear layers (not the vision tower's) become PyTorch's int8 ones."""
    half = load_embedder(str(tiny_qwen3_dir), device="cpu", quant="none", dtype="bfloat16")
    assert half.info.dtype == "bfloat16"
    assert {p.dtype for p in half.model.parameters() if p.is_floating_point()} == {torch.bfloat16}
    reference = tiny_qwen3.embed(ITEMS)
    assert np.all(np.sum(half.embed(ITEMS) * reference, axis=1) > 0.98)
    if not weights.int8_available():
        return
    int8 = load_embedder(str(tiny_qwen3_dir), device="cpu", quant="int8-dynamic", dtype="float32")
    assert (int8.info.quant, int8.info.dtype) == ("int8-dynamic", "float32")
    dynamic = [n for n, m in int8.model.named_modules() if "dynamic" in type(m).__module__]
    assert dynamic and all(n.startswith("language_model.") for n in dynamic)
    assert not any(type(m) is torch.nn.Linear for m in int8.model.language_model.modules())
    vectors = int8.embed(ITEMS)
    assert np.all(np.sum(vectors * reference, axis=1) > 0.98)
    assert np.array_equal(np.argmax(vectors @ reference.T, axis=1), np.arange(len(ITEMS)))


def test_int8_dynamic_is_a_cpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(UmsearchError, match="CPU int8"):
        embed.choose_runtime("mps", "int8-dynamic")
    assert embed.choose_runtime("cpu", "int8-dynamic", "float32") == ("cpu", "float32", "int8-dynamic")


def _memory_mapped(tensor: torch.Tensor) -> bool:
    start = tensor.data_ptr()
    return weights._in_checkpoint_mapping(start, start + max(tensor.numel() * tensor.element_size(), 1))


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")

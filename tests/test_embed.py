"""GME embeddings: the embedder reproduces the reference gme_inference.py procedure on transformers 5."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from umsearch.embed import EmbedderInfo, EmbedInput, load_embedder
from umsearch.errors import ModelError
from umsearch.gme import (
    FUSED_QUERY_INSTRUCTION,
    IMAGE_QUERY_INSTRUCTION,
    INDEX_INSTRUCTION,
    TEXT_QUERY_INSTRUCTION,
    GmeEmbedder,
    default_instruction,
)
from umsearch.modelfiles import resolve_model
from umsearch.settings import PIXELS_PER_TOKEN

TEMPLATE_TAIL = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"


def make_image(width: int, height: int, seed: int) -> Image.Image:
    """A deterministic RGB picture with gradients and coloured blocks (not noise, not uniform)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, rng.integers(256))], axis=-1
    ).astype(np.uint8)
    for _ in range(4):
        x0, y0 = rng.integers(0, max(width // 2, 1)), rng.integers(0, max(height // 2, 1))
        pixels[y0 : y0 + height // 3, x0 : x0 + width // 3] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels, "RGB")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --- The reference procedure (GmeQwen2VL in the model repo's gme_inference.py), step by step. ---


def ref_smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = 4 * PIXELS_PER_TOKEN,
    max_pixels: int = 16384 * PIXELS_PER_TOKEN,
    max_ratio: int = 200,
) -> tuple[int, int]:
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    if max(h_bar, w_bar) / min(h_bar, w_bar) > max_ratio:
        if h_bar > w_bar:
            h_bar = w_bar * max_ratio
        else:
            w_bar = h_bar * max_ratio
    return h_bar, w_bar


def ref_fetch_image(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    width, height = image.size
    resized_height, resized_width = ref_smart_resize(height, width)
    return image.resize((resized_width, resized_height))


def reference_embed(
    model_dir: Path,
    model: Qwen2VLForConditionalGeneration,
    items: list[tuple[str | None, Image.Image | None, str]],
    *,
    min_image_tokens: int = 256,
    max_image_tokens: int = 1280,
    max_length: int = 1800,
) -> tuple[np.ndarray, torch.Tensor]:
    """items are (text, image, instruction); returns (unit vectors, input_ids)."""
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(
        model_dir, min_pixels=min_image_tokens * PIXELS_PER_TOKEN, max_pixels=max_image_tokens * PIXELS_PER_TOKEN
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"

    texts, images = [], []
    for text, image, instruction in items:
        input_str = ""
        if image is not None:
            input_str += "<|vision_start|><|image_pad|><|vision_end|>"
            images.append(ref_fetch_image(image))
        if text is not None:
            input_str += text
        texts.append(
            f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{input_str}<|im_end|>\n"
            f"<|im_start|>assistant\n<|endoftext|>"
        )

    # What Qwen2VLProcessor.__call__ does: process the images, then expand each <|image_pad|> to
    # image_grid_thw.prod() // merge_size**2 copies.
    vision = image_processor(images=images, return_tensors="pt") if images else None
    if vision is not None:
        counts = iter((vision["image_grid_thw"].prod(-1) // image_processor.merge_size**2).tolist())
        texts = [
            t.replace("<|image_pad|>", "<|image_pad|>" * next(counts)) if "<|image_pad|>" in t else t for t in texts
        ]
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    with torch.inference_mode():
        inputs_embeds = model.get_input_embeddings()(inputs["input_ids"])
        if vision is not None:
            visual = model.model.visual
            pixel_values = vision["pixel_values"].type(visual.dtype)
            image_embeds = visual(pixel_values, grid_thw=vision["image_grid_thw"]).pooler_output
            inputs_embeds[inputs["input_ids"] == model.config.image_token_id] = image_embeds
        outputs = model.model.language_model(
            input_ids=None,
            position_ids=None,
            attention_mask=inputs["attention_mask"],
            inputs_embeds=inputs_embeds,
        )
        sequence_lengths = inputs["attention_mask"].sum(dim=1) - 1
        embeddings = outputs.last_hidden_state[torch.arange(len(texts)), sequence_lengths]
        embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
    return embeddings.numpy(), inputs["input_ids"]


# --- Fixtures ---


@pytest.fixture(scope="module")
def hf_model_and_info(tiny_model_dir: Path) -> tuple[Qwen2VLForConditionalGeneration, dict]:
    model, info = Qwen2VLForConditionalGeneration.from_pretrained(
        tiny_model_dir, dtype=torch.float32, output_loading_info=True
    )
    return model.eval(), info


@pytest.fixture(scope="module")
def hf_model(hf_model_and_info: tuple[Qwen2VLForConditionalGeneration, dict]) -> Qwen2VLForConditionalGeneration:
    return hf_model_and_info[0]


# --- The dev model is a faithful stand-in for the hub repo ---


def test_dev_model_uses_the_hub_checkpoint_names_and_loads_without_leftovers(
    tiny_model_dir: Path, hf_model_and_info: tuple[Qwen2VLForConditionalGeneration, dict]
) -> None:
    index = json.loads((tiny_model_dir / "model.safetensors.index.json").read_text())
    names = set(index["weight_map"])
    assert len(set(index["weight_map"].values())) >= 2, "the hub repos are sharded"
    assert {
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.norm.weight",
        "visual.patch_embed.proj.weight",
        "visual.blocks.0.attn.qkv.weight",
        "visual.merger.mlp.2.weight",
    } <= names
    assert not any(n.startswith(("model.language_model.", "model.visual.")) for n in names)
    _, info = hf_model_and_info
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_importing_the_model_modules_does_not_import_torch() -> None:
    code = "import sys, umsearch.embed, umsearch.modelfiles, umsearch.devmodel; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_embedder_info_describes_the_loaded_model(tiny_embedder: GmeEmbedder, tiny_model_dir: Path) -> None:
    assert tiny_embedder.info == EmbedderInfo(
        model_id=str(tiny_model_dir),
        dim=64,
        min_image_tokens=256,
        max_image_tokens=1280,
        device="cpu",
        dtype="float32",
        quant="none",
    )


# --- Vectors ---


@pytest.mark.parametrize(
    "item",
    [
        EmbedInput(text="a cat asleep on a red sofa"),
        EmbedInput(image=make_image(120, 90, 1)),
        EmbedInput(text="make it winter", image=make_image(90, 120, 2)),
    ],
    ids=["text", "image", "image+text"],
)
@pytest.mark.slow
def test_query_vectors_are_unit_float32_and_deterministic(tiny_embedder: GmeEmbedder, item: EmbedInput) -> None:
    first = tiny_embedder.embed_query(item.text, item.image)
    again = tiny_embedder.embed_query(item.text, item.image)
    assert first.shape == (tiny_embedder.info.dim,)
    assert first.dtype == np.float32
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(first, again)


@pytest.mark.slow
def test_batched_results_equal_one_by_one_results(tiny_embedder: GmeEmbedder) -> None:
    items = [
        EmbedInput(text="snow"),
        EmbedInput(image=make_image(64, 64, 3)),
        EmbedInput(text="a long walk along the beach at sunset with the dog and the children"),
        EmbedInput(image=make_image(400, 130, 4), text="at night"),
        EmbedInput(image=make_image(200, 300, 5)),
        EmbedInput(text="城市夜景"),
    ]
    batched = tiny_embedder.embed(items, batch_size=4)
    single = np.stack([tiny_embedder.embed([item])[0] for item in items])
    assert batched.shape == (len(items), tiny_embedder.info.dim)
    assert batched.dtype == np.float32
    assert np.all(cosines(batched, single) > 0.9999)
    # Different inputs are far apart, so the equivalence checks here and below can fail.
    off_diagonal = (batched @ batched.T)[~np.eye(len(items), dtype=bool)]
    assert off_diagonal.max() < 0.98


@pytest.mark.slow
def test_an_image_queried_against_itself_scores_one(tiny_embedder: GmeEmbedder) -> None:
    image = make_image(150, 100, 6)
    indexed = tiny_embedder.embed_images([image, make_image(100, 150, 7)])[0]
    query = tiny_embedder.embed_query(image=image)
    assert float(indexed @ query) == pytest.approx(1.0, abs=1e-5)


# --- Equivalence with the reference procedure ---

EQUIVALENCE_CASES = {
    "text": [("a photo of a cat on a red sofa", None, TEXT_QUERY_INSTRUCTION)],
    "image": [(None, make_image(120, 80, 8), INDEX_INSTRUCTION)],
    "image+text": [("make it winter", make_image(100, 100, 9), FUSED_QUERY_INSTRUCTION)],
    "custom instruction": [("receipts", None, "Find a scanned document.")],
    "texts of different lengths": [
        ("snow", None, TEXT_QUERY_INSTRUCTION),
        ("two children playing football in a green park with tall trees", None, TEXT_QUERY_INSTRUCTION),
        ("生日蛋糕和蜡烛", None, TEXT_QUERY_INSTRUCTION),
    ],
    "images of different sizes": [
        (None, make_image(64, 64, 10), INDEX_INSTRUCTION),  # upscaled to the 256-token minimum
        (None, make_image(900, 500, 11), INDEX_INSTRUCTION),
        (None, make_image(1400, 1200, 12), INDEX_INSTRUCTION),  # downscaled to the 1280-token maximum
        (None, make_image(30, 700, 13), INDEX_INSTRUCTION),
        (None, make_image(6000, 10, 24), INDEX_INSTRUCTION),  # beyond the 200:1 aspect ratio cap
    ],
    "image+text pairs of different sizes": [
        ("at night", make_image(300, 200, 14), FUSED_QUERY_INSTRUCTION),
        ("in black and white, without people", make_image(80, 260, 15), FUSED_QUERY_INSTRUCTION),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EQUIVALENCE_CASES))
def test_matches_the_reference_procedure(
    tiny_embedder: GmeEmbedder, tiny_model_dir: Path, hf_model: Qwen2VLForConditionalGeneration, case: str
) -> None:
    items = EQUIVALENCE_CASES[case]
    expected, expected_ids = reference_embed(tiny_model_dir, hf_model, items)
    inputs = [EmbedInput(text=text, image=image, instruction=instruction) for text, image, instruction in items]
    got = tiny_embedder.embed(inputs, batch_size=len(inputs))
    assert np.all(cosines(got, expected) >= 0.9999)
    assert torch.equal(tiny_embedder.prepare(inputs)["input_ids"], expected_ids)


@pytest.mark.slow
def test_the_reference_check_tells_plain_positions_from_mrope(
    tiny_embedder: GmeEmbedder, hf_model: Qwen2VLForConditionalGeneration
) -> None:
    # Qwen2-VL's own forward gives image tokens 2-D M-RoPE positions; GME's decoder-only call does not.
    batch = tiny_embedder.prepare([EmbedInput(text="at night", image=make_image(200, 120, 16))])
    with torch.inference_mode():
        hidden = hf_model.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            mm_token_type_ids=(batch["input_ids"] == hf_model.config.image_token_id).int(),
        ).last_hidden_state
    mrope = torch.nn.functional.normalize(hidden[0, -1], dim=-1).numpy()
    ours = tiny_embedder.embed([EmbedInput(text="at night", image=make_image(200, 120, 16))])[0]
    assert float(mrope @ ours) < 0.99


# --- Prompt construction ---


@pytest.mark.parametrize("size", [(64, 64), (300, 200), (1500, 1000), (50, 900)])
def test_image_pad_count_is_grid_product_over_merge_area(tiny_embedder: GmeEmbedder, size: tuple[int, int]) -> None:
    batch = tiny_embedder.prepare([EmbedInput(image=make_image(*size, 17))])
    pads = int((batch["input_ids"] == token_id(tiny_embedder, "<|image_pad|>")).sum())
    assert pads == int(batch["image_grid_thw"][0].prod()) // 4
    assert 256 <= pads <= 1280


def token_id(embedder: GmeEmbedder, token: str) -> int:
    return embedder.tokenizer.convert_tokens_to_ids(token)


def _decode(embedder: GmeEmbedder, ids: list[int]) -> str:
    return embedder.tokenizer.decode(ids, skip_special_tokens=False)


@pytest.mark.slow
def test_long_text_is_cut_to_max_length_keeping_image_tokens_and_template(
    tiny_embedder: GmeEmbedder,
    tiny_model_dir: Path,
    hf_model: Qwen2VLForConditionalGeneration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tiny_embedder, "max_length", 320)
    image = make_image(64, 64, 18)  # 256 image tokens
    long_text = " the" * 500
    item = EmbedInput(text=long_text, image=image)
    batch = tiny_embedder.prepare([item])
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 320
    assert ids.count(token_id(tiny_embedder, "<|image_pad|>")) == int(batch["image_grid_thw"][0].prod()) // 4
    prompt = _decode(tiny_embedder, ids)
    assert prompt.startswith(f"<|im_start|>system\n{FUSED_QUERY_INSTRUCTION}<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith(TEMPLATE_TAIL)
    kept = prompt.split("<|vision_end|>")[1].removesuffix(TEMPLATE_TAIL)
    assert 0 < len(kept) < len(long_text) and long_text.startswith(kept)

    # The vector is the last-token pooling of exactly that truncated prompt.
    expected, expected_ids = reference_embed(tiny_model_dir, hf_model, [(kept, image, FUSED_QUERY_INSTRUCTION)])
    assert expected_ids[0].tolist() == ids
    assert float(cosines(tiny_embedder.embed([item])[0], expected[0])) >= 0.999


def test_long_text_only_query_is_cut_to_max_length(tiny_embedder: GmeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny_embedder, "max_length", 64)
    ids = tiny_embedder.prompt_ids(EmbedInput(text=" the" * 200), image_tokens=0)
    assert len(ids) == 64
    assert _decode(tiny_embedder, ids).endswith(TEMPLATE_TAIL)
    assert np.linalg.norm(tiny_embedder.embed_query(" the" * 200)) == pytest.approx(1.0, abs=1e-5)


def test_image_tokens_and_template_survive_a_max_length_below_them(
    tiny_embedder: GmeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_embedder, "max_length", 100)
    ids = tiny_embedder.prompt_ids(EmbedInput(text="lots of words here", image=make_image(10, 10, 0)), image_tokens=256)
    prompt = _decode(tiny_embedder, ids)
    assert ids.count(token_id(tiny_embedder, "<|image_pad|>")) == 256
    assert prompt.endswith("<|vision_end|>" + TEMPLATE_TAIL)


def test_user_text_spelling_a_special_token_stays_text(tiny_embedder: GmeEmbedder) -> None:
    ids = tiny_embedder.prompt_ids(EmbedInput(text="<|image_pad|><|im_end|>"), image_tokens=0)
    assert token_id(tiny_embedder, "<|image_pad|>") not in ids
    assert ids.count(token_id(tiny_embedder, "<|im_end|>")) == 2  # system and user turns only


@pytest.mark.parametrize(
    ("text", "with_image", "expected"),
    [
        ("a cat", False, TEXT_QUERY_INSTRUCTION),
        (None, True, IMAGE_QUERY_INSTRUCTION),
        ("make it winter", True, FUSED_QUERY_INSTRUCTION),
    ],
    ids=["text", "image", "image+text"],
)
def test_default_instruction_follows_the_input_kind(
    tiny_embedder: GmeEmbedder, text: str | None, with_image: bool, expected: str
) -> None:
    assert default_instruction(has_text=text is not None, has_image=with_image) == expected
    item = EmbedInput(text=text, image=make_image(32, 32, 0) if with_image else None)
    prompt = _decode(tiny_embedder, tiny_embedder.prompt_ids(item, image_tokens=4 if with_image else 0))
    assert prompt.startswith(f"<|im_start|>system\n{expected}<|im_end|>")


def test_image_queries_share_the_index_instruction() -> None:
    assert IMAGE_QUERY_INSTRUCTION == INDEX_INSTRUCTION == "You are a helpful assistant."


@pytest.mark.slow
def test_an_explicit_instruction_overrides_the_default(tiny_embedder: GmeEmbedder) -> None:
    item = EmbedInput(text="a cat", instruction="Find a drawing.")
    prompt = _decode(tiny_embedder, tiny_embedder.prompt_ids(item, image_tokens=0))
    assert prompt.startswith("<|im_start|>system\nFind a drawing.<|im_end|>")
    custom = tiny_embedder.embed_query("a cat", instruction="Find a drawing.")
    default = tiny_embedder.embed_query("a cat")
    assert float(custom @ default) < 0.999


def test_an_input_needs_text_or_an_image(tiny_embedder: GmeEmbedder) -> None:
    with pytest.raises(ValueError):
        tiny_embedder.embed([EmbedInput()])


# --- Quantization ---


@pytest.mark.slow
def test_nf4_on_cpu_gives_vectors_close_to_float32(tiny_model_dir: Path, tiny_embedder: GmeEmbedder) -> None:
    pytest.importorskip("bitsandbytes")
    items = [
        EmbedInput(text="a cat asleep on a red sofa"),
        EmbedInput(text="snow covered mountains under a clear sky"),
        EmbedInput(text="生日蛋糕和蜡烛"),
        EmbedInput(image=make_image(120, 90, 19)),
        EmbedInput(image=make_image(300, 200, 20)),
        EmbedInput(image=make_image(90, 400, 21)),
        EmbedInput(text="at night", image=make_image(200, 200, 22)),
        EmbedInput(text="make it winter", image=make_image(160, 120, 23)),
    ]
    nf4 = load_embedder(str(tiny_model_dir), device="cpu", quant="nf4")
    assert (nf4.info.quant, nf4.info.dtype) == ("nf4", "float32")
    # The vision tower stays in full precision: it is loaded without the quantiser.
    assert any(type(module).__name__ == "Linear4bit" for module in nf4.decoder.modules())
    assert not any(type(module).__name__ == "Linear4bit" for module in nf4.visual.modules())

    quantized = nf4.embed(items)
    exact = tiny_embedder.embed(items)
    # The 64-wide tiny model is far more sensitive to 4-bit weights than the real ones: measured
    # per-input cosines are 0.91-0.98 (mean about 0.95) over several seeds.
    similarity = cosines(quantized, exact)
    assert np.all(similarity > 0.88) and similarity.mean() > 0.93
    # Retrieval is preserved: each 4-bit vector is nearest to its own float32 vector.
    assert np.array_equal(np.argmax(quantized @ exact.T, axis=1), np.arange(len(items)))


@pytest.mark.slow
def test_int8_on_cpu_gives_vectors_close_to_float32(tiny_model_dir: Path, tiny_embedder: GmeEmbedder) -> None:
    pytest.importorskip("bitsandbytes")
    items = [
        EmbedInput(text="a cat asleep on a red sofa"),
        EmbedInput(image=make_image(120, 90, 25)),
        EmbedInput(text="make it winter", image=make_image(160, 120, 26)),
    ]
    int8 = load_embedder(str(tiny_model_dir), device="cpu", quant="int8")
    assert (int8.info.quant, int8.info.dtype) == ("int8", "float32")
    # Measured: 0.9994 or better.
    assert np.all(cosines(int8.embed(items), tiny_embedder.embed(items)) > 0.995)


# --- Resolving --model ---

HUB_ID = "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"


@pytest.fixture
def empty_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_id_offline_is_one_fast_line_naming_the_model(
    monkeypatch: pytest.MonkeyPatch, empty_hub_cache: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelError) as raised:
        resolve_model(HUB_ID)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "\n" not in message
    assert HUB_ID in message and "offline" in message and f"umsearch model download {HUB_ID}" in message


@pytest.mark.slow
def test_a_hub_that_never_answers_fails_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, empty_hub_cache: Path
) -> None:
    import huggingface_hub.constants

    from umsearch import modelfiles

    # Accepts connections (the kernel's backlog does) and never replies, like a black-holing firewall.
    silent = socket.create_server(("127.0.0.1", 0))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(modelfiles, "_HUB_TIMEOUT_S", 1)
    started = time.monotonic()
    try:
        with pytest.raises(ModelError) as raised:
            resolve_model(HUB_ID)
    finally:
        silent.close()
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "\n" not in message
    assert HUB_ID in message and "could not be fetched" in message


def test_a_local_model_dir_resolves_to_its_absolute_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_model_dir.parent)
    assert resolve_model(f"./{tiny_model_dir.name}") == tiny_model_dir.resolve()


def _copy_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_a_model_dir_without_preprocessor_config_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy_model(tiny_model_dir, tmp_path)
    (model_dir / "preprocessor_config.json").unlink()
    with pytest.raises(ModelError, match="missing preprocessor_config.json"):
        resolve_model(str(model_dir))


def test_a_model_dir_with_a_missing_shard_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy_model(tiny_model_dir, tmp_path)
    shard = sorted(model_dir.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(ModelError, match=f"missing weight shard {shard.name}"):
        resolve_model(str(model_dir))


@pytest.mark.parametrize("spec", ["/no/such/gme-model", "./no-such-gme-model", "~/no-such-gme-model-dir"])
def test_a_nonexistent_path_is_refused(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(spec)

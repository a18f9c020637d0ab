"""Qwen3-VL-Embedding: the embedder reproduces the reference Qwen3VLEmbedder procedure on transformers 5.

The reference (QwenLM/Qwen3-VL-Embedding src/models/qwen3_vl_embedding.py, run with qwen-vl-utils 0.0.14
and transformers 4.57) is restated below step by step, from its sources, without umsearch's code: the
conversation, qwen-vl-utils' image and frame-list fetching, the 4.57 processor's placeholder expansion and
video patching, the 4.57 multimodal rotary positions (computed from the token ids, then handed to the
model explicitly), last-token pooling and normalisation.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from tests.qwen3_support import make_frames
from tests.test_embed import cosines, make_image
from umsearch.embed import EmbedderInfo, EmbedInput, load_embedder
from umsearch.errors import UmsearchError
from umsearch.qwen3vl import (
    FUSED_QUERY_INSTRUCTION,
    INDEX_INSTRUCTION,
    TEXT_QUERY_INSTRUCTION,
    Qwen3Input,
    Qwen3VLEmbedder,
    VideoClip,
    fit_image,
    image_token_count,
)

# --- The reference procedure, step by step -----------------------------------------------------------

IMAGE_FACTOR = 32
MIN_PIXELS = 4 * IMAGE_FACTOR * IMAGE_FACTOR
MAX_PIXELS = 1800 * IMAGE_FACTOR * IMAGE_FACTOR
MAX_TOTAL_PIXELS = 10 * 768 * IMAGE_FACTOR * IMAGE_FACTOR
MAX_FRAMES = 64
DEFAULT_INSTRUCTION = "Represent the user's input."


def ref_smart_resize(height: int, width: int, factor: int, min_pixels: float, max_pixels: float) -> tuple[int, int]:
    assert max(height, width) / min(height, width) <= 200
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
    return h_bar, w_bar


def ref_fetch_image(ele: dict) -> Image.Image:
    """qwen-vl-utils fetch_image(ele, image_patch_size=16) for a PIL image."""
    image = ele["image"]
    if image.mode == "RGBA":
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.split()[3])
        image = white
    else:
        image = image.convert("RGB")
    width, height = image.size
    min_pixels = ele.get("min_pixels", 4 * IMAGE_FACTOR**2)
    max_pixels = ele.get("max_pixels", 16384 * IMAGE_FACTOR**2)
    resized_height, resized_width = ref_smart_resize(height, width, IMAGE_FACTOR, min_pixels, max_pixels)
    return image.resize((resized_width, resized_height))


def ref_fetch_video(ele: dict) -> tuple[torch.Tensor, dict]:
    """qwen-vl-utils fetch_video(ele, image_patch_size=16, return_video_metadata=True) for a list of frames."""
    process_info = {k: v for k, v in ele.items() if k not in ("type", "video")}
    images = [ref_fetch_image({"image": frame, **process_info}) for frame in ele["video"]]
    nframes = math.ceil(len(images) / 2) * 2
    images.extend([images[-1]] * (nframes - len(images)))
    sample_fps = ele.get("sample_fps", 2.0)
    video = torch.stack([torch.from_numpy(np.array(image).transpose(2, 0, 1)) for image in images])
    raw_fps = process_info.pop("raw_fps", sample_fps)
    metadata = {"fps": raw_fps, "frames_indices": list(range(len(video)))}

    nframes, _, height, width = video.shape
    min_pixels = ele.get("min_pixels", 128 * IMAGE_FACTOR**2)
    total_pixels = ele["total_pixels"]
    max_pixels = max(min(768 * IMAGE_FACTOR**2, total_pixels / nframes * 2), int(min_pixels * 1.05))
    resized_height, resized_width = ref_smart_resize(height, width, IMAGE_FACTOR, min_pixels, max_pixels)
    # torchvision.transforms.functional.resize(video, size, BICUBIC, antialias=True) on a uint8 tensor:
    # unchanged when the size already matches, else float interpolation, clamped, rounded back to uint8.
    if (resized_height, resized_width) != (height, width):
        video = torch.nn.functional.interpolate(
            video.float(), size=[resized_height, resized_width], mode="bicubic", align_corners=False, antialias=True
        )
        video = torch.round(video.clamp(min=0, max=255)).to(torch.uint8)
    return video.float(), metadata


def ref_conversation(text: str | None, image: Image.Image | None, video: list | None, instruction: str | None) -> list:
    """Qwen3VLEmbedder.format_model_input for one text, one image and one frame-list video."""
    if instruction:
        instruction = instruction.strip()
        if instruction and not unicodedata.category(instruction[-1]).startswith("P"):
            instruction = instruction + "."
    content: list = []
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": instruction or DEFAULT_INSTRUCTION}]},
        {"role": "user", "content": content},
    ]
    if video is not None:
        frames = video
        if len(frames) > MAX_FRAMES:
            frames = [frames[i] for i in np.linspace(0, len(frames) - 1, MAX_FRAMES, dtype=int).tolist()]
        content.append({"type": "video", "video": frames, "total_pixels": MAX_TOTAL_PIXELS})
    if image is not None:
        content.append({"type": "image", "image": image, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
    if text is not None:
        content.append({"type": "text", "text": text})
    return conversation


def ref_video_patches(video: torch.Tensor, mean: list[float], std: list[float]) -> tuple[torch.Tensor, list[int]]:
    """The video processor with do_resize=False: rescale and normalise, then one row per 16x16x2 patch,
    temporal patch by temporal patch, 2x2 merge blocks in raster order, patches in raster order inside a
    block, each row channel-major over (2 frames, 16, 16)."""
    pixels = (video.numpy() / 255.0 - np.array(mean).reshape(1, 3, 1, 1)) / np.array(std).reshape(1, 3, 1, 1)
    frames, _, height, width = pixels.shape
    rows = []
    for t in range(frames // 2):
        for block_row in range(height // 32):
            for block_col in range(width // 32):
                for inner_row in range(2):
                    for inner_col in range(2):
                        y = (block_row * 2 + inner_row) * 16
                        x = (block_col * 2 + inner_col) * 16
                        patch = pixels[2 * t : 2 * t + 2, :, y : y + 16, x : x + 16]  # (2, C, 16, 16)
                        rows.append(patch.transpose(1, 0, 2, 3).reshape(-1))
    return torch.tensor(np.stack(rows), dtype=torch.float32), [frames // 2, height // 16, width // 16]


def ref_timestamps(indices: list[int], fps: float) -> list[float]:
    if len(indices) % 2:
        indices = [*indices, indices[-1]]
    times = [i / fps for i in indices]
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]


def ref_rope_index(config, input_ids, image_grid_thw, video_grid_thw, attention_mask) -> torch.Tensor:
    """transformers 4.57 Qwen3VLModel.get_rope_index: 3-D positions found from the token ids."""
    if video_grid_thw is not None:
        video_grid_thw = torch.repeat_interleave(video_grid_thw, video_grid_thw[:, 0], dim=0)
        video_grid_thw[:, 0] = 1
    merge = config.vision_config.spatial_merge_size
    if image_grid_thw is None and video_grid_thw is None:
        positions = attention_mask.long().cumsum(-1) - 1
        positions.masked_fill_(attention_mask == 0, 1)
        return positions.unsqueeze(0).expand(3, -1, -1)
    position_ids = torch.ones(3, *input_ids.shape, dtype=input_ids.dtype)
    image_index = video_index = 0
    for i, row in enumerate(input_ids):
        row = row[attention_mask[i] == 1]
        starts = torch.argwhere(row == config.vision_start_token_id).squeeze(1)
        kinds = row[starts + 1]
        remain_images = int((kinds == config.image_token_id).sum())
        remain_videos = int((kinds == config.video_token_id).sum())
        tokens = row.tolist()
        pieces: list[torch.Tensor] = []
        st = 0
        for _ in range(remain_images + remain_videos):
            ed_image = tokens.index(config.image_token_id, st) if remain_images > 0 else len(tokens) + 1
            ed_video = tokens.index(config.video_token_id, st) if remain_videos > 0 else len(tokens) + 1
            if ed_image < ed_video:
                t, h, w = image_grid_thw[image_index].tolist()
                image_index, remain_images, ed = image_index + 1, remain_images - 1, ed_image
            else:
                t, h, w = video_grid_thw[video_index].tolist()
                video_index, remain_videos, ed = video_index + 1, remain_videos - 1, ed_video
            gh, gw = h // merge, w // merge
            text_len = ed - st
            st_idx = int(pieces[-1].max()) + 1 if pieces else 0
            pieces.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
            t_index = torch.arange(t).view(-1, 1).expand(-1, gh * gw).flatten()
            h_index = torch.arange(gh).view(1, -1, 1).expand(t, -1, gw).flatten()
            w_index = torch.arange(gw).view(1, 1, -1).expand(t, gh, -1).flatten()
            pieces.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
            st = ed + t * gh * gw
        if st < len(tokens):
            st_idx = int(pieces[-1].max()) + 1 if pieces else 0
            pieces.append(torch.arange(len(tokens) - st).view(1, -1).expand(3, -1) + st_idx)
        position_ids[:, i, attention_mask[i] == 1] = torch.cat(pieces, dim=1)
    return position_ids


@functools.cache
def ref_tokenizer(model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(model_dir)


def ref_vision_and_texts(
    model_dir: Path, conversations: list, budget: tuple[int, int] | None = None
) -> tuple[list[str], dict]:
    """The chat template, qwen-vl-utils' process_vision_info and the 4.57 processor up to tokenisation:
    (prompt strings with placeholders expanded, pixel tensors and grids).

    `budget` (min, max tokens) adds umsearch's image budget after the reference's resize, as a plain PIL
    bicubic resize to the budget's smart size; None is the reference itself.
    """
    tokenizer = ref_tokenizer(model_dir)
    settings = json.loads((model_dir / "preprocessor_config.json").read_text())
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=settings["image_mean"],
        image_std=settings["image_std"],
    )
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]

    images, videos = [], []
    for conversation in conversations:
        for message in conversation:
            for ele in message["content"]:
                if "image" in ele:
                    image = ref_fetch_image(ele)
                    if budget is not None:
                        h, w = ref_smart_resize(image.height, image.width, 32, budget[0] * 1024, budget[1] * 1024)
                        if (w, h) != image.size:
                            image = image.resize((w, h), Image.Resampling.BICUBIC)
                    images.append(image)
                elif "video" in ele:
                    videos.append(ref_fetch_video(ele))

    batch: dict = {}
    if images:
        vision = image_processor(images=images, do_resize=False, return_tensors="pt")
        batch["pixel_values"], batch["image_grid_thw"] = vision["pixel_values"], vision["image_grid_thw"]
        counts = iter((vision["image_grid_thw"].prod(-1) // 4).tolist())
        for i, text in enumerate(texts):
            while "<|image_pad|>" in text:
                text = text.replace("<|image_pad|>", "<|placeholder|>" * next(counts), 1)
            texts[i] = text.replace("<|placeholder|>", "<|image_pad|>")
    if videos:
        patched = [ref_video_patches(video, settings["image_mean"], settings["image_std"]) for video, _ in videos]
        batch["pixel_values_videos"] = torch.cat([p for p, _ in patched])
        batch["video_grid_thw"] = torch.tensor([g for _, g in patched])
        index = 0
        for i, text in enumerate(texts):
            while "<|video_pad|>" in text:
                metadata = videos[index][1]
                grid = patched[index][1]
                stamps = ref_timestamps(metadata["frames_indices"], metadata["fps"])
                placeholder = ""
                for frame in range(grid[0]):
                    placeholder += f"<{stamps[frame]:.1f} seconds>"
                    placeholder += "<|vision_start|>" + "<|placeholder|>" * (grid[1] * grid[2] // 4) + "<|vision_end|>"
                text = text.replace("<|vision_start|><|video_pad|><|vision_end|>", placeholder, 1)
                index += 1
            texts[i] = text.replace("<|placeholder|>", "<|video_pad|>")
    return texts, batch


def ref_hidden(
    model: Qwen3VLForConditionalGeneration, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch: dict
) -> torch.Tensor:
    """Qwen3VLModel's forward as 4.57 ran it: positions from the ids, everything else the model's own."""
    positions = ref_rope_index(
        model.config, input_ids, batch.get("image_grid_thw"), batch.get("video_grid_thw"), attention_mask
    )
    with torch.inference_mode():
        return model.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, **batch
        ).last_hidden_state


def reference_embed(
    model_dir: Path, model: Qwen3VLForConditionalGeneration, items: list[tuple], budget: tuple[int, int] | None = None
) -> tuple[np.ndarray, torch.Tensor]:
    """items are (text, image, frames, instruction); returns (unit vectors, input_ids)."""
    texts, batch = ref_vision_and_texts(model_dir, [ref_conversation(*item) for item in items], budget)
    encoded = ref_tokenizer(model_dir)(
        texts, padding=True, padding_side="right", truncation=True, max_length=8192, return_tensors="pt"
    )
    hidden = ref_hidden(model, encoded["input_ids"], encoded["attention_mask"], batch)
    mask = encoded["attention_mask"]
    col = mask.shape[1] - mask.flip(dims=[1]).argmax(dim=1) - 1
    pooled = hidden[torch.arange(hidden.shape[0]), col]
    return torch.nn.functional.normalize(pooled, p=2, dim=-1).numpy(), encoded["input_ids"]


# --- Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_model(tiny_qwen3_dir: Path) -> Qwen3VLForConditionalGeneration:
    model, info = Qwen3VLForConditionalGeneration.from_pretrained(
        tiny_qwen3_dir, dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    return model.eval()


def as_inputs(items: list[tuple]) -> list[Qwen3Input]:
    return [
        Qwen3Input(text=text, image=image, video=VideoClip(tuple(frames)) if frames else None, instruction=instruction)
        for text, image, frames, instruction in items
    ]


# --- Equivalence with the reference procedure --------------------------------------------------------

EQUIVALENCE_CASES = {
    "text": [("a photo of a cat on a red sofa", None, None, TEXT_QUERY_INSTRUCTION)],
    "instruction without final punctuation": [("receipts", None, None, "Find a scanned document")],
    "texts of different lengths": [
        ("snow", None, None, TEXT_QUERY_INSTRUCTION),
        ("two children playing football in a green park with tall trees", None, None, TEXT_QUERY_INSTRUCTION),
        ("生日蛋糕和蜡烛", None, None, TEXT_QUERY_INSTRUCTION),
    ],
    "image": [(None, make_image(120, 80, 8), None, INDEX_INSTRUCTION)],
    "images of different sizes": [
        (None, make_image(20, 24, 10), None, INDEX_INSTRUCTION),  # upscaled to the 4-token minimum
        (None, make_image(900, 500, 11), None, INDEX_INSTRUCTION),
        (None, make_image(30, 700, 13), None, INDEX_INSTRUCTION),
    ],
    "image+text": [("make it winter", make_image(100, 100, 9), None, FUSED_QUERY_INSTRUCTION)],
    "video": [(None, None, make_frames(5, 96, 64, 1), INDEX_INSTRUCTION)],
    "video+text": [("a dog running", None, make_frames(4, 64, 96, 3), FUSED_QUERY_INSTRUCTION)],
    "video+image+text": [("the same scene at night", make_image(90, 60, 14), make_frames(3, 64, 64, 4), "Find this.")],
    "mixed batch": [
        ("snow", None, None, TEXT_QUERY_INSTRUCTION),
        (None, make_image(200, 150, 15), None, INDEX_INSTRUCTION),
        (None, None, make_frames(2, 80, 60, 5), INDEX_INSTRUCTION),
        ("at night", make_image(64, 128, 16), None, FUSED_QUERY_INSTRUCTION),
    ],
}


@pytest.mark.parametrize("case", list(EQUIVALENCE_CASES))
def test_matches_the_reference_procedure(
    tiny_qwen3: Qwen3VLEmbedder, tiny_qwen3_dir: Path, hf_model: Qwen3VLForConditionalGeneration, case: str
) -> None:
    items = EQUIVALENCE_CASES[case]
    expected, expected_ids = reference_embed(tiny_qwen3_dir, hf_model, items)
    inputs = as_inputs(items)
    got = tiny_qwen3.embed(inputs, batch_size=len(inputs))
    assert torch.equal(tiny_qwen3.prepare(inputs)["input_ids"], expected_ids)
    assert np.all(cosines(got, expected) >= 0.999), cosines(got, expected)


@pytest.mark.parametrize("size", [(1600, 1400), (2000, 90), (20, 24), (1900, 1000), (33, 6000), (640, 480)])
def test_images_get_the_reference_size(tiny_qwen3: Qwen3VLEmbedder, size: tuple[int, int]) -> None:
    # Sizes only (no forward pass): the large ones exercise the reference's 1800-token cap cheaply.
    image = make_image(*size, 12)
    expected = ref_fetch_image({"image": image, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
    grid = tiny_qwen3.prepare([Qwen3Input(image=image)])["image_grid_thw"][0].tolist()
    assert grid == [1, expected.height // 16, expected.width // 16]
    assert tiny_qwen3.image_token_count(*size) == grid[1] * grid[2] // 4 <= 1800


def test_a_long_video_keeps_the_reference_64_frames(tiny_qwen3: Qwen3VLEmbedder) -> None:
    frames = make_frames(70, 40, 32, 2)
    kept = ref_conversation(None, None, list(frames), None)[1]["content"][0]["video"]
    assert len(kept) == MAX_FRAMES
    many = tiny_qwen3.prepare([Qwen3Input(video=VideoClip(frames))])
    sampled = tiny_qwen3.prepare([Qwen3Input(video=VideoClip(tuple(kept)))])
    assert torch.equal(many["input_ids"], sampled["input_ids"])
    assert torch.equal(many["pixel_values_videos"], sampled["pixel_values_videos"])
    assert many["video_grid_thw"][0, 0] == MAX_FRAMES // 2


def test_matches_the_reference_followed_by_a_smaller_image_budget(
    tiny_qwen3_dir: Path, hf_model: Qwen3VLForConditionalGeneration
) -> None:
    embedder = load_embedder(
        str(tiny_qwen3_dir), device="cpu", quant="none", dtype="float32", min_image_tokens=16, max_image_tokens=64
    )
    items = [
        (None, make_image(900, 500, 17), None, INDEX_INSTRUCTION),  # 1800-token cap, then 64
        (None, make_image(40, 40, 18), None, INDEX_INSTRUCTION),  # up to 16 tokens
        ("at night", make_image(300, 200, 19), None, FUSED_QUERY_INSTRUCTION),
    ]
    expected, expected_ids = reference_embed(tiny_qwen3_dir, hf_model, items, budget=(16, 64))
    inputs = as_inputs(items)
    assert torch.equal(embedder.prepare(inputs)["input_ids"], expected_ids)
    assert np.all(cosines(embedder.embed(inputs), expected) >= 0.999)
    assert [int(g.prod()) // 4 for g in embedder.prepare(inputs)["image_grid_thw"]] == [
        image_token_count(900, 500, 16, 64),
        image_token_count(40, 40, 16, 64),
        image_token_count(300, 200, 16, 64),
    ]


def test_the_reference_check_tells_multimodal_positions_from_plain_ones(
    tiny_qwen3: Qwen3VLEmbedder, hf_model: Qwen3VLForConditionalGeneration
) -> None:
    # GME's procedure runs the decoder with plain 0..L-1 positions; Qwen3-VL must not.
    item = Qwen3Input(text="at night", image=make_image(200, 120, 16))
    batch = tiny_qwen3.prepare([item])
    length = batch["input_ids"].shape[1]
    plain = torch.arange(length).view(1, 1, -1).expand(3, 1, -1)
    with torch.inference_mode():
        hidden = hf_model.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            position_ids=plain,
        ).last_hidden_state
    plain_vector = torch.nn.functional.normalize(hidden[0, -1], dim=-1).numpy()
    assert float(plain_vector @ tiny_qwen3.embed([item])[0]) < 0.99


def test_video_time_labels_follow_the_reference_clock_or_the_given_times(tiny_qwen3: Qwen3VLEmbedder) -> None:
    frames = make_frames(5, 64, 64, 6)

    def prompt(clip: VideoClip) -> str:
        ids = tiny_qwen3.prepare([Qwen3Input(video=clip)])["input_ids"][0].tolist()
        return tiny_qwen3.tokenizer.decode(ids).replace("<|video_pad|>", "")

    # The frame-list clock: frame i at i/2 s, padded to 6 frames, pairs announced at their mean time.
    assert "<0.2 seconds><|vision_start|><|vision_end|><1.2 seconds>" in prompt(VideoClip(frames))
    assert "<2.2 seconds>" in prompt(VideoClip(frames))
    timed = prompt(VideoClip(frames, times=(0.0, 4.0, 9.0, 12.0, 30.0)))
    assert "<2.0 seconds>" in timed and "<10.5 seconds>" in timed and "<30.0 seconds>" in timed


# --- Vectors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        Qwen3Input(text="a cat asleep on a red sofa"),
        Qwen3Input(image=make_image(120, 90, 1)),
        Qwen3Input(text="make it winter", image=make_image(90, 120, 2)),
        Qwen3Input(video=VideoClip(make_frames(4, 64, 48, 7))),
    ],
    ids=["text", "image", "image+text", "video"],
)
def test_query_vectors_are_unit_float32_and_deterministic(tiny_qwen3: Qwen3VLEmbedder, item: Qwen3Input) -> None:
    first = tiny_qwen3.embed_query(item.text, item.image, video=item.video)
    again = tiny_qwen3.embed_query(item.text, item.image, video=item.video)
    assert first.shape == (tiny_qwen3.info.dim,)
    assert first.dtype == np.float32
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(first, again)


def test_batched_results_equal_one_by_one_results(tiny_qwen3: Qwen3VLEmbedder) -> None:
    items = [
        Qwen3Input(text="snow"),
        Qwen3Input(image=make_image(64, 64, 3)),
        Qwen3Input(text="a long walk along the beach at sunset with the dog and the children"),
        Qwen3Input(image=make_image(400, 130, 4), text="at night"),
        Qwen3Input(video=VideoClip(make_frames(3, 64, 64, 8))),
        Qwen3Input(image=make_image(200, 300, 5)),
        Qwen3Input(text="城市夜景"),
    ]
    batched = tiny_qwen3.embed(items, batch_size=4)
    single = np.stack([tiny_qwen3.embed([item])[0] for item in items])
    assert batched.shape == (len(items), tiny_qwen3.info.dim)
    assert np.all(cosines(batched, single) > 0.9999)
    off_diagonal = (batched @ batched.T)[~np.eye(len(items), dtype=bool)]
    assert off_diagonal.max() < 0.98  # different inputs are far apart, so the check above can fail


def test_an_image_queried_against_itself_scores_one(tiny_qwen3: Qwen3VLEmbedder) -> None:
    image = make_image(150, 100, 6)
    indexed = tiny_qwen3.embed_images([image, make_image(100, 150, 7)])[0]
    assert float(indexed @ tiny_qwen3.embed_query(image=image)) == pytest.approx(1.0, abs=1e-5)
    clip = VideoClip(make_frames(4, 64, 64, 9))
    assert float(tiny_qwen3.embed_videos([clip])[0] @ tiny_qwen3.embed_query(video=clip)) == pytest.approx(
        1.0, abs=1e-5
    )


def test_a_clip_gets_one_vector_and_one_per_segment_with_its_start_time(tiny_qwen3: Qwen3VLEmbedder) -> None:
    frames = make_frames(5, 64, 48, 12)
    clip = VideoClip(frames, times=(0.0, 1.5, 3.0, 7.0, 9.0))
    result = tiny_qwen3.embed_clip(clip, [(0, 3), (3, 5)])
    assert np.array_equal(result.clip, tiny_qwen3.embed_videos([clip])[0])
    assert [start for start, _ in result.segments] == [0.0, 7.0]
    second = tiny_qwen3.embed_videos([VideoClip(frames[3:], times=(7.0, 9.0))])[0]
    assert float(result.segments[1][1] @ second) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        tiny_qwen3.embed_clip(clip, [(4, 9)])


def test_prepared_batches_and_fitted_images_give_the_same_vectors(tiny_qwen3: Qwen3VLEmbedder) -> None:
    images = [make_image(900, 500, 20), make_image(33, 70, 21)]
    fitted = [fit_image(im, tiny_qwen3.info.min_image_tokens, tiny_qwen3.info.max_image_tokens) for im in images]
    direct = tiny_qwen3.embed_images(images)
    assert np.array_equal(tiny_qwen3.embed_prepared(tiny_qwen3.prepare_images(fitted)), direct)
    assert [tiny_qwen3.image_token_count(*im.size) for im in images] == [
        (f.width // 32) * (f.height // 32) for f in fitted
    ]


def test_plain_embed_inputs_work_too(tiny_qwen3: Qwen3VLEmbedder) -> None:
    # The family stands behind the shared EmbedInput type (text, image, instruction).
    image = make_image(80, 60, 22)
    assert np.array_equal(
        tiny_qwen3.embed([EmbedInput(text="a cat", image=image)]),
        tiny_qwen3.embed([Qwen3Input(text="a cat", image=image)]),
    )


# --- MRL: shorter vectors ----------------------------------------------------------------------------


def test_a_shorter_dimension_is_the_truncated_full_vector_renormalised(
    tiny_qwen3_dir: Path, tiny_qwen3: Qwen3VLEmbedder
) -> None:
    short = load_embedder(str(tiny_qwen3_dir), device="cpu", quant="none", dtype="float32", dim=32)
    assert short.info.dim == 32
    items = [
        Qwen3Input(text="snow"),
        Qwen3Input(image=make_image(90, 90, 23)),
        Qwen3Input(video=VideoClip(make_frames(2, 64, 64, 10))),
    ]
    full = tiny_qwen3.embed(items)
    expected = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    got = short.embed(items)
    assert got.shape == (3, 32)
    assert np.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("dim", [0, 65, -3])
def test_an_impossible_dimension_is_refused(tiny_qwen3_dir: Path, dim: int) -> None:
    with pytest.raises(UmsearchError, match="--dim"):
        load_embedder(str(tiny_qwen3_dir), device="cpu", quant="none", dtype="float32", dim=dim)


# --- Prompt construction -----------------------------------------------------------------------------


def decode(embedder: Qwen3VLEmbedder, ids: list[int]) -> str:
    return embedder.tokenizer.decode(ids, skip_special_tokens=False)


TEMPLATE_TAIL = "<|im_end|>\n<|im_start|>assistant\n"


def test_the_prompt_is_the_chat_template_with_the_generation_prompt(tiny_qwen3: Qwen3VLEmbedder) -> None:
    prompt = decode(tiny_qwen3, tiny_qwen3.prompt_ids(Qwen3Input(text="a cat"), 0))
    assert prompt == f"<|im_start|>system\n{TEXT_QUERY_INSTRUCTION}<|im_end|>\n<|im_start|>user\na cat{TEMPLATE_TAIL}"


def test_long_text_is_cut_to_max_length_keeping_the_template(
    tiny_qwen3: Qwen3VLEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_qwen3, "max_length", 64)
    ids = tiny_qwen3.prompt_ids(Qwen3Input(text=" the" * 200), 0)
    assert len(ids) == 64
    assert decode(tiny_qwen3, ids).endswith(TEMPLATE_TAIL)
    image_ids = tiny_qwen3.prompt_ids(Qwen3Input(text=" the" * 200, image=make_image(10, 10, 0)), 100)
    assert image_ids.count(tiny_qwen3.tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 100
    assert decode(tiny_qwen3, image_ids).endswith("<|vision_end|>" + TEMPLATE_TAIL)


def test_user_text_spelling_a_special_token_stays_text(tiny_qwen3: Qwen3VLEmbedder) -> None:
    ids = tiny_qwen3.prompt_ids(Qwen3Input(text="<|image_pad|><|im_end|>"), 0)
    assert tiny_qwen3.tokenizer.convert_tokens_to_ids("<|image_pad|>") not in ids
    assert ids.count(tiny_qwen3.tokenizer.convert_tokens_to_ids("<|im_end|>")) == 2


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (Qwen3Input(text="a cat"), TEXT_QUERY_INSTRUCTION),
        (Qwen3Input(image=make_image(32, 32, 0)), INDEX_INSTRUCTION),
        (Qwen3Input(text="make it winter", image=make_image(32, 32, 0)), FUSED_QUERY_INSTRUCTION),
        (Qwen3Input(text="a cat", instruction="  Find a drawing  "), "Find a drawing."),
        (Qwen3Input(text="a cat", instruction="Find a drawing?"), "Find a drawing?"),
    ],
    ids=["text", "image", "image+text", "added full stop", "own punctuation"],
)
def test_instructions(tiny_qwen3: Qwen3VLEmbedder, item: Qwen3Input, expected: str) -> None:
    prompt = decode(tiny_qwen3, tiny_qwen3.prompt_ids(item, 4 if item.image is not None else 0))
    assert prompt.startswith(f"<|im_start|>system\n{expected}<|im_end|>")


def test_an_input_needs_something_to_embed(tiny_qwen3: Qwen3VLEmbedder) -> None:
    with pytest.raises(ValueError):
        tiny_qwen3.embed([Qwen3Input()])


# --- Loading, sizes, import cost ---------------------------------------------------------------------


def test_embedder_info_describes_the_loaded_model(tiny_qwen3: Qwen3VLEmbedder, tiny_qwen3_dir: Path) -> None:
    assert tiny_qwen3.family == "qwen3-vl"
    assert tiny_qwen3.info == EmbedderInfo(
        model_id=str(tiny_qwen3_dir),
        dim=64,
        min_image_tokens=4,
        max_image_tokens=1800,
        device="cpu",
        dtype="float32",
        quant="none",
        family="qwen3-vl",
    )


def test_an_extreme_panorama_is_clamped_not_refused(tiny_qwen3: Qwen3VLEmbedder) -> None:
    vector = tiny_qwen3.embed_images([make_image(7000, 10, 24)])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_importing_the_family_modules_does_not_import_torch() -> None:
    code = "import sys, umsearch.qwen3vl, umsearch.rerank, umsearch.devmodel_qwen3; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- Quantization ------------------------------------------------------------------------------------


def test_nf4_on_cpu_keeps_the_vision_tower_and_stays_close_to_float32(
    tiny_qwen3_dir: Path, tiny_qwen3: Qwen3VLEmbedder
) -> None:
    pytest.importorskip("bitsandbytes")
    items = [
        Qwen3Input(text="a cat asleep on a red sofa"),
        Qwen3Input(text="snow covered mountains under a clear sky"),
        Qwen3Input(text="生日蛋糕和蜡烛"),
        Qwen3Input(image=make_image(120, 90, 19)),
        Qwen3Input(image=make_image(300, 200, 20)),
        Qwen3Input(text="at night", image=make_image(200, 200, 22)),
        Qwen3Input(video=VideoClip(make_frames(4, 64, 64, 11))),
    ]
    nf4 = load_embedder(str(tiny_qwen3_dir), device="cpu", quant="nf4")
    assert (nf4.info.quant, nf4.info.dtype) == ("nf4", "float32")
    kinds = {name: type(module).__name__ for name, module in nf4.model.named_modules()}
    assert any(t == "Linear4bit" for n, t in kinds.items() if n.startswith("language_model."))
    assert not any(t == "Linear4bit" for n, t in kinds.items() if n.startswith("visual."))
    quantized, exact = nf4.embed(items), tiny_qwen3.embed(items)
    # The 64-wide tiny model is far more sensitive to 4-bit weights than a real one: measured per-input
    # cosines 0.90-0.985 (mean 0.95-0.96) over four seeds.
    similarity = cosines(quantized, exact)
    assert np.all(similarity > 0.85) and similarity.mean() > 0.92, similarity
    # Retrieval is preserved: each 4-bit vector is nearest to its own float32 vector.
    assert np.array_equal(np.argmax(quantized @ exact.T, axis=1), np.arange(len(items)))


def test_nothing_here_needs_torchvision() -> None:
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'torchvision': raise ImportError('no torchvision')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import umsearch.qwen3vl as q\n"
        "from PIL import Image\n"
        "q.prepare_video(q.VideoClip((Image.new('RGB', (40, 30)),) * 3), dict(patch_size=16, temporal_patch_size=2,"
        " merge_size=2, image_mean=[0.5]*3, image_std=[0.5]*3))\n"
        "q.image_processor(dict(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5]*3,"
        " image_std=[0.5]*3))(images=[Image.new('RGB', (64, 64))], return_tensors='pt')\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]

"""Qwen3-VL-Embedding (2B/8B) embeddings on transformers 5, without remote code or torchvision.

Reproduces the reference ``Qwen3VLEmbedder`` (github QwenLM/Qwen3-VL-Embedding,
src/models/qwen3_vl_embedding.py, with qwen-vl-utils 0.0.14 and transformers 4.57):

* conversation: a system turn holding the instruction (default "Represent the user's input."; one that does
  not end in punctuation gets a "."), a user turn holding the videos, then the images, then the text, and
  the generation prompt, rendered by the Qwen3-VL chat template: ``<|im_start|>system\\n{instruction}
  <|im_end|>\\n<|im_start|>user\\n{videos}{images}{text}<|im_end|>\\n<|im_start|>assistant\\n``;
* images: RGB (transparency on white), resized with PIL's default filter to multiples of 32 (patch 16,
  merge 2) between 4·32·32 and 1800·32·32 pixels; then the image budget of the index (its quality preset)
  on top, which the reference budget (4-1800 tokens) leaves unchanged; ``<|image_pad|>`` repeated once per
  merged 32×32 token;
* videos given as frames (the reference's frame-list path): at most 64 frames (evenly spaced), each
  resized like an image (up to 16384 tokens), padded to an even count by repeating the last frame, then
  all resized together (bicubic, antialiased) to 128-768 tokens per frame within a total of 7680 tokens
  per two frames; each pair of frames is one temporal patch, announced by its time (``<0.2 seconds>``,
  from the reference's 2 fps frame-list clock, or from the frames' real times when given);
* pixels: rescaled and normalised with the model's mean/std (0.5), cut into 16×16×2 patches in the merge
  order the vision tower expects;
* forward: the full Qwen3VLModel (vision tower with DeepStack features, Qwen3-VL multimodal rotary
  positions computed from the token layout, text decoder); pooling: the last real token's final hidden
  state (right padding); L2-normalised. MRL: with `dim`, the first `dim` values, re-normalised.

Deliberate differences: only the user text is truncated to fit ``max_length`` (the reference cut the
sequence's tail); user text is tokenised as plain text even if it spells a special token; an image or frame
beyond the 200:1 aspect ratio is clamped (the reference raises and embeds "NULL" instead); frames of one
video that differ in size are brought to the first frame's size (the reference fails); vectors are
normalised in float32; batches run under ``torch.inference_mode``.

Importing this module is cheap: torch and transformers load only when a model is loaded.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .embed import EmbedderInfo, embed_in_batches, load_pretrained
from .errors import ModelError, UmsearchError
from .modelfiles import first_line
from .qwenresize import into_pixel_range

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

FAMILY = "qwen3-vl"

INDEX_INSTRUCTION = "Represent the user's input."  # the reference's default instruction
TEXT_QUERY_INSTRUCTION = "Retrieve images or text relevant to the user's query."  # the reference README's
# Same as the index instruction, so an image queried against itself scores exactly 1.
IMAGE_QUERY_INSTRUCTION = INDEX_INSTRUCTION
FUSED_QUERY_INSTRUCTION = "Find an image that looks like the given image, changed as the text describes."

# The reference's image limits, in merged 32x32 tokens: also this family's default image budget.
REFERENCE_MIN_IMAGE_TOKENS = 4
REFERENCE_MAX_IMAGE_TOKENS = 1800
MAX_LENGTH = 8192

_FACTOR = 32  # patch 16 x merge 2
_PIXELS_PER_TOKEN = _FACTOR * _FACTOR
_MAX_RATIO = 200
# qwen-vl-utils' per-image limits when a frame is fetched without its own (the frame-list path).
_FRAME_FETCH_MIN_TOKENS, _FRAME_FETCH_MAX_TOKENS = 4, 16384
# The reference's video settings: frames kept, per-frame token range, and the total for the clip.
MAX_FRAMES = 64
_VIDEO_FRAME_MIN_TOKENS, _VIDEO_FRAME_MAX_TOKENS = 128, 768
_VIDEO_TOTAL_PIXELS = 10 * _VIDEO_FRAME_MAX_TOKENS * _PIXELS_PER_TOKEN
_FRAME_LIST_FPS = 2.0  # qwen-vl-utils' clock for a list of frames (sample_fps default)

# Taken from the model's preprocessor_config.json.
_PROCESSOR_SETTINGS = ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")
# Kept in full precision under bitsandbytes: the vision tower, its mergers and DeepStack mergers.
_UNQUANTIZED_MODULES = ["visual"]
_SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


@dataclass(frozen=True)
class VideoClip:
    """A video as the model sees it: frames in time order (RGB), with their times in seconds if known.

    Without times the reference's frame-list clock is used (frame i at i/2 s), which is what the published
    model was evaluated with for pre-sampled frames; with times, each temporal patch is announced at the
    mean time of its two frames, as the reference does for a video file.
    """

    frames: tuple[Image.Image, ...]
    times: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a video clip needs at least one frame")
        if self.times is not None and len(self.times) != len(self.frames):
            raise ValueError(f"{len(self.frames)} frames but {len(self.times)} times")


@dataclass(frozen=True)
class ClipVectors:
    clip: np.ndarray  # (dim,): the whole clip
    segments: list[tuple[float, np.ndarray]]  # (start time in seconds, (dim,) vector) per segment


@dataclass(frozen=True)
class Qwen3Input:
    """One thing to embed: any of text, an image and a video (at least one), and the instruction."""

    text: str | None = None
    image: Image.Image | None = None
    video: VideoClip | None = None
    instruction: str | None = None  # None -> default_instruction(...)


def default_instruction(has_text: bool, has_image: bool) -> str:
    """The instruction used when an input names none."""
    if has_image and has_text:
        return FUSED_QUERY_INSTRUCTION
    if has_image:
        return IMAGE_QUERY_INSTRUCTION
    return TEXT_QUERY_INSTRUCTION


def normalize_instruction(instruction: str) -> str:
    """The reference's rule: stripped, and ending with punctuation (a '.' is added otherwise)."""
    instruction = instruction.strip()
    if instruction and not unicodedata.category(instruction[-1]).startswith("P"):
        instruction += "."
    return instruction


# --- Sizes -------------------------------------------------------------------------------------------


def smart_resize(height: int, width: int, min_pixels: float, max_pixels: float) -> tuple[int, int]:
    """qwen-vl-utils' smart_resize at factor 32: multiples of 32, aspect kept, pixels within the range.

    An aspect ratio beyond 200:1 is clamped to 200:1 instead of raising.
    """
    if max(height, width) / min(height, width) > _MAX_RATIO:
        if height > width:
            height = width * _MAX_RATIO
        else:
            width = height * _MAX_RATIO
    factor = _FACTOR
    rounded = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    return into_pixel_range(height, width, rounded, min_pixels, max_pixels, factor)


def _budget_size(height: int, width: int, min_tokens: int, max_tokens: int) -> tuple[int, int]:
    return smart_resize(height, width, min_tokens * _PIXELS_PER_TOKEN, max_tokens * _PIXELS_PER_TOKEN)


def to_rgb(image: Image.Image) -> Image.Image:
    """qwen-vl-utils' conversion: RGBA composited on white, anything else converted to RGB."""
    from PIL import Image as PILImage

    if image.mode == "RGBA":
        background = PILImage.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        return background
    return image.convert("RGB")


def reference_resize(image: Image.Image, min_tokens: int, max_tokens: int) -> Image.Image:
    """The reference's fetch_image: RGB, then sides on multiples of 32 within the token range (PIL default
    filter; the reference resizes even when the size does not change, which PIL answers with a copy)."""
    image = to_rgb(image)
    width, height = image.size
    new_height, new_width = _budget_size(height, width, min_tokens, max_tokens)
    return image.resize((new_width, new_height))


def fit_image(image: Image.Image, min_image_tokens: int, max_image_tokens: int) -> Image.Image:
    """Both resizes an indexed image gets, done ahead (on a loader thread, say) with the same operations.

    The reference's resize (4-1800 tokens), then the index's budget. The result is a fixed point of both,
    so the embedder's own resizes become same-size copies: identical vectors, the resampling off the
    model's thread, and a queued photo holds at most `max_image_tokens` tokens' worth of pixels.
    """
    from PIL import Image as PILImage

    image = reference_resize(image, REFERENCE_MIN_IMAGE_TOKENS, REFERENCE_MAX_IMAGE_TOKENS)
    width, height = image.size
    new_height, new_width = _budget_size(height, width, min_image_tokens, max_image_tokens)
    if (new_width, new_height) == (width, height):
        return image
    return image.resize((new_width, new_height), resample=PILImage.Resampling.BICUBIC)


def image_token_count(width: int, height: int, min_image_tokens: int, max_image_tokens: int) -> int:
    """How many visual tokens (image-pad slots) an image of this size gets under the budget."""
    h1, w1 = _budget_size(height, width, REFERENCE_MIN_IMAGE_TOKENS, REFERENCE_MAX_IMAGE_TOKENS)
    h2, w2 = _budget_size(h1, w1, min_image_tokens, max_image_tokens)
    return (h2 // _FACTOR) * (w2 // _FACTOR)


def sample_frame_indices(count: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """The reference's sample_frames: all frames, or `max_frames` evenly spaced ones (indices truncated)."""
    import numpy as np

    if count <= max_frames:
        return list(range(count))
    return np.linspace(0, count - 1, max_frames, dtype=int).tolist()


def video_frame_size(frame_count: int, height: int, width: int) -> tuple[int, int]:
    """The size every frame of a clip of `frame_count` (even) frames of height x width is resized to."""
    min_pixels = _VIDEO_FRAME_MIN_TOKENS * _PIXELS_PER_TOKEN
    max_pixels = max(
        min(_VIDEO_FRAME_MAX_TOKENS * _PIXELS_PER_TOKEN, _VIDEO_TOTAL_PIXELS / frame_count * 2),
        int(min_pixels * 1.05),
    )
    return smart_resize(height, width, min_pixels, max_pixels)


def _pair_times(times: list[float]) -> list[float]:
    # The processor announces each temporal patch (two frames) at the mean of its frames' times.
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]


@dataclass(frozen=True)
class _PreparedVideo:
    pixels: torch.Tensor  # (patches, C*2*16*16)
    grid: tuple[int, int, int]  # (temporal patches, patch rows, patch columns)
    labels: tuple[str, ...]  # "<0.2 seconds>" per temporal patch


def _frames_tensor(frames: Sequence[Image.Image]) -> torch.Tensor:
    """Frames after the reference's per-frame fetch, stacked as uint8 (T, C, H, W), padded to an even T."""
    import numpy as np
    import torch

    fetched = [reference_resize(f, _FRAME_FETCH_MIN_TOKENS, _FRAME_FETCH_MAX_TOKENS) for f in frames]
    size = fetched[0].size
    fetched = [f if f.size == size else f.resize(size) for f in fetched]
    if len(fetched) % 2:
        fetched.append(fetched[-1])
    return torch.stack([torch.from_numpy(np.asarray(f).transpose(2, 0, 1).copy()) for f in fetched])


def _resize_frames(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torchvision's tensor resize (bicubic, antialiased, rounded back to uint8) done with torch alone."""
    import torch

    if tuple(video.shape[-2:]) == (height, width):
        return video
    resized = torch.nn.functional.interpolate(
        video.float(), size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return resized.clamp(0, 255).round().to(torch.uint8)


def prepare_video(clip: VideoClip, settings: dict[str, Any]) -> _PreparedVideo:
    """Patches, grid and time labels for one clip (the reference's frame-list path)."""
    import torch

    keep = sample_frame_indices(len(clip.frames))
    video = _frames_tensor([clip.frames[i] for i in keep])
    count = video.shape[0]
    if clip.times is None:
        times = [i / _FRAME_LIST_FPS for i in range(count)]
    else:
        times = [float(clip.times[i]) for i in keep]
        times += times[-1:] * (count - len(times))
    height, width = video_frame_size(count, video.shape[2], video.shape[3])
    video = _resize_frames(video, height, width)

    patch, temporal, merge = settings["patch_size"], settings["temporal_patch_size"], settings["merge_size"]
    mean = torch.tensor(settings["image_mean"], dtype=torch.float32).view(1, -1, 1, 1) * 255.0
    std = torch.tensor(settings["image_std"], dtype=torch.float32).view(1, -1, 1, 1) * 255.0
    pixels = (video.to(torch.float32) - mean) / std
    channels = pixels.shape[1]
    grid = (count // temporal, height // patch, width // patch)
    pixels = pixels.view(
        grid[0], temporal, channels, grid[1] // merge, merge, patch, grid[2] // merge, merge, patch
    ).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixels = pixels.reshape(grid[0] * grid[1] * grid[2], channels * temporal * patch * patch)
    labels = tuple(f"<{t:.1f} seconds>" for t in _pair_times(times))
    return _PreparedVideo(pixels.contiguous(), grid, labels)


# --- Loading -----------------------------------------------------------------------------------------


def load(
    path: Path,
    model_id: str,
    *,
    device: str,
    dtype: str,
    quant: str,
    min_image_tokens: int = REFERENCE_MIN_IMAGE_TOKENS,
    max_image_tokens: int = REFERENCE_MAX_IMAGE_TOKENS,
    max_length: int = MAX_LENGTH,
    dim: int | None = None,
) -> Qwen3VLEmbedder:
    """A Qwen3-VL-Embedding embedder from a checked model folder, on the runtime `embed.choose_runtime` picked.

    `dim` keeps the first `dim` values of each vector (MRL), re-normalised; None keeps all of them.
    """
    check_budget(min_image_tokens, max_image_tokens)
    tokenizer, settings = load_processing(path)
    hf_model = load_qwen3_model(path, device, dtype, quant)
    full = int(hf_model.config.text_config.hidden_size)
    check_dim(dim, full)
    info = EmbedderInfo(
        model_id=model_id,
        dim=dim or full,
        min_image_tokens=min_image_tokens,
        max_image_tokens=max_image_tokens,
        device=device,
        dtype=dtype,
        quant=quant,
        family=FAMILY,
    )
    return Qwen3VLEmbedder(hf_model, tokenizer, settings, info, max_length=max_length)


def check_budget(min_image_tokens: int, max_image_tokens: int) -> None:
    # Above 1800 the reference's own resize would undo the budget's, so the two would not commute.
    if not 1 <= min_image_tokens <= max_image_tokens or min_image_tokens > REFERENCE_MAX_IMAGE_TOKENS:
        raise UmsearchError(
            f"image token limits must satisfy 1 <= min ({min_image_tokens}) <= max ({max_image_tokens}), "
            f"min at most {REFERENCE_MAX_IMAGE_TOKENS} for Qwen3-VL models"
        )


def check_dim(dim: int | None, full: int) -> None:
    if dim is not None and not 1 <= dim <= full:
        raise UmsearchError(f"--dim must be between 1 and the model's {full} dimensions, got {dim}")


def load_processing(path: Path) -> tuple[Any, dict[str, Any]]:
    """The tokenizer and the pixel settings (patch sizes, mean, std) from a model directory."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        raw = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
        settings = {key: raw[key] for key in _PROCESSOR_SETTINGS}
    except KeyError as exc:
        raise ModelError(f"{path}/preprocessor_config.json has no {exc.args[0]} (not a Qwen3-VL model?)") from None
    except Exception as exc:  # corrupt or foreign files: one line for the user, not a traceback
        raise ModelError(f"cannot load the tokenizer or image settings in {path}: {first_line(exc)}") from None
    if settings["patch_size"] * settings["merge_size"] != _FACTOR or settings["temporal_patch_size"] != 2:
        raise ModelError(
            f"{path} has patch size {settings['patch_size']} x merge {settings['merge_size']}, not the "
            "16 x 2 of Qwen3-VL"
        )
    return tokenizer, settings


def image_processor(settings: dict[str, Any]) -> Any:
    """transformers' PIL Qwen2-VL image processor, told not to resize (the reference passes do_resize=False:
    its own resize already ran). The fast processor would need torchvision."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(do_resize=False, **settings)


def load_qwen3_model(path: Path, device: str, dtype: str, quant: str) -> Any:
    """Qwen3VLModel (vision tower + text decoder, no output head) from a Qwen3-VL checkpoint."""
    import torch
    from transformers import Qwen3VLModel

    from .embed import BNB_QUANTS
    from .weights import quantize_int8, to_dtype

    model = load_pretrained(Qwen3VLModel, path, device, dtype, quant, _UNQUANTIZED_MODULES)
    if device == "cpu" and quant not in BNB_QUANTS:
        # Loaded memory-mapped in the files' precision (embed.load_pretrained): converted here tensor by tensor.
        # PyTorch's int8 layers take float32 activations, so with them everything around computes in float32;
        # the vision tower is never quantised (as with bitsandbytes).
        if quant == "int8-dynamic":
            to_dtype(model, torch.float32)
            quantize_int8(model.language_model)
        else:
            to_dtype(model, getattr(torch, dtype))
    return model


def special_token_ids(tokenizer: Any, names: Sequence[str]) -> dict[str, int]:
    """Ids of the given special tokens; ModelError if the tokenizer lacks one."""
    ids = {}
    for name in names:
        token_id = tokenizer.convert_tokens_to_ids(name)
        # A missing token maps to None or to the unknown token, which does not map back to it.
        if not isinstance(token_id, int) or tokenizer.convert_ids_to_tokens(token_id) != name:
            raise ModelError(f"the model's tokenizer has no {name} token (not a Qwen3-VL tokenizer?)")
        ids[name] = token_id
    return ids


# --- The embedder ------------------------------------------------------------------------------------


class Qwen3VLEmbedder:
    """Embeds text, images, videos and their combinations into one unit-length vector space."""

    family = FAMILY

    def __init__(
        self, model: Any, tokenizer: Any, settings: dict[str, Any], info: EmbedderInfo, *, max_length: int = MAX_LENGTH
    ) -> None:
        """`model` is a loaded Qwen3VLModel; `settings` the pixel settings from preprocessor_config.json."""
        check_budget(info.min_image_tokens, info.max_image_tokens)
        self.info = info
        self.max_length = max_length
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.image_processor = image_processor(settings)
        self._device = model.device
        self._full_dim = int(model.config.text_config.hidden_size)
        check_dim(info.dim, self._full_dim)
        self._merge_area = settings["merge_size"] ** 2
        self._special = special_token_ids(tokenizer, _SPECIAL_TOKENS)
        for name, config_id in (
            ("<|image_pad|>", model.config.image_token_id),
            ("<|video_pad|>", model.config.video_token_id),
            ("<|vision_start|>", model.config.vision_start_token_id),
        ):
            if self._special[name] != config_id:
                raise ModelError(
                    f"model {info.model_id} is inconsistent: the tokenizer's {name} id {self._special[name]} "
                    f"differs from its config's {config_id}"
                )

    # Public API, as GmeEmbedder's.

    def embed(self, inputs: Sequence[Any], batch_size: int = 8) -> np.ndarray:
        """(N, dim) float32 unit vectors, one per input (Qwen3Input, or EmbedInput), in order."""
        for item in inputs:
            if not item.text and item.image is None and getattr(item, "video", None) is None:
                raise ValueError("an input needs text, an image, a video, or a combination")
        return embed_in_batches(inputs, batch_size, self.info.dim, self.prepare, self.forward)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 8) -> np.ndarray:
        """Index vectors for images (always INDEX_INSTRUCTION)."""
        return self.embed([Qwen3Input(image=im, instruction=INDEX_INSTRUCTION) for im in images], batch_size)

    def embed_videos(self, clips: Sequence[VideoClip], batch_size: int = 1) -> np.ndarray:
        """Index vectors for videos, one per clip (always INDEX_INSTRUCTION)."""
        return self.embed([Qwen3Input(video=clip, instruction=INDEX_INSTRUCTION) for clip in clips], batch_size)

    def embed_clip(self, clip: VideoClip, segments: Sequence[tuple[int, int]] = ()) -> ClipVectors:
        """A sampled video for the index: one vector for the whole clip as one video input, and one per
        segment (frames [start, end) of the clip, a scene say) so that a hit can name its time.

        The hook for videos (issue "beyond still photos"): its sampler gives the frames and their times.
        """
        inputs = [Qwen3Input(video=clip, instruction=INDEX_INSTRUCTION)]
        starts = []
        for start, end in segments:
            if not 0 <= start < end <= len(clip.frames):
                raise ValueError(f"segment [{start}, {end}) is outside the clip's {len(clip.frames)} frames")
            times = clip.times[start:end] if clip.times is not None else None
            inputs.append(Qwen3Input(video=VideoClip(clip.frames[start:end], times), instruction=INDEX_INSTRUCTION))
            starts.append(clip.times[start] if clip.times is not None else start / _FRAME_LIST_FPS)
        vectors = self.embed(inputs, batch_size=1)
        return ClipVectors(vectors[0], list(zip(starts, vectors[1:], strict=True)))

    def embed_query(
        self,
        text: str | None = None,
        image: Image.Image | None = None,
        instruction: str | None = None,
        video: VideoClip | None = None,
    ) -> np.ndarray:
        """One query vector, shape (dim,)."""
        return self.embed([Qwen3Input(text=text, image=image, video=video, instruction=instruction)])[0]

    def prepare_images(
        self, images: Sequence[Image.Image], *, max_image_tokens: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs for index images: the CPU half of `embed_images`, safe to run on another thread
        while `embed_prepared` runs the model on the previous batch. With `max_image_tokens` above the
        embedder's own, images already fitted to that larger budget (screenshots, documents) keep their size."""
        items = [Qwen3Input(image=im, instruction=INDEX_INSTRUCTION) for im in images]
        return self.prepare(items, max_image_tokens=max_image_tokens)

    def text_fit(self, text: str, *, with_image: bool = False, instruction: str | None = None) -> tuple[int, int]:
        """(tokens in `text`, tokens of it the model reads): a long description beyond `max_length` is cut."""
        instruction = instruction if instruction is not None else default_instruction(True, with_image)
        full = len(self._plain(text))
        prompt = self.prompt_ids(Qwen3Input(text=text, instruction=instruction), 0)
        overhead = len(self.prompt_ids(Qwen3Input(text="", instruction=instruction), 0))
        return full, min(full, len(prompt) - overhead)

    def embed_prepared(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """(N, dim) float32 unit vectors for a batch from `prepare` / `prepare_images`."""
        import numpy as np
        import torch

        with torch.inference_mode():
            return self.forward(batch).cpu().numpy().astype(np.float32, copy=False)

    def fit_image(self, image: Image.Image) -> Image.Image:
        """The reference's resize, then the budget's (a no-op at the reference budget)."""
        return fit_image(image, self.info.min_image_tokens, self.info.max_image_tokens)

    def image_token_count(self, width: int, height: int) -> int:
        return image_token_count(width, height, self.info.min_image_tokens, self.info.max_image_tokens)

    # The procedure.

    def prepare(self, items: Sequence[Any], *, max_image_tokens: int | None = None) -> dict[str, torch.Tensor]:
        """The exact model inputs for `items`: right-padded ids, attention mask, token types, pixels.

        `max_image_tokens` raises the budget's ceiling (never lowers it) for images fitted to a larger one."""
        import torch

        batch: dict[str, torch.Tensor] = {}
        ceiling = max(self.info.max_image_tokens, max_image_tokens or 0)
        low = self.info.min_image_tokens
        images = [fit_image(item.image, low, ceiling) for item in items if item.image is not None]
        image_tokens: list[int] = []
        if images:
            vision = self.image_processor(images=images, return_tensors="pt")
            batch["pixel_values"] = vision["pixel_values"]
            batch["image_grid_thw"] = vision["image_grid_thw"]
            image_tokens = (vision["image_grid_thw"].prod(-1) // self._merge_area).tolist()
        videos = [prepare_video(v, self.settings) for item in items if (v := getattr(item, "video", None))]
        if videos:
            batch["pixel_values_videos"] = torch.cat([v.pixels for v in videos])
            batch["video_grid_thw"] = torch.tensor([v.grid for v in videos], dtype=torch.long)
        image_counts, video_iter = iter(image_tokens), iter(videos)
        rows = [
            self.prompt_ids(
                item,
                next(image_counts) if item.image is not None else 0,
                next(video_iter) if getattr(item, "video", None) is not None else None,
            )
            for item in items
        ]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self._special["<|endoftext|>"], dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        token_types = torch.zeros_like(input_ids)
        token_types[input_ids == self._special["<|image_pad|>"]] = 1
        token_types[input_ids == self._special["<|video_pad|>"]] = 2
        batch.update(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=token_types)
        return batch

    def prompt_ids(self, item: Any, image_tokens: int, video: _PreparedVideo | None = None) -> list[int]:
        """Token ids of one prompt: the chat template's rendering, tokenised segment by segment.

        Text between special tokens is tokenised as one run, which gives the ids the whole string would
        (the tokenizer splits on special tokens first), and lets only the user text give way when the
        prompt would exceed max_length.
        """
        sp = self._special
        instruction = item.instruction
        if instruction is None:
            instruction = default_instruction(bool(item.text), item.image is not None or video is not None)
        head: list[str | int] = [
            sp["<|im_start|>"],
            "system\n" + normalize_instruction(instruction),
            sp["<|im_end|>"],
            "\n",
            sp["<|im_start|>"],
            "user\n",
        ]
        if video is not None:
            per_patch = video.grid[1] * video.grid[2] // self._merge_area
            for label in video.labels:
                head += [label, sp["<|vision_start|>"], *[sp["<|video_pad|>"]] * per_patch, sp["<|vision_end|>"]]
        if item.image is not None:
            head += [sp["<|vision_start|>"], *[sp["<|image_pad|>"]] * image_tokens, sp["<|vision_end|>"]]
        tail: list[str | int] = [sp["<|im_end|>"], "\n", sp["<|im_start|>"], "assistant\n"]
        # The user text shares its run with any plain text just before it ("user\n" when no picture).
        last = head[-1]
        prefix = last if isinstance(last, str) else ""
        if prefix:
            head.pop()
        head_ids, tail_ids = self._ids(head), self._ids(tail)
        body = self._plain(prefix + (item.text or ""))
        budget = max(self.max_length - len(head_ids) - len(tail_ids), len(self._plain(prefix)))
        return head_ids + body[:budget] + tail_ids

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled, L2-normalised float32 vectors for a prepared batch."""
        import torch

        inputs = {key: value.to(self._device) for key, value in batch.items()}
        hidden = self.model(**inputs, use_cache=False).last_hidden_state
        mask = inputs["attention_mask"]
        last = mask.sum(dim=1) - 1
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
        return torch.nn.functional.normalize(pooled[:, : self.info.dim], p=2, dim=-1)

    def _ids(self, pieces: Sequence[str | int]) -> list[int]:
        ids: list[int] = []
        run = ""
        for piece in pieces:
            if isinstance(piece, str):
                run += piece
                continue
            if run:
                ids += self._plain(run)
                run = ""
            ids.append(piece)
        if run:
            ids += self._plain(run)
        return ids

    def _plain(self, text: str) -> list[int]:
        # split_special_tokens: a user who types "<|im_end|>" gets text, not template surgery.
        return self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)

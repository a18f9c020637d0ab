"""The GME family (gme-Qwen2-VL-2B/7B-Instruct) on transformers 5, without remote code or torchvision.

Reproduces the model repo's reference ``gme_inference.py`` (class GmeQwen2VL):

* prompt ``<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{image}{text}<|im_end|>\\n
  <|im_start|>assistant\\n<|endoftext|>``, where ``{image}`` is ``<|vision_start|>`` + one ``<|image_pad|>``
  per merged vision token + ``<|vision_end|>``;
* images: RGB, the qwen-vl-utils pre-resize to multiples of 28, then the Qwen2-VL image processor with
  min/max pixels = min/max image tokens * 28 * 28;
* forward: token embeddings with the vision tower's merged patches scattered into the image-pad slots,
  then the text decoder alone with plain 0..L-1 positions (not Qwen2-VL's M-RoPE image positions);
* pooling: the last real token's final hidden state (right padding), L2-normalised.

Deliberate differences: only the user text is truncated to fit ``max_length`` (the reference cut the
sequence's tail, template and image tokens included); user text is tokenised as plain text even if it
spells a special token; vectors are normalised in float32; batches run under ``torch.inference_mode``.

Importing this module is cheap: torch and transformers load only when a model is loaded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .embed import BNB_QUANTS, EmbedderInfo, EmbedInput, embed_in_batches, load_pretrained
from .errors import ModelError
from .modelfiles import first_line
from .qwenresize import into_pixel_range
from .settings import DEFAULT_BATCH_SIZE, PIXELS_PER_TOKEN

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

FAMILY = "gme"

INDEX_INSTRUCTION = "You are a helpful assistant."
TEXT_QUERY_INSTRUCTION = "Find an image that matches the given text."
# Same as the index instruction, so an image queried against itself scores exactly 1.
IMAGE_QUERY_INSTRUCTION = INDEX_INSTRUCTION
FUSED_QUERY_INSTRUCTION = "Find an image that looks like the given image, changed as the text describes."


# The reference's pre-resize (qwen-vl-utils smart_resize defaults).
_RESIZE_FACTOR = 28
_PRE_MIN_PIXELS = 4 * PIXELS_PER_TOKEN
_PRE_MAX_PIXELS = 16384 * PIXELS_PER_TOKEN
_MAX_RATIO = 200
# Taken from the model's preprocessor_config.json; the pixel limits come from the token limits instead.
_PROCESSOR_SETTINGS = ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")

# Checkpoint names, legacy ("model.layers.0...", "visual.blocks...": the hub's GME repos) and transformers 5
# ("model.language_model.layers...", "model.visual.blocks..."), mapped onto each part's own module names: a
# text query needs only the decoder (1.5 B of the 2B's 2.2 B parameters), so the parts load separately.
_DECODER_KEYS = {r"^(?:model\.)?(?:language_model\.)?(layers|embed_tokens|norm)\.": r"\1."}
_VISION_KEYS = {r"^(?:model\.)?visual\.": ""}


def default_instruction(has_text: bool, has_image: bool) -> str:
    """The instruction used when an input names none."""
    if has_image and has_text:
        return FUSED_QUERY_INSTRUCTION
    if has_image:
        return IMAGE_QUERY_INSTRUCTION
    return TEXT_QUERY_INSTRUCTION


def load(
    path: Path,
    model_id: str,
    *,
    device: str,
    dtype: str,
    quant: str,
    min_image_tokens: int,
    max_image_tokens: int,
    max_length: int = 1800,
) -> GmeEmbedder:
    """A GME embedder from a checked model folder, on the runtime `embed.choose_runtime` picked.

    Only the text decoder is loaded now; the vision tower loads with the first image (a text query never
    needs it).
    """
    tokenizer, image_processor = _load_processors(path, min_image_tokens, max_image_tokens)
    config = _load_config(path)
    decoder = _load_decoder(path, config, device, dtype, quant)
    info = EmbedderInfo(
        model_id=model_id,
        dim=int(config.text_config.hidden_size),
        min_image_tokens=min_image_tokens,
        max_image_tokens=max_image_tokens,
        device=device,
        dtype=dtype,
        quant=quant,
    )
    return GmeEmbedder(
        decoder,
        tokenizer,
        image_processor,
        info,
        image_token_id=int(config.image_token_id),
        load_visual=lambda: _load_visual(path, config, device, dtype),
        max_length=max_length,
    )


def _load_config(path: Path) -> Any:
    from transformers import Qwen2VLConfig

    try:
        return Qwen2VLConfig.from_pretrained(path)
    except Exception as exc:  # corrupt or foreign files: one line for the user, not a traceback
        raise ModelError(f"cannot load the model configuration in {path}: {first_line(exc)}") from None


def _load_decoder(path: Path, config: Any, device: str, dtype: str, quant: str) -> Any:
    """The text decoder alone (Qwen2VLTextModel): never the language-model head, never the vision tower."""
    import torch
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLTextModel

    from .weights import quantize_int8, to_dtype

    decoder = load_pretrained(
        Qwen2VLTextModel, path, device, dtype, quant, [], config=config.text_config, key_mapping=_DECODER_KEYS
    )
    if device == "cpu" and quant not in BNB_QUANTS:
        # Loaded memory-mapped in the files' precision. The token table stays so: a query touches a few
        # dozen of its 151,936 rows, and forward() casts them (the values a converted table would hold).
        if quant == "int8-dynamic":
            to_dtype(decoder, torch.float32, skip=("embed_tokens.",))
            quantize_int8(decoder)
        else:
            to_dtype(decoder, getattr(torch, dtype), skip=("embed_tokens.",))
    return decoder


def _load_visual(path: Path, config: Any, device: str, dtype: str) -> Any:
    """The vision tower, never quantised (quantising Qwen2-VL-2B's vision tower is known to break it)."""
    import torch
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

    from .weights import to_dtype

    if not path.is_dir():
        # Loaded at the first image, possibly long after the text decoder (a service, a watcher): the folder
        # may have been removed since. Said as such, not as transformers' guess that it is a hub id.
        raise ModelError(
            f"model directory {path} does not exist (removed since the model was loaded; images need its files)"
        )
    visual = load_pretrained(
        Qwen2VisionTransformerPretrainedModel,
        path,
        device,
        dtype,
        "none",
        [],
        config=config.vision_config,
        key_mapping=_VISION_KEYS,
    )
    if device == "cpu":
        to_dtype(visual, getattr(torch, dtype))
    return visual


def _load_processors(path: Path, min_image_tokens: int, max_image_tokens: int) -> tuple[Any, Any]:
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        settings = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
        # Built directly: AutoProcessor would pull in the video processor, which needs torchvision.
        image_processor = Qwen2VLImageProcessorPil(
            size={
                "shortest_edge": min_image_tokens * PIXELS_PER_TOKEN,
                "longest_edge": max_image_tokens * PIXELS_PER_TOKEN,
            },
            **{key: settings[key] for key in _PROCESSOR_SETTINGS if key in settings},
        )
    except Exception as exc:  # corrupt or foreign files: one line for the user, not a traceback
        raise ModelError(f"cannot load the tokenizer or image settings in {path}: {first_line(exc)}") from None
    return tokenizer, image_processor


def gme_pre_resize(image: Image.Image) -> Image.Image:
    """The reference's first resize: RGB, sides rounded to multiples of 28 (PIL's default filter)."""
    image = image.convert("RGB")
    width, height = image.size
    new_height, new_width = _smart_resize(height, width)
    return image.resize((new_width, new_height))


def fit_image(image: Image.Image, min_image_tokens: int, max_image_tokens: int) -> Image.Image:
    """Both of the embedder's resizes, done ahead (on a loader thread, say) with the same PIL operations.

    The result is already at the size `prepare` would give it, so `prepare`'s own resizes become
    same-size copies (PIL returns a copy when the size does not change): the vectors are identical,
    the expensive resampling runs off the model's thread, and a decoded photo waiting in a read-ahead
    queue holds at most `max_image_tokens * 28 * 28` pixels.
    """
    from PIL import Image as PILImage

    image = gme_pre_resize(image)
    width, height = image.size
    new_height, new_width = _processor_resize(height, width, min_image_tokens, max_image_tokens)
    if (new_width, new_height) == (width, height):
        return image
    # The image processor's resample (Qwen2VLImageProcessorPil.resample), on the same uint8 RGB pixels.
    return image.resize((new_width, new_height), resample=PILImage.Resampling.BICUBIC)


def image_token_count(width: int, height: int, min_image_tokens: int, max_image_tokens: int) -> int:
    """How many visual tokens (image-pad slots) an image of this size gets under the budget."""
    pre_height, pre_width = _smart_resize(height, width)
    new_height, new_width = _processor_resize(pre_height, pre_width, min_image_tokens, max_image_tokens)
    return (new_height // _RESIZE_FACTOR) * (new_width // _RESIZE_FACTOR)


def _processor_resize(height: int, width: int, min_image_tokens: int, max_image_tokens: int) -> tuple[int, int]:
    # transformers' qwen2_vl smart_resize, with the pixel limits the embedder gives its image processor.
    factor = _RESIZE_FACTOR
    min_pixels, max_pixels = min_image_tokens * PIXELS_PER_TOKEN, max_image_tokens * PIXELS_PER_TOKEN
    rounded = round(height / factor) * factor, round(width / factor) * factor
    return into_pixel_range(height, width, rounded, min_pixels, max_pixels, factor)


def _smart_resize(height: int, width: int) -> tuple[int, int]:
    factor = _RESIZE_FACTOR
    rounded = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    h_bar, w_bar = into_pixel_range(height, width, rounded, _PRE_MIN_PIXELS, _PRE_MAX_PIXELS, factor)
    if max(h_bar, w_bar) / min(h_bar, w_bar) > _MAX_RATIO:
        if h_bar > w_bar:
            h_bar = w_bar * _MAX_RATIO
        else:
            w_bar = h_bar * _MAX_RATIO
    return h_bar, w_bar


class GmeEmbedder:
    """Embeds text, images and image+text pairs into one unit-length vector space."""

    def __init__(
        self,
        decoder: Any,
        tokenizer: Any,
        image_processor: Any,
        info: EmbedderInfo,
        *,
        image_token_id: int,
        load_visual: Callable[[], Any],
        max_length: int = 1800,
    ) -> None:
        """`decoder` is a loaded Qwen2VLTextModel; `load_visual` loads the vision tower (called once, on the
        first image); `image_processor` is a Qwen2VLImageProcessorPil sized for `info`."""
        import torch

        self.info = info
        self.max_length = max_length
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token_id = image_token_id
        self._load_visual = load_visual
        self._visual: Any = None
        self._visual_lock = threading.Lock()
        self._device = decoder.device
        # The decoder's compute precision; its token table may stay in the files' precision (_load_decoder).
        self._dtype = torch.float32 if info.quant == "int8-dynamic" else decoder.norm.weight.dtype
        self._merge_length = self.image_processor.merge_size**2
        self._special = {
            name: self._special_id(name)
            for name in (
                "<|im_start|>",
                "<|im_end|>",
                "<|endoftext|>",
                "<|vision_start|>",
                "<|vision_end|>",
                "<|image_pad|>",
            )
        }
        if self._special["<|image_pad|>"] != image_token_id:
            raise ModelError(
                f"model {info.model_id} is inconsistent: the tokenizer's <|image_pad|> id "
                f"{self._special['<|image_pad|>']} differs from config image_token_id {image_token_id}"
            )
        self._newline = self._plain("\n")
        self._user = self._plain("user\n")
        self._assistant = self._plain("assistant\n")

    @property
    def visual(self) -> Any:
        """The vision tower, loaded on first use (a text query never needs it)."""
        if self._visual is None:
            with self._visual_lock:
                if self._visual is None:
                    self._visual = self._load_visual()
        return self._visual

    @property
    def visual_loaded(self) -> bool:
        return self._visual is not None

    def embed(self, inputs: Sequence[EmbedInput], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """(N, dim) float32 unit vectors, one per input, in order."""
        for item in inputs:
            if not item.text and item.image is None:
                raise ValueError("an EmbedInput needs text, an image, or both")
        return embed_in_batches(inputs, batch_size, self.info.dim, self.prepare, self.forward)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Index vectors for images (always INDEX_INSTRUCTION)."""
        return self.embed([EmbedInput(image=im, instruction=INDEX_INSTRUCTION) for im in images], batch_size)

    def embed_query(
        self, text: str | None = None, image: Image.Image | None = None, instruction: str | None = None
    ) -> np.ndarray:
        """One query vector, shape (dim,)."""
        return self.embed([EmbedInput(text=text, image=image, instruction=instruction)])[0]

    def prepare_images(
        self, images: Sequence[Image.Image], *, max_image_tokens: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs for index images: the CPU half of `embed_images`, safe to run on another thread
        while `embed_prepared` runs the model on the previous batch. With `max_image_tokens` above the
        embedder's own, images already fitted to that larger budget (`fit_image`) keep their size."""
        items = [EmbedInput(image=im, instruction=INDEX_INSTRUCTION) for im in images]
        return self.prepare(items, max_image_tokens=max_image_tokens)

    def embed_prepared(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """(N, dim) float32 unit vectors for a batch from `prepare` / `prepare_images`."""
        import numpy as np
        import torch

        with torch.inference_mode():
            return self.forward(batch).cpu().numpy().astype(np.float32, copy=False)

    def prepare(self, items: Sequence[EmbedInput], *, max_image_tokens: int | None = None) -> dict[str, torch.Tensor]:
        """The exact model inputs for `items`: right-padded input_ids, attention_mask and image tensors."""
        import torch

        images = [gme_pre_resize(item.image) for item in items if item.image is not None]
        batch: dict[str, torch.Tensor] = {}
        image_tokens: list[int] = []
        if images:
            ceiling = {}
            if max_image_tokens is not None and max_image_tokens > self.info.max_image_tokens:
                low = self.info.min_image_tokens * PIXELS_PER_TOKEN
                ceiling["size"] = {"shortest_edge": low, "longest_edge": max_image_tokens * PIXELS_PER_TOKEN}
            vision = self.image_processor(images=images, return_tensors="pt", **ceiling)
            batch["pixel_values"] = vision["pixel_values"]
            batch["image_grid_thw"] = vision["image_grid_thw"]
            image_tokens = (vision["image_grid_thw"].prod(-1) // self._merge_length).tolist()
        token_counts = iter(image_tokens)
        rows = [self.prompt_ids(item, next(token_counts) if item.image is not None else 0) for item in items]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self._special["<|endoftext|>"], dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        batch["input_ids"] = input_ids
        batch["attention_mask"] = attention_mask
        return batch

    def text_fit(self, text: str, *, with_image: bool = False, instruction: str | None = None) -> tuple[int, int]:
        """(tokens in `text`, tokens of it the model reads): a long description beyond `max_length` is cut."""
        item = EmbedInput(text=text, image=None, instruction=instruction)
        if instruction is None:
            item = EmbedInput(text=text, instruction=default_instruction(True, with_image))
        full = len(self._plain(text))
        prompt = self.prompt_ids(item, 0)
        overhead = len(self.prompt_ids(EmbedInput(text="", instruction=item.instruction), 0))
        kept = min(full, len(prompt) - overhead)
        return full, kept

    def prompt_ids(self, item: EmbedInput, image_tokens: int) -> list[int]:
        """Token ids of one prompt, with `image_tokens` image-pad slots when the item has an image.

        Built segment by segment between special tokens, which tokenises exactly like the full
        prompt string does (the tokenizer splits on special tokens first), and lets only the user
        text give way when the prompt would exceed max_length.
        """
        sp = self._special
        instruction = item.instruction
        if instruction is None:
            instruction = default_instruction(bool(item.text), item.image is not None)
        text = item.text or ""
        head = [
            sp["<|im_start|>"],
            *self._plain("system\n" + instruction),
            sp["<|im_end|>"],
            *self._newline,
            sp["<|im_start|>"],
        ]
        tail = [sp["<|im_end|>"], *self._newline, sp["<|im_start|>"], *self._assistant, sp["<|endoftext|>"]]
        if item.image is not None:
            head += [*self._user, sp["<|vision_start|>"], *[sp["<|image_pad|>"]] * image_tokens, sp["<|vision_end|>"]]
            body, keep_at_least = self._plain(text), 0
        else:
            # Without an image, "user\n" and the text share one segment, so they are tokenised together.
            body, keep_at_least = self._plain("user\n" + text), len(self._user)
        # The template and image tokens are never cut; if they alone exceed max_length the prompt runs long.
        budget = max(self.max_length - len(head) - len(tail), keep_at_least)
        return head + body[:budget] + tail

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled, L2-normalised float32 vectors for a prepared batch."""
        import torch

        input_ids = batch["input_ids"].to(self._device)
        attention_mask = batch["attention_mask"].to(self._device)
        embeds = self.decoder.get_input_embeddings()(input_ids).to(self._dtype)
        if "pixel_values" in batch:
            visual = self.visual
            vision = visual(
                batch["pixel_values"].to(self._device, visual.dtype),
                grid_thw=batch["image_grid_thw"].to(self._device),
            )
            # transformers 5 returns BaseModelOutputWithPooling (merged patches in pooler_output); 4.x a tensor.
            image_embeds = getattr(vision, "pooler_output", vision)
            embeds[input_ids == self.image_token_id] = image_embeds.to(embeds.dtype)
        rows, length = input_ids.shape
        # Plain text positions on all three M-RoPE axes, as the reference's decoder-only call gets.
        positions = torch.arange(length, device=self._device).view(1, 1, -1).expand(3, rows, -1)
        hidden = self.decoder(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions, use_cache=False
        ).last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        pooled = hidden[torch.arange(rows, device=self._device), last].float()
        return torch.nn.functional.normalize(pooled, p=2, dim=-1)

    def _plain(self, text: str) -> list[int]:
        # split_special_tokens: a user who types "<|im_end|>" gets text, not template surgery.
        return self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)

    def _special_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        # A missing token maps to None or to the unknown token, which does not map back to it.
        if not isinstance(token_id, int) or self.tokenizer.convert_ids_to_tokens(token_id) != token:
            raise ModelError(f"the model's tokenizer has no {token} token (not a gme-Qwen2-VL tokenizer?)")
        return token_id

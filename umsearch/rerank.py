"""Qwen3-VL-Reranker (2B/8B): rescoring (query, candidate) pairs, on transformers 5 without remote code.

Reproduces the reference ``Qwen3VLReranker`` (github QwenLM/Qwen3-VL-Embedding,
src/models/qwen3_vl_reranker.py): one pair at a time, the conversation

    <|im_start|>system\\nJudge whether the Document meets the requirements based on the Query and the
    Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\\n<|im_start|>user\\n
    <Instruct>: {instruction}<Query>:{videos}{images}{text}\\n<Document>:{videos}{images}{text}<|im_end|>\\n
    <|im_start|>assistant\\n

(an empty side reads "NULL"), images and videos prepared exactly as the embedder's (umsearch.qwen3vl:
4-1800 tokens per image, the frame-list video path), the token sequence before the final five tokens cut
to ``max_length`` keeping every special token, the full Qwen3-VL forward, and the score
sigmoid(h · (w_yes − w_no)) where h is the last position's final hidden state and w_yes, w_no are the
output-head rows of the tokens "yes" and "no": the probability of "yes" against "no" as the next token.

Only those two rows of the output head are read (straight from the checkpoint, or from the input
embedding when the two are tied), so the full head never takes memory. Deliberate differences, as the
embedder's: user text stays plain text even if it spells a special token; images beyond 200:1 are clamped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError
from .qwen3vl import (
    REFERENCE_MAX_IMAGE_TOKENS,
    REFERENCE_MIN_IMAGE_TOKENS,
    VideoClip,
    check_budget,
    fit_image,
    image_processor,
    load_processing,
    load_qwen3_model,
    prepare_video,
    special_token_ids,
)

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
MAX_LENGTH = 10240

_KEPT_TAIL = 5  # the reference never cuts the last five tokens (<|im_end|> \n <|im_start|> assistant \n)
_SPECIAL = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


@dataclass(frozen=True)
class RerankItem:
    """A query or a candidate: any of text, an image and a video."""

    text: str | None = None
    image: Image.Image | None = None
    video: VideoClip | None = None


@dataclass(frozen=True)
class RerankerInfo:
    model_id: str
    min_image_tokens: int
    max_image_tokens: int
    device: str
    dtype: str
    quant: str


def load_reranker(
    model: str,
    *,
    device: str = "auto",
    quant: str = "auto",
    dtype: str = "auto",
    min_image_tokens: int = REFERENCE_MIN_IMAGE_TOKENS,
    max_image_tokens: int = REFERENCE_MAX_IMAGE_TOKENS,
    max_length: int = MAX_LENGTH,
) -> Qwen3Reranker:
    """Find (or download) a Qwen3-VL-Reranker, load it on the chosen device, and return it ready."""
    from .embed import choose_runtime
    from .families import QWEN3_VL, family_of_dir
    from .modelfiles import resolve_model
    from .settings import normalize_model_spec

    check_budget(min_image_tokens, max_image_tokens)
    path = resolve_model(model)
    if family_of_dir(path) is not QWEN3_VL:
        raise ModelError(f"{model} is not a Qwen3-VL model, so not a Qwen3-VL-Reranker")
    device, dtype, quant = choose_runtime(device, quant, dtype)
    tokenizer, settings = load_processing(path)
    hf_model = load_qwen3_model(path, device, dtype, quant)
    direction = yes_minus_no(path, hf_model, tokenizer)
    info = RerankerInfo(normalize_model_spec(model), min_image_tokens, max_image_tokens, device, dtype, quant)
    return Qwen3Reranker(hf_model, tokenizer, settings, direction, info, max_length=max_length)


def yes_minus_no(path: Path, model: Any, tokenizer: Any) -> torch.Tensor:
    """w_yes − w_no: the difference of the output head's rows for "yes" and "no", in the model's dtype."""
    vocab = tokenizer.get_vocab()
    if "yes" not in vocab or "no" not in vocab:
        raise ModelError(f"the tokenizer in {path} has no 'yes'/'no' tokens: not a Qwen3-VL-Reranker")
    rows = _head_rows(path, [vocab["yes"], vocab["no"]])
    if rows is None:  # tied: the head is the input embedding
        rows = model.get_input_embeddings().weight[[vocab["yes"], vocab["no"]]].detach()
    dtype = model.get_input_embeddings().weight.dtype
    return (rows[0].float() - rows[1].float()).to(model.device, dtype)


def _head_rows(path: Path, token_ids: list[int]) -> torch.Tensor | None:
    """The rows of lm_head.weight for `token_ids`, read from the checkpoint; None if it has no head."""
    import torch
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.is_file():
        shard = json.loads(index.read_text(encoding="utf-8"))["weight_map"].get("lm_head.weight")
        files = [path / shard] if shard else []
    else:
        files = sorted(path.glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            if "lm_head.weight" in handle.keys():  # noqa: SIM118 (safe_open has no __contains__)
                head = handle.get_slice("lm_head.weight")
                return torch.stack([head[i : i + 1][0] for i in token_ids])
    return None


class Qwen3Reranker:
    """Scores how well each candidate answers a query: the probability (0-1) the model says "yes"."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: dict[str, Any],
        direction: torch.Tensor,
        info: RerankerInfo,
        *,
        max_length: int = MAX_LENGTH,
    ) -> None:
        check_budget(info.min_image_tokens, info.max_image_tokens)
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.direction = direction
        self.info = info
        self.max_length = max_length
        self.image_processor = image_processor(settings)
        self._merge_area = settings["merge_size"] ** 2
        self._special = special_token_ids(tokenizer, _SPECIAL)
        # What the reference's truncation keeps whatever the budget: every special token of the tokenizer.
        self._keep = set(tokenizer.all_special_ids)

    def score(self, query: RerankItem, candidates: Sequence[RerankItem], instruction: str | None = None) -> np.ndarray:
        """One score in [0, 1] per candidate, in order (float64)."""
        import numpy as np
        import torch

        scores = np.zeros(len(candidates), dtype=np.float64)
        with torch.inference_mode():
            for i, candidate in enumerate(candidates):
                scores[i] = self.score_prepared(self.prepare(query, candidate, instruction))
        return scores

    def prepare(self, query: RerankItem, candidate: RerankItem, instruction: str | None = None) -> dict[str, Any]:
        """The exact model inputs for one (query, candidate) pair."""
        import torch

        batch: dict[str, Any] = {}
        sides = (query, candidate)
        images = [self._fit(side.image) for side in sides if side.image is not None]
        image_tokens: list[int] = []
        if images:
            vision = self.image_processor(images=images, return_tensors="pt")
            batch["pixel_values"] = vision["pixel_values"]
            batch["image_grid_thw"] = vision["image_grid_thw"]
            image_tokens = (vision["image_grid_thw"].prod(-1) // self._merge_area).tolist()
        videos = [prepare_video(side.video, self.settings) for side in sides if side.video is not None]
        if videos:
            batch["pixel_values_videos"] = torch.cat([v.pixels for v in videos])
            batch["video_grid_thw"] = torch.tensor([v.grid for v in videos], dtype=torch.long)
        ids = self.prompt_ids(query, candidate, instruction or DEFAULT_INSTRUCTION, iter(image_tokens), iter(videos))
        input_ids = torch.tensor([ids], dtype=torch.long)
        token_types = torch.zeros_like(input_ids)
        token_types[input_ids == self._special["<|image_pad|>"]] = 1
        token_types[input_ids == self._special["<|video_pad|>"]] = 2
        batch.update(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), mm_token_type_ids=token_types)
        return batch

    def score_prepared(self, batch: dict[str, Any]) -> float:
        import torch

        device = self.model.device
        inputs = {key: value.to(device) for key, value in batch.items()}
        hidden = self.model(**inputs, use_cache=False).last_hidden_state[:, -1]
        logit = hidden.to(self.direction.dtype) @ self.direction
        return float(torch.sigmoid(logit.float())[0])

    def prompt_ids(
        self, query: RerankItem, candidate: RerankItem, instruction: str, images: Any, videos: Any
    ) -> list[int]:
        sp = self._special
        pieces: list[str | int] = [
            sp["<|im_start|>"],
            "system\n" + SYSTEM_PROMPT,
            sp["<|im_end|>"],
            "\n",
            sp["<|im_start|>"],
            "user\n<Instruct>: " + instruction,
        ]
        for prefix, side in (("<Query>:", query), ("\n<Document>:", candidate)):
            pieces.append(prefix)
            if side.text is None and side.image is None and side.video is None:
                pieces.append("NULL")
                continue
            if side.video is not None:
                video = next(videos)
                per_patch = video.grid[1] * video.grid[2] // self._merge_area
                for label in video.labels:
                    pieces += [label, sp["<|vision_start|>"], *[sp["<|video_pad|>"]] * per_patch, sp["<|vision_end|>"]]
            if side.image is not None:
                pieces += [sp["<|vision_start|>"], *[sp["<|image_pad|>"]] * next(images), sp["<|vision_end|>"]]
            if side.text is not None:
                pieces.append(side.text)
        pieces += [sp["<|im_end|>"], "\n", sp["<|im_start|>"], "assistant\n"]
        ids = self._ids(pieces)
        return self._truncate(ids[:-_KEPT_TAIL]) + ids[-_KEPT_TAIL:]

    def _truncate(self, ids: list[int]) -> list[int]:
        # The reference's rule: keep every special token and the first (max_length - specials) others.
        if len(ids) <= self.max_length:
            return ids
        budget = self.max_length - sum(1 for i in ids if i in self._keep)
        kept: list[int] = []
        for token in ids:
            if token in self._keep:
                kept.append(token)
            elif budget > 0:
                kept.append(token)
                budget -= 1
        return kept

    def _fit(self, image: Image.Image) -> Image.Image:
        return fit_image(image, self.info.min_image_tokens, self.info.max_image_tokens)

    def _ids(self, pieces: Sequence[str | int]) -> list[int]:
        ids: list[int] = []
        run = ""
        for piece in [*pieces, None]:
            if isinstance(piece, str):
                run += piece
                continue
            if run:
                ids += self.tokenizer.encode(run, add_special_tokens=False, split_special_tokens=True)
                run = ""
            if piece is not None:
                ids.append(piece)
        return ids


def rerank_cost_note(device: str) -> str | None:
    """A one-line warning when reranking will be slow: on a CPU every candidate is a full model pass."""
    if device != "cpu":
        return None
    return (
        "reranking on the CPU runs the reranker once per candidate photo (from seconds to minutes each with a "
        "full-size model): a smaller --rerank N, a faster --quality, or a GPU make it bearable"
    )


def rerank_order(scores: Sequence[float]) -> list[int]:
    """Candidate positions by reranker score, best first (ties keep the first stage's order)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


# --- Applying it to search results ------------------------------------------------------------------


def rerank_query(texts: Sequence[str | None], images: Sequence[Any]) -> RerankItem:
    """The reranker's query from a search's positive terms: their words joined, and the first picture."""
    words = "; ".join(t.strip() for t in texts if t and t.strip()) or None
    image = next((im for im in images if im is not None), None)
    return RerankItem(text=words, image=image)


def rerank_hits(
    reranker: Qwen3Reranker,
    query: RerankItem,
    hits: Sequence[Any],
    top: int,
    load_candidate: Callable[[Any], Image.Image],
    instruction: str | None = None,
    before_each: Callable[[], None] | None = None,
) -> list[Any]:
    """`hits` (search.Hit, best first) with the first `top` rescored by the reranker and put in its order.

    `load_candidate` gives a hit's picture (a photo, or a video's matching frame, a document's page). Each
    rescored hit carries its probability in `rerank`; ranks are renumbered. A candidate that can no longer
    be read (moved or deleted since it was indexed) keeps its place after the rescored ones.
    """
    from .errors import UmsearchError

    head, tail = list(hits[:top]), list(hits[top:])
    readable, unreadable, items = [], [], []
    for hit in head:
        try:
            items.append(RerankItem(image=load_candidate(hit)))
            readable.append(hit)
        except (UmsearchError, OSError):
            unreadable.append(hit)
    scores = []
    for item in items:  # one pass per candidate, as the reference; `before_each` may stop a stale search
        if before_each is not None:
            before_each()
        scores.append(float(reranker.score(query, [item], instruction)[0]))
    ordered = [dataclasses.replace(readable[i], rerank=scores[i]) for i in rerank_order(scores)]
    return [dataclasses.replace(hit, rank=n) for n, hit in enumerate(ordered + unreadable + tail, start=1)]

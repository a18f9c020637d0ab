"""Qwen3-VL-Reranker: the reranker reproduces the reference Qwen3VLReranker's yes/no scoring.

The reference (QwenLM/Qwen3-VL-Embedding src/models/qwen3_vl_reranker.py) is restated step by step: the
pair conversation, vision fetching and placeholder expansion (shared with the embedder's reference in
test_qwen3vl.py), the special-token-preserving truncation, the full model (Qwen3VLForConditionalGeneration,
loaded independently, output head included), and sigmoid(h_last · (lm_head[yes] − lm_head[no])).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Qwen3VLForConditionalGeneration

from tests.qwen3_support import make_frames
from tests.test_embed import make_image
from tests.test_qwen3vl import (
    MAX_FRAMES,
    MAX_PIXELS,
    MAX_TOTAL_PIXELS,
    MIN_PIXELS,
    ref_hidden,
    ref_tokenizer,
    ref_vision_and_texts,
)
from umsearch.qwen3vl import VideoClip
from umsearch.rerank import DEFAULT_INSTRUCTION, Qwen3Reranker, RerankItem, load_reranker, rerank_order

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)


def ref_content(item: RerankItem, prefix: str) -> list[dict]:
    """Qwen3VLReranker.format_mm_content for one text, one image and one frame-list video."""
    content = [{"type": "text", "text": prefix}]
    if item.text is None and item.image is None and item.video is None:
        content.append({"type": "text", "text": "NULL"})
        return content
    if item.video is not None:
        frames = list(item.video.frames)
        if len(frames) > MAX_FRAMES:
            frames = [frames[i] for i in np.linspace(0, len(frames) - 1, MAX_FRAMES, dtype=int).tolist()]
        content.append({"type": "video", "video": frames, "total_pixels": MAX_TOTAL_PIXELS})
    if item.image is not None:
        content.append({"type": "image", "image": item.image, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
    if item.text is not None:
        content.append({"type": "text", "text": item.text})
    return content


def ref_pair(query: RerankItem, document: RerankItem, instruction: str) -> list[dict]:
    """Qwen3VLReranker.format_mm_instruction."""
    contents = [{"type": "text", "text": "<Instruct>: " + instruction}]
    contents += ref_content(query, "<Query>:")
    contents += ref_content(document, "\n<Document>:")
    return [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]}, {"role": "user", "content": contents}]


def ref_truncate(tokens: list[int], max_length: int, special: set[int]) -> list[int]:
    if len(tokens) <= max_length:
        return tokens
    keep_plain = max_length - sum(1 for t in tokens if t in special)
    out, kept = [], 0
    for t in tokens:
        if t in special:
            out.append(t)
        elif kept < keep_plain:
            out.append(t)
            kept += 1
    return out


def reference_scores(
    model_dir: Path,
    lm: Qwen3VLForConditionalGeneration,
    query: RerankItem,
    documents: list[RerankItem],
    instruction: str = DEFAULT_INSTRUCTION,
    max_length: int = 10240,
) -> tuple[list[float], list[list[int]]]:
    tokenizer = ref_tokenizer(model_dir)
    head = lm.lm_head.weight
    linear = head[tokenizer.get_vocab()["yes"]] - head[tokenizer.get_vocab()["no"]]
    scores, all_ids = [], []
    for document in documents:
        texts, batch = ref_vision_and_texts(model_dir, [ref_pair(query, document, instruction)])
        ids = tokenizer(texts, truncation=False, padding=False)["input_ids"][0]
        ids = ref_truncate(ids[:-5], max_length, set(tokenizer.all_special_ids)) + ids[-5:]
        padded = tokenizer.pad({"input_ids": [ids]}, padding=True, padding_side="left", return_tensors="pt")
        hidden = ref_hidden(lm, padded["input_ids"], padded["attention_mask"], batch)[:, -1]
        with torch.inference_mode():
            scores.append(float(torch.sigmoid(hidden @ linear)[0]))
        all_ids.append(ids)
    return scores, all_ids


@pytest.fixture(scope="module")
def lm(tiny_reranker_dir: Path) -> Qwen3VLForConditionalGeneration:
    model, info = Qwen3VLForConditionalGeneration.from_pretrained(
        tiny_reranker_dir, dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not model.config.tie_word_embeddings  # so the head's rows differ from the input embedding's
    return model.eval()


@pytest.fixture(scope="module")
def reranker(tiny_reranker_dir: Path) -> Qwen3Reranker:
    return load_reranker(str(tiny_reranker_dir), device="cpu", quant="none", dtype="float32")


DOCUMENTS = [
    RerankItem(text="a cat asleep on a red sofa"),
    RerankItem(image=make_image(120, 90, 1)),
    RerankItem(text="the same photo at night", image=make_image(64, 96, 2)),
    RerankItem(video=VideoClip(make_frames(3, 64, 64, 3))),
    RerankItem(),
]
QUERIES = {
    "text": RerankItem(text="a sleeping cat"),
    "image": RerankItem(image=make_image(80, 80, 4)),
    "image+text": RerankItem(text="but in winter", image=make_image(100, 60, 5)),
}


@pytest.mark.parametrize("query", list(QUERIES))
def test_scores_match_the_reference_procedure(
    reranker: Qwen3Reranker, tiny_reranker_dir: Path, lm: Qwen3VLForConditionalGeneration, query: str
) -> None:
    expected, expected_ids = reference_scores(tiny_reranker_dir, lm, QUERIES[query], DOCUMENTS)
    got = reranker.score(QUERIES[query], DOCUMENTS)
    assert [reranker.prepare(QUERIES[query], d)["input_ids"][0].tolist() for d in DOCUMENTS] == expected_ids
    assert np.allclose(got, expected, atol=1e-5), (got, expected)
    assert got.dtype == np.float64 and np.all((got >= 0) & (got <= 1))
    assert np.ptp(got) > 1e-4  # the candidates are told apart, so the check above can fail


def test_a_custom_instruction_is_used(
    reranker: Qwen3Reranker, tiny_reranker_dir: Path, lm: Qwen3VLForConditionalGeneration
) -> None:
    query, docs = QUERIES["text"], DOCUMENTS[:2]
    expected, _ = reference_scores(tiny_reranker_dir, lm, query, docs, instruction="Find photos of pets.")
    assert np.allclose(reranker.score(query, docs, instruction="Find photos of pets."), expected, atol=1e-5)
    assert not np.allclose(reranker.score(query, docs), expected, atol=1e-5)


def test_a_long_pair_is_cut_keeping_special_tokens_and_the_tail(
    tiny_reranker_dir: Path, lm: Qwen3VLForConditionalGeneration
) -> None:
    short = load_reranker(str(tiny_reranker_dir), device="cpu", quant="none", dtype="float32", max_length=120)
    query, docs = RerankItem(text="snow " * 150), [RerankItem(text="mountains " * 100, image=make_image(64, 64, 6))]
    expected, expected_ids = reference_scores(tiny_reranker_dir, lm, query, docs, max_length=120)
    ids = short.prepare(query, docs[0])["input_ids"][0].tolist()
    assert ids == expected_ids[0] and len(ids) == 125
    assert ids.count(short.tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 4
    assert short.tokenizer.decode(ids[-5:]) == "<|im_end|>\n<|im_start|>assistant\n"
    assert np.allclose(short.score(query, docs), expected, atol=1e-5)


def test_a_tied_output_head_is_read_from_the_input_embedding(tiny_qwen3_dir: Path) -> None:
    # The Embedding-2B layout (tied, no lm_head in the checkpoint) loaded as a reranker.
    tied = load_reranker(str(tiny_qwen3_dir), device="cpu", quant="none", dtype="float32")
    lm_tied = Qwen3VLForConditionalGeneration.from_pretrained(tiny_qwen3_dir, dtype=torch.float32).eval()
    assert lm_tied.config.tie_word_embeddings
    expected, _ = reference_scores(tiny_qwen3_dir, lm_tied, QUERIES["text"], DOCUMENTS[:2])
    assert np.allclose(tied.score(QUERIES["text"], DOCUMENTS[:2]), expected, atol=1e-5)


def test_rerank_order_is_best_first_and_stable() -> None:
    assert rerank_order([0.2, 0.9, 0.2, 0.5]) == [1, 3, 0, 2]


def test_nf4_reranker_on_cpu_keeps_the_order_of_clear_winners(tiny_reranker_dir: Path, reranker: Qwen3Reranker) -> None:
    pytest.importorskip("bitsandbytes")
    nf4 = load_reranker(str(tiny_reranker_dir), device="cpu", quant="nf4")
    kinds = {name: type(module).__name__ for name, module in nf4.model.named_modules()}
    assert any(t == "Linear4bit" for n, t in kinds.items() if n.startswith("language_model."))
    assert not any(t == "Linear4bit" for n, t in kinds.items() if n.startswith("visual."))
    exact, quantized = reranker.score(QUERIES["text"], DOCUMENTS), nf4.score(QUERIES["text"], DOCUMENTS)
    # The 64-wide random model is far touchier than a real one: measured largest differences 0.01-0.16
    # over four seeds (0.014 for this fixture's).
    assert np.max(np.abs(exact - quantized)) < 0.2, (exact, quantized)

"""Random-weight Qwen3-VL-Embedding / Qwen3-VL-Reranker models in the real Hugging Face layout.

`build_qwen3_model_dir` writes a directory that loads like a download of Qwen/Qwen3-VL-Embedding-2B (or
-8B, or the Qwen3-VL-Reranker of the same size): the ``qwen3_vl`` ``config.json`` as the hub repos ship
it (transformers 4.57 layout: ``rope_scaling`` and ``rope_theta`` inside ``text_config``, which
transformers 5 converts on load), sharded safetensors with the hub's tensor names
(``model.language_model.*``, ``model.visual.*``, and ``lm_head.weight`` when the embeddings are untied), a
byte-level BPE tokenizer with the 26 Qwen3 added tokens in their real order, the Qwen3-VL image and video
preprocessor configs and a chat template that renders the Qwen3-VL conversations the reference builds
(system text, user content of videos, images and text, generation prompt) exactly as the model repo's does.

The tokenizer is always tiny; for "2b"/"8b" the config keeps the real vocabulary size and the special-token
ids point into the tiny range, which the embedding table covers. It knows "yes" and "no" as single tokens,
which the reranker reads. The Embedding and Reranker repos of one size share the architecture: the same
directory serves as either (`reranker=True` only unties a tiny model's output head, so that a test can
tell the head's rows from the input embedding's).

"2b"/"8b" weights are tiled from one random pool (disk-bound rather than RNG-bound to write): good for
timing, meaningless as a model. They are bfloat16 by default (half the disk); `dtype="float32"` writes
full-precision files, which is what a CPU computes in, so load times and memory match a float32 run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .devmodel import _CORPUS, _known_id, _write_json, added_tokens_decoder, train_qwen2_tokenizer, write_weights

SIZES = ("tiny", "2b", "8b")

# Qwen3 added tokens, in the order (and hence relative ids) of the real tokenizer (151643 ...).
ADDED_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
# Added as plain (non-special) tokens in the real tokenizer_config.json.
_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
_ADDITIONAL_SPECIAL = ADDED_TOKENS[1:14]  # <|im_start|> ... <|video_pad|>

# Words the reranker's and embedder's prompts use, so the tiny BPE has short encodings for them. Lines of
# their own make "yes", "no" (read by the reranker) and the role names single tokens without a leading
# space, as in the real vocabulary: the reranker keeps the last five tokens, "<|im_end|>\n<|im_start|>
# assistant\n", whole.
_EXTRA_CORPUS = (
    """\
Represent the user's input.
Retrieve images or text relevant to the user's query.
Given a search query, retrieve relevant candidates that answer the query.
Judge whether the Document meets the requirements based on the Query and the Instruct provided.
Note that the answer can only be "yes" or "no".
<Instruct>: <Query>: <Document>: NULL
<0.2 seconds> <1.2 seconds> <2.2 seconds> <3.2 seconds>
"""
    + "yes\nno\nassistant\nuser\nsystem\n" * 8
)

# Renders system (string or list of text parts), user (string or list of video/image/text parts) and
# assistant turns plus the generation prompt the same way the Qwen3-VL model repos' template does for
# these conversations, whitespace included.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}{%- set video_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set image_count.value = image_count.value + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Picture ' ~ image_count.value ~ ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set video_count.value = video_count.value + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Video ' ~ video_count.value ~ ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_MEAN_STD = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
_PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    **_MEAN_STD,
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}
_VIDEO_PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 25165824, "shortest_edge": 4096},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    **_MEAN_STD,
    "processor_class": "Qwen3VLProcessor",
    "video_processor_type": "Qwen3VLVideoProcessor",
}

# Architecture numbers per size; "2b"/"8b" are the published Qwen3-VL-2B/8B (and -Embedding) configs.
_ARCH: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=None,
        tie_word_embeddings=True,
        mrope_section=[2, 3, 3],
        vision_depth=3,
        vision_hidden=32,
        vision_intermediate=64,
        vision_heads=2,
        num_position_embeddings=64,
        deepstack=[0, 1],
    ),
    "2b": dict(
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        tie_word_embeddings=True,
        mrope_section=[24, 20, 20],
        vision_depth=24,
        vision_hidden=1024,
        vision_intermediate=4096,
        vision_heads=16,
        num_position_embeddings=2304,
        deepstack=[5, 11, 17],
    ),
    "8b": dict(
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        tie_word_embeddings=False,
        mrope_section=[24, 20, 20],
        vision_depth=27,
        vision_hidden=1152,
        vision_intermediate=4304,
        vision_heads=16,
        num_position_embeddings=2304,
        deepstack=[8, 16, 24],
    ),
}

_PATCH, _TEMPORAL_PATCH, _MERGE, _IN_CHANNELS = 16, 2, 2, 3
_SHARD_BYTES = 4 * 2**30


def build_qwen3_model_dir(
    path: Path, size: str = "tiny", seed: int = 0, *, dtype: str | None = None, reranker: bool = False
) -> Path:
    """Write a complete random-weight Qwen3-VL-Embedding (or -Reranker) model directory at `path`.

    `dtype` is "float32" or "bfloat16" (default: float32 for "tiny", bfloat16 for the full sizes).
    """
    if size not in SIZES:
        raise ValueError(f"unknown dev model size {size!r} (expected one of {', '.join(SIZES)})")
    dtype = dtype or ("float32" if size == "tiny" else "bfloat16")
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"unknown weight dtype {dtype!r} (expected float32 or bfloat16)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    ids = _write_tokenizer(path)
    arch = dict(_ARCH[size])
    if arch["vocab_size"] is None:
        arch["vocab_size"] = max(ids.values()) + 1
    if reranker and size == "tiny":
        arch["tie_word_embeddings"] = False
    _write_json(path / "config.json", _config(arch, ids, dtype))
    _write_json(path / "preprocessor_config.json", _PREPROCESSOR_CONFIG)
    _write_json(path / "video_preprocessor_config.json", _VIDEO_PREPROCESSOR_CONFIG)
    _write_json(path / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    _write_json(
        path / "generation_config.json",
        {
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
        },
    )
    write_weights(path, list(_tensor_specs(arch)), seed, dtype, None if size == "tiny" else _SHARD_BYTES)
    return path


def _write_tokenizer(path: Path) -> dict[str, int]:
    from tokenizers import AddedToken

    def add(tok: Any) -> None:
        tok.add_tokens([AddedToken(t, special=t not in _NOT_SPECIAL, normalized=False) for t in ADDED_TOKENS])

    tok = train_qwen2_tokenizer(path, (_CORPUS + _EXTRA_CORPUS).splitlines(), 640, add)
    ids = {t: _known_id(tok.token_to_id(t), t) for t in ADDED_TOKENS}
    for word in ("yes", "no", "assistant"):
        if tok.token_to_id(word) is None:
            raise RuntimeError(f"the dev tokenizer has no single token for {word!r}")
    added = added_tokens_decoder(ids, lambda token: token not in _NOT_SPECIAL)
    _write_json(
        path / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": added,
            "additional_special_tokens": list(_ADDITIONAL_SPECIAL),
            "bos_token": None,
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 262144,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    return ids


def _config(arch: dict[str, Any], ids: dict[str, int], dtype: str) -> dict[str, Any]:
    # The layout the hub repos ship (written by transformers 4.57); transformers 5 converts it on load.
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "image_token_id": ids["<|image_pad|>"],
        "model_type": "qwen3_vl",
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": ids["<|endoftext|>"],
            "dtype": dtype,
            "eos_token_id": ids["<|im_end|>"],
            "head_dim": arch["head_dim"],
            "hidden_act": "silu",
            "hidden_size": arch["hidden_size"],
            "initializer_range": 0.02,
            "intermediate_size": arch["intermediate_size"],
            "max_position_embeddings": 262144,
            "model_type": "qwen3_vl_text",
            "num_attention_heads": arch["num_attention_heads"],
            "num_hidden_layers": arch["num_hidden_layers"],
            "num_key_value_heads": arch["num_key_value_heads"],
            "rms_norm_eps": 1e-06,
            "rope_scaling": {"mrope_interleaved": True, "mrope_section": arch["mrope_section"], "rope_type": "default"},
            "rope_theta": 5000000,
            "tie_word_embeddings": arch["tie_word_embeddings"],
            "use_cache": True,
            "vocab_size": arch["vocab_size"],
        },
        "tie_word_embeddings": arch["tie_word_embeddings"],
        "transformers_version": "4.57.0.dev0",
        "video_token_id": ids["<|video_pad|>"],
        "vision_config": {
            "deepstack_visual_indexes": arch["deepstack"],
            "depth": arch["vision_depth"],
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": arch["vision_hidden"],
            "in_channels": _IN_CHANNELS,
            "initializer_range": 0.02,
            "intermediate_size": arch["vision_intermediate"],
            "model_type": "qwen3_vl",
            "num_heads": arch["vision_heads"],
            "num_position_embeddings": arch["num_position_embeddings"],
            "out_hidden_size": arch["hidden_size"],
            "patch_size": _PATCH,
            "spatial_merge_size": _MERGE,
            "temporal_patch_size": _TEMPORAL_PATCH,
        },
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
    }


# A tensor spec: checkpoint name, shape, and how to fill it ("w": fan-in scaled normal, "b": small
# normal, "one": ones, "zero": zeros).
_Spec = tuple[str, tuple[int, ...], str]


def _merger_specs(prefix: str, context: int, merged: int, out: int, norm_width: int) -> Iterator[_Spec]:
    yield prefix + "norm.weight", (norm_width,), "one"
    yield prefix + "norm.bias", (norm_width,), "zero"
    yield prefix + "linear_fc1.weight", (merged, merged), "w"
    yield prefix + "linear_fc1.bias", (merged,), "b"
    yield prefix + "linear_fc2.weight", (out, merged), "w"
    yield prefix + "linear_fc2.bias", (out,), "b"


def _tensor_specs(arch: dict[str, Any]) -> Iterator[_Spec]:
    """Tensors with the names the Qwen3-VL hub checkpoints use (Qwen3VLForConditionalGeneration layout)."""
    e, inter, h = arch["vision_hidden"], arch["vision_intermediate"], arch["hidden_size"]
    merged = e * _MERGE**2
    v = "model.visual."
    yield v + "patch_embed.proj.weight", (e, _IN_CHANNELS, _TEMPORAL_PATCH, _PATCH, _PATCH), "w"
    yield v + "patch_embed.proj.bias", (e,), "b"
    yield v + "pos_embed.weight", (arch["num_position_embeddings"], e), "b"
    for i in range(arch["vision_depth"]):
        p = f"{v}blocks.{i}."
        yield p + "norm1.weight", (e,), "one"
        yield p + "norm1.bias", (e,), "zero"
        yield p + "norm2.weight", (e,), "one"
        yield p + "norm2.bias", (e,), "zero"
        yield p + "attn.qkv.weight", (3 * e, e), "w"
        yield p + "attn.qkv.bias", (3 * e,), "b"
        yield p + "attn.proj.weight", (e, e), "w"
        yield p + "attn.proj.bias", (e,), "b"
        yield p + "mlp.linear_fc1.weight", (inter, e), "w"
        yield p + "mlp.linear_fc1.bias", (inter,), "b"
        yield p + "mlp.linear_fc2.weight", (e, inter), "w"
        yield p + "mlp.linear_fc2.bias", (e,), "b"
    yield from _merger_specs(v + "merger.", e, merged, h, e)
    for i in range(len(arch["deepstack"])):
        yield from _merger_specs(f"{v}deepstack_merger_list.{i}.", e, merged, h, merged)

    t = "model.language_model."
    q = arch["num_attention_heads"] * arch["head_dim"]
    kv = arch["num_key_value_heads"] * arch["head_dim"]
    ffn = arch["intermediate_size"]
    yield t + "embed_tokens.weight", (arch["vocab_size"], h), "w"
    for i in range(arch["num_hidden_layers"]):
        p = f"{t}layers.{i}."
        yield p + "self_attn.q_proj.weight", (q, h), "w"
        yield p + "self_attn.k_proj.weight", (kv, h), "w"
        yield p + "self_attn.v_proj.weight", (kv, h), "w"
        yield p + "self_attn.o_proj.weight", (h, q), "w"
        yield p + "self_attn.q_norm.weight", (arch["head_dim"],), "one"
        yield p + "self_attn.k_norm.weight", (arch["head_dim"],), "one"
        yield p + "mlp.gate_proj.weight", (ffn, h), "w"
        yield p + "mlp.up_proj.weight", (ffn, h), "w"
        yield p + "mlp.down_proj.weight", (h, ffn), "w"
        yield p + "input_layernorm.weight", (h,), "one"
        yield p + "post_attention_layernorm.weight", (h,), "one"
    yield t + "norm.weight", (h,), "one"
    if not arch["tie_word_embeddings"]:
        yield "lm_head.weight", (arch["vocab_size"], h), "w"


def main(argv: list[str] | None = None) -> None:
    """python -m umsearch.devmodel_qwen3 DIR [--size 2b] [--dtype float32] [--reranker]"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m umsearch.devmodel_qwen3",
        description=(
            "Write a random-weight Qwen3-VL-Embedding (or -Reranker) model folder in the real Hugging Face layout, "
            "for tests and benchmarks that need no download; the vectors mean nothing."
        ),
    )
    parser.add_argument("path", type=Path, help="folder to write")
    parser.add_argument(
        "--size", choices=SIZES, default="tiny", help="tiny (for tests), 2b or 8b (real configs); default tiny"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="precision of the weight files; default float32 for tiny, bfloat16 for 2b and 8b",
    )
    parser.add_argument("--reranker", action="store_true", help="a Qwen3-VL-Reranker (its own output head)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same weights")
    args = parser.parse_args(argv)
    build_qwen3_model_dir(args.path, args.size, args.seed, dtype=args.dtype, reranker=args.reranker)
    print(json.dumps({"path": str(args.path), "size": args.size}))


if __name__ == "__main__":
    main()

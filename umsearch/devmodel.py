"""Random-weight GME models in the real Hugging Face layout, for tests and benchmarks.

`build_model_dir` writes a directory that loads exactly like a download of
Alibaba-NLP/gme-Qwen2-VL-{2B,7B}-Instruct: the flat legacy ``config.json``,
sharded safetensors with the legacy tensor names (``visual.*``, ``model.layers.*``,
``lm_head.weight``) so transformers' checkpoint key conversion runs as it does for
real users, a byte-level BPE tokenizer with the Qwen2 special tokens, the
Qwen2-VL preprocessor config and chat template.

The tokenizer is always tiny (a few hundred entries trained on a built-in corpus);
for "2b"/"7b" the config keeps the real vocab size and the special-token ids point
into the tiny range, which the embedding table covers.  Weights are tiled from one
random pool so that writing is disk-bound rather than RNG-bound: good for timing,
meaningless as a model.  By default "2b" and "7b" are written in bfloat16 (about
4.4 GB and 16.6 GB); ``dtype="float32"`` writes them as the real 2B repo ships its
files (8.85 GB for the 2B), which is what load time and memory must be measured on.

From the shell::

    python -m umsearch.devmodel --size 2b --dtype float32 /work/models/gme-2b-f32
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SIZES = ("tiny", "2b", "7b")
DTYPES = ("float32", "bfloat16", "float16")

# Qwen2 / Qwen2-VL added tokens, in the order (and hence relative ids) of the real tokenizer.
SPECIAL_TOKENS = (
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
)

# Same pre-tokenisation as transformers' Qwen2Tokenizer, which rebuilds the pipeline from
# vocab/merges on load: tokenizer.json must agree with it or the two paths would differ.
_QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

_CORPUS = """\
A photo of a cat sleeping on a red sofa in the afternoon sun.
A dog running along the beach at sunset, waves in the background.
Snow covered mountains under a clear blue sky, seen from a small lake.
A birthday cake with candles on a wooden kitchen table.
Find an image that matches the given text.
You are a helpful assistant.
Find an image that looks like the given image, changed as the text describes.
Two children playing football in a green park with tall trees.
The old town at night: street lights, wet cobblestones and a bicycle.
A plate of pasta with tomatoes and basil, photographed from above.
Receipts, documents and a screenshot of a chat with friends.
Portrait of a woman wearing glasses, smiling, in front of a bookshelf.
City skyline with skyscrapers, a bridge and boats on the river.
Flowers in a garden: roses, tulips and sunflowers after the rain.
make it winter, add snow, at night, in black and white, without people.
一只猫在沙发上睡觉。
海边的日落，远处有一艘小船。
雪山和蓝天，湖面上的倒影。
生日蛋糕和蜡烛，桌子上的照片。
城市夜景，高楼大厦和桥。
找到与给定文本匹配的图片。
"""

_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}

# Architecture numbers per size; "2b"/"7b" are the published Qwen2-VL / GME configs.
_ARCH: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=None,
        tie_word_embeddings=True,
        mrope_section=[2, 3, 3],
        vision_depth=2,
        vision_embed_dim=32,
        vision_num_heads=2,
        dtype="float32",
    ),
    "2b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
        mrope_section=[16, 24, 24],
        vision_depth=32,
        vision_embed_dim=1280,
        vision_num_heads=16,
        dtype="bfloat16",
    ),
    "7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        tie_word_embeddings=False,
        mrope_section=[16, 24, 24],
        vision_depth=32,
        vision_embed_dim=1280,
        vision_num_heads=16,
        dtype="bfloat16",
    ),
}

_MLP_RATIO = 4
_PATCH, _TEMPORAL_PATCH, _MERGE, _IN_CHANNELS = 14, 2, 2, 3
_SHARD_BYTES = {"2b": 4 * 2**30, "7b": 4 * 2**30}
_POOL_SIZE = 1 << 22


def build_model_dir(path: Path, size: str = "tiny", seed: int = 0, dtype: str | None = None) -> Path:
    """Write a complete random-weight gme-Qwen2-VL model directory at `path` and return it.

    `dtype` is the precision of the weight files (and the config's torch_dtype); None keeps the size's
    default (float32 for "tiny", bfloat16 for "2b" and "7b").
    """
    if size not in SIZES:
        raise ValueError(f"unknown dev model size {size!r} (expected one of {', '.join(SIZES)})")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dev model dtype {dtype!r} (expected one of {', '.join(DTYPES)})")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special_ids = _write_tokenizer(path)
    arch = dict(_ARCH[size])
    if dtype is not None:
        arch["dtype"] = dtype
    if arch["vocab_size"] is None:
        arch["vocab_size"] = max(special_ids.values()) + 1
    _write_json(path / "config.json", _config(arch, special_ids))
    _write_json(path / "preprocessor_config.json", _PREPROCESSOR_CONFIG)
    _write_json(path / "chat_template.json", {"chat_template": _CHAT_TEMPLATE})
    _write_json(
        path / "generation_config.json",
        {
            "bos_token_id": special_ids["<|endoftext|>"],
            "eos_token_id": [special_ids["<|im_end|>"], special_ids["<|endoftext|>"]],
            "pad_token_id": special_ids["<|endoftext|>"],
        },
    )
    _write_weights(path, arch, seed, _SHARD_BYTES.get(size))
    return path


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_tokenizer(path: Path) -> dict[str, int]:
    from tokenizers import AddedToken

    def add(tok: Any) -> None:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])

    tok = train_qwen2_tokenizer(path, _CORPUS.splitlines(), 512, add)
    special_ids = {t: _known_id(tok.token_to_id(t), t) for t in SPECIAL_TOKENS}
    added = added_tokens_decoder(special_ids, lambda token: True)
    _write_json(
        path / "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "added_tokens_decoder": added,
            "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
            "bos_token": None,
            "chat_template": _CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 32768,
            "pad_token": "<|endoftext|>",
            "padding_side": "left",
            "processor_class": "Qwen2VLProcessor",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    _write_json(
        path / "special_tokens_map.json",
        {
            "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
            "eos_token": {
                "content": "<|im_end|>",
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
            },
            "pad_token": {
                "content": "<|endoftext|>",
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
            },
        },
    )
    return special_ids


def train_qwen2_tokenizer(path: Path, lines: list[str], vocab_size: int, add_tokens: Callable[[Any], None]) -> Any:
    """A small byte-level BPE with Qwen2's pre-tokenizer, trained on `lines`, its own tokens added by
    `add_tokens`; saved as tokenizer.json plus vocab.json and merges.txt (the slow-tokenizer layout the hub
    repos also ship). Returns the `tokenizers.Tokenizer`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer=trainer)
    add_tokens(tok)
    tok.save(str(path / "tokenizer.json"))
    tok.model.save(str(path))
    return tok


def added_tokens_decoder(ids: dict[str, int], special: Callable[[str], bool]) -> dict[str, dict[str, Any]]:
    """tokenizer_config.json's `added_tokens_decoder` for tokens with these ids."""
    return {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special(t),
        }
        for t, i in ids.items()
    }


def _known_id(token_id: int | None, token: str) -> int:
    if token_id is None:  # the special tokens are added to the vocabulary before this is asked
        raise ValueError(f"the tokenizer lost its special token {token}")
    return token_id


def _config(arch: dict[str, Any], special_ids: dict[str, int]) -> dict[str, Any]:
    # The flat pre-v5 layout the hub repos use: text settings at the top level.
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": special_ids["<|endoftext|>"],
        "eos_token_id": special_ids["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": arch["hidden_size"],
        "image_token_id": special_ids["<|image_pad|>"],
        "initializer_range": 0.02,
        "intermediate_size": arch["intermediate_size"],
        "max_position_embeddings": 32768,
        "max_window_layers": arch["num_hidden_layers"],
        "model_type": "qwen2_vl",
        "num_attention_heads": arch["num_attention_heads"],
        "num_hidden_layers": arch["num_hidden_layers"],
        "num_key_value_heads": arch["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"mrope_section": arch["mrope_section"], "rope_type": "default", "type": "default"},
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": arch["tie_word_embeddings"],
        "torch_dtype": arch["dtype"],
        "transformers_version": "4.45.0.dev0",
        "use_cache": True,
        "use_sliding_window": False,
        "video_token_id": special_ids["<|video_pad|>"],
        "vision_config": {
            "depth": arch["vision_depth"],
            "embed_dim": arch["vision_embed_dim"],
            "mlp_ratio": _MLP_RATIO,
            "num_heads": arch["vision_num_heads"],
            "in_chans": _IN_CHANNELS,
            "hidden_size": arch["hidden_size"],
            "patch_size": _PATCH,
            "spatial_merge_size": _MERGE,
            "spatial_patch_size": _PATCH,
            "temporal_patch_size": _TEMPORAL_PATCH,
        },
        "vision_end_token_id": special_ids["<|vision_end|>"],
        "vision_start_token_id": special_ids["<|vision_start|>"],
        "vision_token_id": special_ids["<|vision_pad|>"],
        "vocab_size": arch["vocab_size"],
    }


# A tensor spec: legacy checkpoint name, shape, and how to fill it ("w": fan-in scaled
# normal, "b": small normal, "one": ones, "zero": zeros).
_Spec = tuple[str, tuple[int, ...], str]


def _tensor_specs(arch: dict[str, Any]) -> Iterator[_Spec]:
    """Tensors in the order (and with the names) of the pre-v5 Qwen2VLForConditionalGeneration."""
    e = arch["vision_embed_dim"]
    h = arch["hidden_size"]
    merged = e * _MERGE**2
    yield "visual.patch_embed.proj.weight", (e, _IN_CHANNELS, _TEMPORAL_PATCH, _PATCH, _PATCH), "w"
    for i in range(arch["vision_depth"]):
        p = f"visual.blocks.{i}."
        yield p + "norm1.weight", (e,), "one"
        yield p + "norm1.bias", (e,), "zero"
        yield p + "norm2.weight", (e,), "one"
        yield p + "norm2.bias", (e,), "zero"
        yield p + "attn.qkv.weight", (3 * e, e), "w"
        yield p + "attn.qkv.bias", (3 * e,), "b"
        yield p + "attn.proj.weight", (e, e), "w"
        yield p + "attn.proj.bias", (e,), "b"
        yield p + "mlp.fc1.weight", (e * _MLP_RATIO, e), "w"
        yield p + "mlp.fc1.bias", (e * _MLP_RATIO,), "b"
        yield p + "mlp.fc2.weight", (e, e * _MLP_RATIO), "w"
        yield p + "mlp.fc2.bias", (e,), "b"
    yield "visual.merger.ln_q.weight", (e,), "one"
    yield "visual.merger.ln_q.bias", (e,), "zero"
    yield "visual.merger.mlp.0.weight", (merged, merged), "w"
    yield "visual.merger.mlp.0.bias", (merged,), "b"
    yield "visual.merger.mlp.2.weight", (h, merged), "w"
    yield "visual.merger.mlp.2.bias", (h,), "b"

    head_dim = h // arch["num_attention_heads"]
    kv = arch["num_key_value_heads"] * head_dim
    inter = arch["intermediate_size"]
    yield "model.embed_tokens.weight", (arch["vocab_size"], h), "w"
    for i in range(arch["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "self_attn.q_proj.weight", (h, h), "w"
        yield p + "self_attn.q_proj.bias", (h,), "b"
        yield p + "self_attn.k_proj.weight", (kv, h), "w"
        yield p + "self_attn.k_proj.bias", (kv,), "b"
        yield p + "self_attn.v_proj.weight", (kv, h), "w"
        yield p + "self_attn.v_proj.bias", (kv,), "b"
        yield p + "self_attn.o_proj.weight", (h, h), "w"
        yield p + "mlp.gate_proj.weight", (inter, h), "w"
        yield p + "mlp.up_proj.weight", (inter, h), "w"
        yield p + "mlp.down_proj.weight", (h, inter), "w"
        yield p + "input_layernorm.weight", (h,), "one"
        yield p + "post_attention_layernorm.weight", (h,), "one"
    yield "model.norm.weight", (h,), "one"
    if not arch["tie_word_embeddings"]:
        yield "lm_head.weight", (arch["vocab_size"], h), "w"


def _write_weights(path: Path, arch: dict[str, Any], seed: int, shard_bytes: int | None) -> None:
    write_weights(path, list(_tensor_specs(arch)), seed, arch["dtype"], shard_bytes)


def write_weights(path: Path, specs: list[_Spec], seed: int, dtype_name: str, shard_bytes: int | None) -> None:
    """Random tensors for `specs` in sharded safetensors with their index, as the hub repos ship them (both
    model families' dev builders write through here)."""
    import math

    import torch
    from safetensors.torch import save_file

    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(_POOL_SIZE, generator=gen).to(dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    total = sum(math.prod(shape) for _, shape, _ in specs) * itemsize
    # Always at least two shards: the hub repos are sharded and loading must go through the index.
    limit = shard_bytes if shard_bytes is not None else total // 2 + 1

    shards: list[list[_Spec]] = [[]]
    used = 0
    for spec in specs:
        nbytes = math.prod(spec[1]) * itemsize
        if shards[-1] and used + nbytes > limit:
            shards.append([])
            used = 0
        shards[-1].append(spec)
        used += nbytes

    for stale in path.glob("*.safetensors"):  # from an earlier build of another size
        stale.unlink()
    weight_map: dict[str, str] = {}
    for n, shard in enumerate(shards, start=1):
        name = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        tensors = {key: _fill(shape, kind, pool, gen, dtype) for key, shape, kind in shard}
        save_file(tensors, str(path / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
        del tensors
    _write_json(
        path / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )


def _fill(shape: tuple[int, ...], kind: str, pool: Any, gen: Any, dtype: Any) -> Any:
    import math

    import torch

    if kind == "one":
        return torch.ones(shape, dtype=dtype)
    if kind == "zero":
        return torch.zeros(shape, dtype=dtype)
    numel = math.prod(shape)
    start = int(torch.randint(0, pool.numel(), (1,), generator=gen))
    values = torch.roll(pool, -start)
    if numel > values.numel():
        values = values.repeat(math.ceil(numel / values.numel()))
    # Fan-in scaling keeps activations O(1) through the stack, so that a random model still
    # produces input-dependent (not all-alike) embeddings.
    std = 0.1 if kind == "b" else 1.0 / math.sqrt(math.prod(shape[1:]) if len(shape) > 1 else 1)
    return (values[:numel] * std).reshape(shape).contiguous()


def weights_size(size: str, dtype: str | None = None) -> int:
    """Bytes of weight files `build_model_dir(size=size, dtype=dtype)` writes (for the disk-space check)."""
    import math

    arch = dict(_ARCH[size])
    if arch["vocab_size"] is None:
        arch["vocab_size"] = len(SPECIAL_TOKENS) + 512  # an upper bound for the tiny tokenizer
    itemsize = 4 if (dtype or arch["dtype"]) == "float32" else 2
    return sum(math.prod(shape) for _, shape, _ in _tensor_specs(arch)) * itemsize


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m umsearch.devmodel",
        description=(
            "Write a random-weight GME (gme-Qwen2-VL) model folder in the real Hugging Face layout: the real "
            "architecture and checkpoint names, a tiny tokenizer. For tests and benchmarks that need no "
            "download; the vectors mean nothing."
        ),
        epilog=(
            "Examples: python -m umsearch.devmodel /tmp/tiny-gme   |   "
            "python -m umsearch.devmodel --size 2b --dtype float32 /work/models/gme-2b-f32 "
            "(8.85 GB, float32 files as the real 2B repo ships them)"
        ),
    )
    parser.add_argument("output", type=Path, help="folder to write (created; existing weight files are replaced)")
    parser.add_argument(
        "--size", choices=SIZES, default="tiny", help="tiny (64-d, for tests), 2b or 7b (real configs); default tiny"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="precision of the weight files; default float32 for tiny, bfloat16 for 2b and 7b "
        "(the real 2B checkpoint is float32)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same weights")
    args = parser.parse_args(argv)

    import shutil
    import time

    need = weights_size(args.size, args.dtype)
    free = shutil.disk_usage(_existing_parent(args.output)).free
    if need > free:
        print(f"error: {args.output}: {_human(need)} needed, {_human(free)} free", file=sys.stderr)
        return 1
    started = time.perf_counter()
    try:
        build_model_dir(args.output, args.size, seed=args.seed, dtype=args.dtype)
    except OSError as exc:
        print(f"error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    dtype = args.dtype or _ARCH[args.size]["dtype"]
    print(
        f"wrote {args.size} GME model ({dtype}, {_human(need)} of weights, seed {args.seed}) "
        f"to {args.output} in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _human(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


if __name__ == "__main__":
    sys.exit(main())

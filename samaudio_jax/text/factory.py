"""Builds the text encoder an experiment's `config.text` section asks for."""

from __future__ import annotations

import ml_collections
from flax import nnx

from samaudio_jax.text.base import TextEncoder
from samaudio_jax.text.simple_tokenizers import BYTE_VOCAB, make_simple_tokenizer
from samaudio_jax.text.small import SmallTextEncoder

_DEFAULT_WORD_VOCAB = 8192


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def build_small_text_encoder(small: ml_collections.ConfigDict, *, bucket_length: int, rngs):
    vocab_size = int(small.get("vocab_size", 0))
    if vocab_size == 0:  # automatic: bytes padded to a multiple of 8 (shards evenly)
        vocab_size = _round_up(BYTE_VOCAB, 8) if small.vocab == "bytes" else _DEFAULT_WORD_VOCAB
    tokenizer = make_simple_tokenizer(
        small.vocab, max_length=int(small.max_length), vocab_size=vocab_size
    )
    return SmallTextEncoder(
        tokenizer=tokenizer,
        dim=int(small.dim),
        num_layers=int(small.num_layers),
        num_heads=int(small.num_heads),
        vocab_size=vocab_size,
        max_length=int(small.max_length),
        bucket_length=min(int(bucket_length), int(small.max_length)),
        mlp_ratio=int(small.get("mlp_ratio", 4)),
        rngs=rngs,
    )


def build_text_encoder(text: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> TextEncoder:
    """`text.kind` "small" builds a trainable encoder; "t5" loads a frozen T5 from t5_dir."""
    if text.kind == "small":
        return build_small_text_encoder(text.small, bucket_length=text.bucket_length, rngs=rngs)
    if text.kind == "t5":
        from samaudio_jax.text.t5_import import load_t5_text_encoder

        if not text.t5_dir:
            raise ValueError(
                "text.t5_dir: expected a Hugging Face T5 directory (local or a URL), got ''"
            )
        return load_t5_text_encoder(
            text.t5_dir,
            max_length=int(text.max_length),
            bucket_length=int(text.bucket_length),
            dtype=text.get("dtype", "float32"),
        )
    raise ValueError(f"text.kind: expected 't5' or 'small', got {text.kind!r}")

"""The T5 tokenizer, loaded from a local Hugging Face directory (never the network).

`tokenizer.json` is read with the `tokenizers` library; a directory with only a
SentencePiece `spiece.model` goes through transformers' fast-tokenizer conversion
(local files only). Ids match transformers' T5TokenizerFast: the post-processor appends
</s>, so "" is the single token </s>. Truncation is at `max_length` tokens, </s> kept, with
a warning naming the prompt; padding is "longest" or rounded up to `bucket_length`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence

import numpy as np

from samaudio_jax.text.base import check_texts, pad_token_lists

TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


def _load_backend(directory: str):
    json_path = os.path.join(directory, "tokenizer.json")
    if os.path.isfile(json_path):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(json_path)
    if os.path.isfile(os.path.join(directory, "spiece.model")):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(directory, local_files_only=True).backend_tokenizer
    raise FileNotFoundError(
        f"{directory}: no tokenizer found; expected one of {TOKENIZER_FILES} in the T5 directory"
    )


def _configured_pad_token(directory: str) -> str | None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path) as f:
                token = json.load(f).get("pad_token")
            if isinstance(token, dict):
                token = token.get("content")
            if token:
                return token
    return None


class T5Tokenizer:
    """texts -> (ids int32 (B, S), mask bool (B, S)) as the release tokenizes prompts."""

    def __init__(self, backend, *, pad_id: int, max_length: int = 512, bucket_length: int = 0):
        if max_length < 1:
            raise ValueError(f"text.max_length: expected >= 1, got {max_length}")
        self.backend = backend
        self.backend.no_padding()
        self.backend.enable_truncation(max_length)
        self.pad_id = int(pad_id)
        self.max_length = max_length
        self.bucket_length = bucket_length

    @classmethod
    def from_directory(
        cls, directory: str, *, max_length: int = 512, bucket_length: int = 0, default_pad_id=0
    ) -> T5Tokenizer:
        backend = _load_backend(directory)
        pad_token = _configured_pad_token(directory) or "<pad>"
        pad_id = backend.token_to_id(pad_token)
        if pad_id is None:
            pad_id = default_pad_id
        return cls(backend, pad_id=pad_id, max_length=max_length, bucket_length=bucket_length)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        texts = check_texts(texts)
        encodings = self.backend.encode_batch(texts)
        for i, enc in enumerate(encodings):
            if enc.overflowing:
                warnings.warn(
                    f"texts[{i}]: prompt longer than max_length {self.max_length} tokens; "
                    f"truncated to {self.max_length}: {texts[i][:60]!r}...",
                    stacklevel=2,
                )
        return pad_token_lists(
            [enc.ids for enc in encodings],
            pad_id=self.pad_id,
            bucket_length=self.bucket_length,
            max_length=self.max_length,
        )

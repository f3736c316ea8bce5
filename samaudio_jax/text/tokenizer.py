"""The T5 tokenizer, loaded from a Hugging Face directory: local, or behind a URL (gs://, s3://)
read through `paths.as_path`; never the Hugging Face hub.

`tokenizer.json` is read into memory and parsed by the `tokenizers` library; a directory with
only a SentencePiece `spiece.model` goes through transformers' fast-tokenizer conversion
(local files only: transformers converts a sentencepiece model only from a file name, so a
URL directory's few tokenizer files are copied to a temporary directory for that call). Ids match transformers' T5TokenizerFast: the post-processor appends
</s>, so "" is the single token </s>. Truncation is at `max_length` tokens, </s> kept, with
a warning naming the prompt; padding is "longest" or rounded up to `bucket_length`.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence

import numpy as np

from samaudio_jax.paths import Path, PathLike, as_path, is_url
from samaudio_jax.text.base import check_texts, pad_token_lists

TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


# What AutoTokenizer reads from a directory holding only spiece.model (config.json names the
# model type when tokenizer_config.json does not).
_SPM_FILES = (
    "spiece.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "config.json",
)


def _spm_backend(directory: Path):
    from transformers import AutoTokenizer

    if not is_url(directory):
        return AutoTokenizer.from_pretrained(os.fspath(directory), local_files_only=True)
    with tempfile.TemporaryDirectory(prefix="samaudio_t5_tok_") as local:
        for name in _SPM_FILES:
            if (directory / name).is_file():
                with open(os.path.join(local, name), "wb") as f:
                    f.write((directory / name).read_bytes())
        return AutoTokenizer.from_pretrained(local, local_files_only=True)


def _load_backend(directory: Path):
    if (directory / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_str((directory / "tokenizer.json").read_text(encoding="utf-8"))
    if (directory / "spiece.model").is_file():
        return _spm_backend(directory).backend_tokenizer
    raise FileNotFoundError(
        f"{directory}: no tokenizer found; expected one of {TOKENIZER_FILES} in the T5 directory"
    )


def _configured_pad_token(directory: Path) -> str | None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = directory / name
        if path.is_file():
            token = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
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
        cls, directory: PathLike, *, max_length: int = 512, bucket_length: int = 0, default_pad_id=0
    ) -> T5Tokenizer:
        directory = as_path(directory)
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

"""Vocabulary-free tokenizers for the small trainable text encoder.

Both reserve id 0 for padding and id 1 for end-of-sequence; every string ends with EOS, so
the empty prompt "" is the single token [EOS]. Text is truncated to leave room for EOS.
- bytes: UTF-8 bytes b -> 2 + b (vocabulary 258, padded up to `vocab_size`).
- words: lower-cased words and punctuation marks hashed (CRC-32) into `vocab_size - 2`
  buckets; no vocabulary file, stable across runs and machines.
"""

from __future__ import annotations

import dataclasses
import re
import zlib

PAD_ID = 0
EOS_ID = 1
NUM_SPECIAL = 2
BYTE_VOCAB = NUM_SPECIAL + 256

_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
    max_length: int

    def encode(self, text: str) -> list[int]:
        body = [NUM_SPECIAL + b for b in text.encode("utf-8")][: self.max_length - 1]
        return body + [EOS_ID]


@dataclasses.dataclass(frozen=True)
class WordHashTokenizer:
    max_length: int
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        buckets = self.vocab_size - NUM_SPECIAL
        words = _WORD_RE.findall(text.lower())
        body = [NUM_SPECIAL + zlib.crc32(w.encode("utf-8")) % buckets for w in words]
        return body[: self.max_length - 1] + [EOS_ID]


def make_simple_tokenizer(kind: str, *, max_length: int, vocab_size: int):
    """Returns the tokenizer for `text.small.vocab` ("bytes" | "words")."""
    if max_length < 1:
        raise ValueError(f"text.small.max_length: expected >= 1, got {max_length}")
    if kind == "bytes":
        if vocab_size < BYTE_VOCAB:
            raise ValueError(
                f"text.small.vocab_size: expected >= {BYTE_VOCAB} for bytes, got {vocab_size}"
            )
        return ByteTokenizer(max_length=max_length)
    if kind == "words":
        if vocab_size <= NUM_SPECIAL:
            raise ValueError(f"text.small.vocab_size: expected > 2 for words, got {vocab_size}")
        return WordHashTokenizer(max_length=max_length, vocab_size=vocab_size)
    raise ValueError(f"text.small.vocab: expected 'bytes' or 'words', got {kind!r}")

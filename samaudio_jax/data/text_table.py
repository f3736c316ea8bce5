"""The text-feature table of a latent dataset: each distinct description's frozen-T5
features, computed once (encode-shards) instead of in every train step.

Rows are the dataset's distinct descriptions in sorted order, so row 0 is "" (the empty
prompt, always present: the train step's text dropout uses it). Records store
`<u32 header length> <JSON header {description, length}> <(length, dim) features>` in the
table's dtype (float16 or bfloat16): T5's last_hidden_state at the description's real
tokens; the mask is the first `length` positions (T5's tokenizer pads on the right, and the
encoder's outputs at real tokens do not depend on padding). Stored as
`text-NNNNN.array_record` beside the latent shards; index.json's "text" entry holds dim,
dtype, num (rows), max_tokens, encoder (what made it) and shards.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from samaudio_jax.data.latent_shards import latent_record_source, numpy_dtype

ROWS_PER_SHARD = 1024
PAD_MULTIPLE = 16  # batches pad features to a multiple of this many tokens (one shape)


def distinct_descriptions(descriptions) -> list[str]:
    """Sorted distinct descriptions, "" first (always present)."""
    return sorted(set(descriptions) | {""})


def encode_row(description: str, features: np.ndarray, dtype: str) -> bytes:
    feats = np.ascontiguousarray(np.asarray(features, np.float32).astype(numpy_dtype(dtype)))
    header = json.dumps({"description": description, "length": int(feats.shape[0])})
    text = header.encode("utf-8")
    return struct.pack("<I", len(text)) + text + feats.tobytes()


def decode_row(data: bytes, dim: int, dtype: str) -> tuple[str, np.ndarray]:
    (length,) = struct.unpack_from("<I", data, 0)
    header = json.loads(data[4 : 4 + length].decode("utf-8"))
    n = int(header["length"])
    feats = np.frombuffer(data, numpy_dtype(dtype), count=n * dim, offset=4 + length)
    return header["description"], feats.reshape(n, dim)


def padded_tokens(max_tokens: int) -> int:
    return -(-int(max_tokens) // PAD_MULTIPLE) * PAD_MULTIPLE


class TextTable:
    """Row lookup: `features(i)` -> (padded_tokens, dim) in the table dtype and the
    (padded_tokens,) bool mask; `row_of(description)` -> i. Picklable (Grain workers)."""

    def __init__(self, directory, entry: dict, present: set[str]):
        self.directory = directory
        self.entry = entry
        self.dim = int(entry["dim"])
        self.dtype = entry["dtype"]
        self.num = int(entry["num"])
        self.tokens = padded_tokens(entry["max_tokens"])
        self._present = present
        self._source = None
        self._rows: dict[str, int] | None = None

    def _data_source(self):
        if self._source is None:
            self._source = latent_record_source(
                self.directory, self.entry["shards"], self._present, self.num
            )
        return self._source

    def row(self, i: int) -> tuple[str, np.ndarray]:
        """(description, (length, dim) features) of row i."""
        return decode_row(self._data_source()[int(i)], self.dim, self.dtype)

    def features(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        _, feats = self.row(i)
        out = np.zeros((self.tokens, self.dim), feats.dtype)
        out[: len(feats)] = feats
        mask = np.zeros(self.tokens, bool)
        mask[: len(feats)] = True
        return out, mask

    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        """Features and mask of "" (row 0), unpadded: what conditioning dropout swaps in."""
        description, feats = self.row(0)
        if description != "":
            raise ValueError(f"{self.directory}: text table row 0 is {description!r}, not ''")
        return np.asarray(feats, np.float32), np.ones(len(feats), bool)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_source"] = None
        return state

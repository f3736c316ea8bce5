"""Inputs for the Judge and PE-A-Frame: tokenized descriptions and codec-rate audio.

Text: the ModernBERT tokenizer from the model directory's `tokenizer.json`, read with the
`tokenizers` library (no transformers, no hub). Descriptions longer than the limit
(512 tokens as in the release, or the text model's max_position_embeddings if smaller) are
truncated, special tokens kept, with a warning naming the description; the batch is padded
to its longest, rounded up to a multiple of 8 (fewer shapes to compile; padded tokens are
masked, so results do not change), with the model's pad id; the mask is 1 on real tokens.

Audio (the release's SAMAudioJudgeProcessor): each waveform (mono float, or (channels, N)
averaged) is resampled to the codec rate with soxr, reflect-padded at its end to a multiple
of the hop, and the batch zero-padded to its longest; `padding_mask` is True on each item's
(hop-padded) samples. A separated track is cut or zero-padded to its mixture's length.
Silent audio is scored, with a warning (the scores of silence say little).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import soxr

from samaudio_jax.paths import PathLike, as_path
from samaudio_jax.waveforms import to_mono

RELEASE_MAX_TOKENS = 512
SILENCE = 1e-6


class TextTokenizer:
    """tokenizer.json -> (ids, mask) int32 arrays, padded to the longest description."""

    def __init__(self, backend, max_length: int, pad_id: int, multiple: int = 8):
        self.backend, self.multiple = backend, int(multiple)
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        backend.no_padding()
        backend.enable_truncation(self.max_length)

    @classmethod
    def from_dir(cls, directory: PathLike, max_length: int, pad_id: int) -> TextTokenizer:
        from tokenizers import Tokenizer

        path = as_path(directory) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory}: no tokenizer.json (the ModernBERT tokenizer the model reads "
                "text with); copy it from the release's model directory"
            )
        try:
            return cls(Tokenizer.from_str(path.read_text(encoding="utf-8")), max_length, pad_id)
        except Exception as err:  # tokenizers raises its own exception types
            raise ValueError(f"{path}: not a readable tokenizer ({err})") from None

    def __call__(self, texts: Sequence[str], where: str = "descriptions"):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{where}: expected a list of strings")
        encodings = self.backend.encode_batch(list(texts))
        for i, enc in enumerate(encodings):
            if enc.overflowing:
                short = texts[i] if len(texts[i]) <= 40 else texts[i][:37] + "..."
                warnings.warn(
                    f"{where}[{i}] ({short!r}) is longer than the text model's limit of "
                    f"{self.max_length} tokens: truncated",
                    stacklevel=2,
                )
        length = max(1, max(len(e.ids) for e in encodings))
        length = min(-(-length // self.multiple) * self.multiple, max(length, self.max_length))
        ids = np.full((len(encodings), length), self.pad_id, np.int32)
        mask = np.zeros((len(encodings), length), np.int32)
        for i, enc in enumerate(encodings):
            ids[i, : len(enc.ids)] = enc.ids
            mask[i, : len(enc.ids)] = 1
        return ids, mask


def _mono(wav, where: str) -> np.ndarray:
    wav = to_mono(wav, where)
    if wav.shape[0] == 0:
        raise ValueError(f"{where}: empty waveform")
    if not np.all(np.isfinite(wav)):
        raise ValueError(f"{where}: holds NaN or infinite samples")
    return wav


def _hop_pad(wav: np.ndarray, hop: int) -> np.ndarray:
    extra = -wav.shape[0] % hop
    if not extra:
        return wav
    return np.pad(wav, (0, extra), mode="reflect" if wav.shape[0] > 1 else "edge")


class AudioPreparer:
    """Waveforms at any rate -> the codec-rate batch the models read."""

    def __init__(self, sample_rate: int, hop_length: int):
        self.sample_rate, self.hop_length = int(sample_rate), int(hop_length)

    def load(self, wav, sample_rate: int, where: str) -> np.ndarray:
        wav = _mono(wav, where)
        if int(sample_rate) != self.sample_rate:
            wav = soxr.resample(wav, int(sample_rate), self.sample_rate, quality="HQ")
        if np.max(np.abs(wav)) < SILENCE:
            warnings.warn(f"{where}: silent audio (peak below {SILENCE:g})", stacklevel=3)
        return wav.astype(np.float32)

    def batch(self, waves: Sequence[np.ndarray]):
        """Codec-rate mono waveforms -> values (B, N) float32, padding_mask (B, N) bool."""
        padded = [_hop_pad(w, self.hop_length) for w in waves]
        n = max(w.shape[0] for w in padded)
        values = np.zeros((len(padded), n), np.float32)
        mask = np.zeros((len(padded), n), bool)
        for i, w in enumerate(padded):
            values[i, : w.shape[0]] = w
            mask[i, : w.shape[0]] = True
        return values, mask


class JudgeProcessor:
    """descriptions + mixtures + separated tracks -> the Judge's inputs (numpy)."""

    def __init__(self, tokenizer: TextTokenizer, sample_rate: int, hop_length: int):
        self.tokenizer = tokenizer
        self.audio = AudioPreparer(sample_rate, hop_length)

    def __call__(self, descriptions, mixtures, separated, sample_rate: int) -> dict:
        count = len(mixtures)
        if isinstance(descriptions, str):
            raise TypeError("descriptions: expected a list of strings, one per mixture")
        for name, seq in (("descriptions", descriptions), ("separated", separated)):
            if len(seq) != count:
                raise ValueError(f"{name}: expected one per mixture ({count}), got {len(seq)}")
        if count == 0:
            raise ValueError("mixtures: expected at least one")
        mixes = [self.audio.load(m, sample_rate, f"mixtures[{i}]") for i, m in enumerate(mixtures)]
        seps = []
        for i, s in enumerate(separated):
            s = self.audio.load(s, sample_rate, f"separated[{i}]")
            n = mixes[i].shape[0]
            seps.append(s[:n] if s.shape[0] >= n else np.pad(s, (0, n - s.shape[0])))
        ids, text_mask = self.tokenizer(descriptions)
        values, mask = self.audio.batch(mixes)
        sep_values, _ = self.audio.batch(seps)
        return {
            "input_ids": ids,
            "attention_mask": text_mask,
            "input_values": values,
            "separated_values": sep_values,
            "padding_mask": mask,
        }


def text_limit(text_cfg) -> int:
    return min(RELEASE_MAX_TOKENS, int(text_cfg.max_position_embeddings))

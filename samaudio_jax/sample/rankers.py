"""Rankers score k separation candidates per input so `separate` can keep the best one.

Interface: a ranker is any object with

    score(target, *, residual, mixture, lengths, sample_rate, descriptions, spans) -> (B, k)

where `target` and `residual` are (B, k, N) waveforms (zero past each input's length),
`mixture` is (B, N), `lengths` (B,) the valid sample counts, `descriptions` the B text
prompts and `spans` the B span lists of ("+"/"-", start_s, end_s) (empty when none). Higher
is better; `separate` keeps argmax over k.

`SoundActivityRanker` is model-free, as the release's sound-activity ranker: it marks frames
whose energy is within `silence_db` of the loudest frame as active and scores the overlap
(IoU, recall or precision) of those frames with the frames the "+" spans cover. It only
says something when spans are given; without "+" spans every candidate scores 0 (ties keep
the first candidate).

A CLAP-style ranker plugs in the same way: embed each candidate's target audio (resampled
to the embedding model's rate, cut to `lengths[b]`) and the description, and return their
cosine similarity (B, k); a judge model returns its quality score. `EnsembleRanker` sums
weighted scores of several rankers, as the release combines CLAP and its judge.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

METRICS = ("iou", "recall", "precision")


class Ranker(abc.ABC):
    """Scores candidates; higher is better."""

    @abc.abstractmethod
    def score(
        self,
        target: np.ndarray,
        *,
        residual: np.ndarray,
        mixture: np.ndarray,
        lengths: Sequence[int],
        sample_rate: int,
        descriptions: Sequence[str],
        spans: Sequence[Sequence[tuple[str, float, float]]],
    ) -> np.ndarray:
        """(B, k, N) candidates -> (B, k) scores."""


def frame_activity(
    wav: np.ndarray, length: int, frame: int, silence_db: float = -40.0
) -> np.ndarray:
    """Per-frame activity of one waveform's first `length` samples: RMS within `silence_db`
    of the loudest frame (and above digital silence)."""
    wav = np.asarray(wav[:length], np.float64)
    count = -(-length // frame)
    padded = np.zeros(count * frame)
    padded[:length] = wav
    rms = np.sqrt(np.mean(padded.reshape(count, frame) ** 2, axis=1))
    peak = rms.max()
    if peak <= 1e-9:
        return np.zeros(count, bool)
    return 20.0 * np.log10(np.maximum(rms, 1e-12) / peak) > silence_db


def span_frames(
    spans: Sequence[tuple[str, float, float]], count: int, frame: int, sample_rate: int
) -> np.ndarray:
    """Frames (of `frame` samples) that overlap a "+" span."""
    out = np.zeros(count, bool)
    for sign, start, end in spans:
        if sign != "+":
            continue
        lo = int(np.floor(start * sample_rate / frame))
        hi = int(np.ceil(end * sample_rate / frame))
        out[max(lo, 0) : min(hi, count)] = True
    return out


def overlap_score(active: np.ndarray, reference: np.ndarray, metric: str) -> float:
    inter = float(np.sum(active & reference))
    if metric == "iou":
        union = float(np.sum(active | reference))
        return inter / union if union else 0.0
    if metric == "recall":
        total = float(reference.sum())
        return inter / total if total else 0.0
    total = float(active.sum())
    return inter / total if total else 0.0


class SoundActivityRanker(Ranker):
    """Agreement of each candidate target's activity with the "+" spans (no model)."""

    def __init__(self, silence_db: float = -40.0, metric: str = "iou", frame_seconds: float = 0.04):
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        if not frame_seconds > 0:
            raise ValueError(f"frame_seconds: expected a positive number, got {frame_seconds}")
        self.silence_db = silence_db
        self.metric = metric
        self.frame_seconds = frame_seconds

    def score(self, target, *, residual, mixture, lengths, sample_rate, descriptions, spans):
        target = np.asarray(target)
        batch, k = target.shape[:2]
        frame = max(1, round(self.frame_seconds * sample_rate))
        scores = np.zeros((batch, k), np.float32)
        for b in range(batch):
            length = int(lengths[b])
            count = -(-length // frame)
            reference = span_frames(spans[b] or (), count, frame, sample_rate)
            if not reference.any():
                continue
            for c in range(k):
                active = frame_activity(target[b, c], length, frame, self.silence_db)
                scores[b, c] = overlap_score(active, reference, self.metric)
        return scores


class JudgeRanker(Ranker):
    """The SAM Audio Judge's score of each candidate against its mixture and description
    (the release's judge ranker; `metric` "overall" as there, or recall / precision /
    faithfulness). `scorer` is a samaudio_jax.judge.scorer.JudgeScorer; `load(dir)` makes one."""

    def __init__(self, scorer, metric: str = "overall"):
        if metric not in ("overall", "recall", "precision", "faithfulness"):
            raise ValueError(f"metric: expected a Judge score name, got {metric!r}")
        self.scorer, self.metric = scorer, metric

    @classmethod
    def load(cls, directory, metric: str = "overall", max_batch: int = 8) -> JudgeRanker:
        from samaudio_jax.judge.scorer import JudgeScorer

        return cls(JudgeScorer.load(directory, max_batch=max_batch), metric)

    def score(self, target, *, residual, mixture, lengths, sample_rate, descriptions, spans):
        target = np.asarray(target)
        batch, k = target.shape[:2]
        pairs = [(b, c) for b in range(batch) for c in range(k)]
        scores = self.scorer.score(
            [np.asarray(mixture[b, : int(lengths[b])]) for b, _ in pairs],
            [target[b, c, : int(lengths[b])] for b, c in pairs],
            [descriptions[b] for b, _ in pairs],
            sample_rate,
        )[self.metric]
        return np.asarray(scores, np.float32).reshape(batch, k)


class EnsembleRanker(Ranker):
    """Weighted sum of other rankers' scores."""

    def __init__(self, rankers: Sequence[tuple[Ranker, float]]):
        if not rankers:
            raise ValueError("rankers: expected at least one (ranker, weight) pair")
        self.rankers = list(rankers)

    def score(self, target, **kwargs):
        return sum(weight * np.asarray(r.score(target, **kwargs)) for r, weight in self.rankers)


def pick_best(scores: np.ndarray) -> np.ndarray:
    """(B, k) scores -> (B,) index of the best candidate (the first on ties)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"ranker scores: expected shape (batch, candidates), got {scores.shape}")
    return np.argmax(scores, axis=1)

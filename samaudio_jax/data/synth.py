"""A synthetic corpus of distinct sound classes, deterministic from a seed.

Each clip is silence, one event of its class at a random time, then silence; the event's
interval is stored as the record's span. Written through the shard writer as
<out>/train and <out>/test shard directories, each replacing an earlier one only once complete
(data.staging). <out> may be a URL (gs://...): shards and videos are uploaded from memory.

With a SynthVideo, each clip also gets a small video <out>/videos/<split>/<id>.mkv (lossless
FFV1): a dark frame on which a square of the class's colour is visible exactly while the
event sounds, so the video tells which sound is the target and when. Given a frame encoder
(vision.features.FrameEncoder), its per-latent-frame features are stored in the shards
(data.video_features; one per `hop_length` samples), ready for visual-prompt training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from samaudio_jax.data.shard_writer import ShardWriter, WriteSummary
from samaudio_jax.data.staging import staged_dataset
from samaudio_jax.paths import Path, as_path


@dataclasses.dataclass(frozen=True)
class SoundClass:
    name: str
    description: str
    category: str


SOUND_CLASSES = {
    c.name: c
    for c in (
        SoundClass("tone", "a steady pure tone", "sfx"),
        SoundClass("chord", "a sustained major chord", "music"),
        SoundClass("sweep", "a rising frequency sweep", "sfx"),
        SoundClass("clicks", "a fast train of clicks", "sfx"),
        SoundClass("noise", "a burst of white noise", "noise"),
        SoundClass("pulse", "a pulsing beep", "sfx"),
        SoundClass("note", "a plucked string note", "instrument"),
    )
}
DEFAULT_CLASSES = ("tone", "sweep", "clicks", "noise", "note")
SPLITS = {"train": 0, "test": 1}
# RGB of each class's square (by SOUND_CLASSES order, so a class keeps its colour).
CLASS_COLOURS = {
    name: colour
    for name, colour in zip(
        SOUND_CLASSES,
        [
            (230, 40, 40),
            (40, 200, 60),
            (50, 90, 240),
            (240, 220, 40),
            (230, 60, 220),
            (40, 220, 230),
            (245, 140, 30),
        ],
        strict=True,
    )
}
BACKGROUND = 24


@dataclasses.dataclass(frozen=True)
class SynthVideo:
    """A video per clip: size x size pixels at fps frames/s."""

    size: int = 32
    fps: float = 25.0


def synth_video_frames(
    name: str, span: tuple[float, float], clip_seconds: float, video: SynthVideo
) -> np.ndarray:
    """(N, size, size, 3) uint8: the class's square in the middle half of the frame on frames
    whose time k / fps lies in the event's [start, end)."""
    n = max(1, int(np.ceil(clip_seconds * video.fps)))
    frames = np.full((n, video.size, video.size, 3), BACKGROUND, np.uint8)
    lo, hi = video.size // 4, video.size - video.size // 4
    times = np.arange(n) / video.fps
    active = (times >= span[0]) & (times < span[1])
    frames[active, lo:hi, lo:hi] = CLASS_COLOURS[name]
    return frames


def _fade(n: int, rate: int, seconds: float = 0.01) -> np.ndarray:
    k = min(n // 2, max(1, int(seconds * rate)))
    env = np.ones(n)
    env[:k] = np.linspace(0.0, 1.0, k)
    env[n - k :] = np.linspace(1.0, 0.0, k)
    return env


def synth_event(name: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of one event of class `name` (peak about 1 before gain)."""
    t = np.arange(n) / rate
    nyq = rate / 2
    if name == "tone":
        f = rng.uniform(0.05, 0.2) * nyq
        x = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    elif name == "chord":
        f = rng.uniform(0.03, 0.08) * nyq
        x = sum(np.sin(2 * np.pi * f * r * t) for r in (1.0, 1.25, 1.5)) / 3
    elif name == "sweep":
        f0, f1 = rng.uniform(0.02, 0.08) * nyq, rng.uniform(0.3, 0.6) * nyq
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * max(t[-1], 1e-9))))
    elif name == "clicks":
        x = np.zeros(n)
        period = max(2, int(rate / rng.uniform(15, 40)))
        x[rng.integers(period) :: period] = 1.0
        x[1:] -= 0.5 * x[:-1]
    elif name == "noise":
        x = rng.uniform(-1, 1, n)
    elif name == "pulse":
        f, rate_hz = rng.uniform(0.15, 0.35) * nyq, rng.uniform(4, 8)
        x = np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * rate_hz * t) > 0)
    elif name == "note":
        f = rng.uniform(0.02, 0.06) * nyq
        harmonics = np.arange(1, 9)
        harmonics = harmonics[harmonics * f < nyq]
        x = sum(np.sin(2 * np.pi * f * h * t) / h for h in harmonics)
        x = x * np.exp(-t * rng.uniform(3, 8)) / np.max(np.abs(x) + 1e-9)
    else:
        raise ValueError(f"unknown sound class {name!r}; known: {sorted(SOUND_CLASSES)}")
    return x * _fade(n, rate)


def synth_clip(
    name: str, rng: np.random.Generator, sample_rate: int, clip_seconds: float
) -> tuple[np.ndarray, tuple[float, float]]:
    """(audio, (start_s, end_s)): one event of 40-90 % of the clip at a random offset."""
    total = int(round(clip_seconds * sample_rate))
    n = int(total * rng.uniform(0.4, 0.9))
    start = int(rng.integers(total - n + 1))
    audio = np.zeros(total, np.float32)
    audio[start : start + n] = rng.uniform(0.3, 0.9) * synth_event(name, n, sample_rate, rng)
    return audio, (start / sample_rate, (start + n) / sample_rate)


def write_synth_corpus(
    out_dir: str | Path,
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_CLASSES,
    sample_rate: int = 8000,
    clip_seconds: float = 1.0,
    train_per_class: int = 64,
    test_per_class: int = 16,
    max_shard_bytes: int = 64 << 20,
    overwrite: bool = False,
    video: SynthVideo | None = None,
    video_encoder=None,
    hop_length: int | None = None,
) -> dict[str, WriteSummary]:
    """Writes <out_dir>/train and <out_dir>/test; returns a summary per split. With `video`,
    also <out_dir>/videos/<split>/*.mkv, and with `video_encoder` (+ `hop_length`, the
    latent hop in samples) their features in the shards."""
    for name in classes:
        if name not in SOUND_CLASSES:
            raise ValueError(f"unknown sound class {name!r}; known: {sorted(SOUND_CLASSES)}")
    if video_encoder is not None and (video is None or not hop_length):
        raise ValueError("synth: a video_encoder needs `video` and `hop_length`")
    if video is not None:  # imports jax; an audio-only corpus does not need it
        from samaudio_jax.vision.video import write_video
    counts = {"train": train_per_class, "test": test_per_class}
    summaries = {}
    out_dir = as_path(out_dir)
    for split, split_id in SPLITS.items():
        summary = WriteSummary()
        with (
            staged_dataset(out_dir / split, overwrite) as new_dir,
            ShardWriter(new_dir, sample_rate, max_shard_bytes, False, hop_length) as w,
        ):
            for i in range(counts[split]):
                for class_id, name in enumerate(classes):
                    rng = np.random.default_rng([seed, split_id, class_id, i])
                    audio, span = synth_clip(name, rng, sample_rate, clip_seconds)
                    sound = SOUND_CLASSES[name]
                    meta = {
                        "id": f"{split}/{name}/{i:05d}",
                        "description": sound.description,
                        "category": sound.category,
                        "group": "",
                        "spans": [list(span)],
                    }
                    feats = None
                    if video is not None:
                        frames = synth_video_frames(name, span, clip_seconds, video)
                        path = out_dir / "videos" / split / f"{name}-{i:05d}.mkv"
                        write_video(path, frames, video.fps)
                        if video_encoder is not None:
                            feats = _features(
                                video_encoder, path, len(audio), hop_length, sample_rate
                            )
                    w.add(meta, audio, feats)
                    summary.written += 1
        summary.shards = len(w._shards)
        summaries[split] = summary
    return summaries


def _features(encoder, path: Path, num_samples: int, hop: int, rate: int) -> np.ndarray:
    from samaudio_jax.vision.features import clip_features

    frames = -(-num_samples // hop)
    return np.asarray(clip_features(encoder, path, frames, hop_length=hop, sample_rate=rate))

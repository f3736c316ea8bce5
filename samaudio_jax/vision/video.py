"""Masked-video frames at the latent frame rate, ready for the PE-Core tower.

Pipeline (the release's): decode every frame with its timestamp; latent frame k sits at
k * hop_length / sample_rate seconds and takes the frame with the nearest timestamp (ties
go to the earlier frame; latent frames past the end of the video therefore reuse the last
frame, with a warning); masked = frame * (mask == 0), per pixel and channel; bicubic resize
to image_size (antialiased, rounded back to uint8 as torchvision does on uint8 tensors);
/ 255; normalise with mean 0.5, std 0.5. Output (T, image_size, image_size, 3) float32.

Decoding uses PyAV (`av`). Timestamps are the decoder's presentation times relative to the
first frame (frame index / average rate when a stream carries none). A video path may be a
URL (gs://...; paths.as_path): it is read into memory, or written there in one upload.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from samaudio_jax.io_read import readable_file
from samaudio_jax.paths import as_path, is_url


@dataclasses.dataclass(frozen=True)
class Video:
    """Decoded frames (N, H, W, 3) uint8 and their timestamps in seconds (N,)."""

    frames: np.ndarray
    timestamps: np.ndarray
    source: str = "video"

    @property
    def frame_duration(self) -> float:
        """The spacing of the last two frames (0 for a single frame)."""
        t = self.timestamps
        return float(t[-1] - t[-2]) if len(t) > 1 else 0.0

    @property
    def duration(self) -> float:
        return float(self.timestamps[-1]) + self.frame_duration if len(self.timestamps) else 0.0


def video_from_frames(frames: np.ndarray, fps: float, source: str = "frames") -> Video:
    """A Video from an array (N, H, W, 3) (or (N, H, W) gray) sampled at `fps`."""
    frames = _as_rgb(np.asarray(frames), source)
    if fps <= 0:
        raise ValueError(f"{source}: fps must be > 0, got {fps}")
    return Video(frames, np.arange(len(frames), dtype=np.float64) / float(fps), source)


def _as_rgb(frames: np.ndarray, source: str) -> np.ndarray:
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{source}: expected frames (N, H, W, 3) or (N, H, W), got {frames.shape}")
    if len(frames) == 0:
        raise ValueError(f"{source}: holds no frames")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Writes uint8 (N, H, W, 3) RGB frames losslessly (FFV1 in Matroska, so read_video gives
    back exactly these frames), atomically (temp name + rename)."""
    import fractions

    import av

    from samaudio_jax.io_atomic import atomic_write

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 (N, H, W, 3), got {frames.dtype} "
                         f"{frames.shape}")  # fmt: skip

    def write(tmp) -> None:
        with av.open(tmp, "w", format="matroska") as out:
            stream = out.add_stream("ffv1", rate=fractions.Fraction(fps).limit_denominator(1000))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "bgr0"
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)

    if is_url(path):  # encode in memory, one upload (atomic on an object store)
        buffer = io.BytesIO()
        write(buffer)
        as_path(path).write_bytes(buffer.getvalue())
        return
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write, suffix=".mkv")


def read_video(path: str | os.PathLike) -> Video:
    """Decodes every frame of the first video stream of `path` as RGB uint8."""
    import av

    path = os.fspath(path)
    try:  # a URL's video is decoded from memory
        source = readable_file(path)
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"video: no such file: {path}") from None
    except EOFError:
        source = io.BytesIO()  # PyAV names an empty file below
    frames, times = [], []
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0) or None
            for i, frame in enumerate(container.decode(stream)):
                frames.append(frame.to_ndarray(format="rgb24"))
                t = frame.time
                times.append(float(t) if t is not None else (i / rate if rate else float(i)))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable video ({e})") from None
    if not frames:
        raise ValueError(f"{path}: holds no decodable video frames")
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")  # decode order can differ from display order
    times = times[order] - times[order][0]
    return Video(np.stack(frames)[order], times, path)


def latent_frame_times(num_frames: int, hop_length: int = 1920, sample_rate: int = 48000):
    """Seconds of latent frame k: k * hop_length / sample_rate."""
    return np.arange(num_frames, dtype=np.float64) * hop_length / sample_rate


def nearest_frame_indices(frame_times: np.ndarray, query_times: np.ndarray) -> np.ndarray:
    """For each query time the index of the nearest frame time (the earlier one on ties)."""
    frame_times = np.asarray(frame_times, dtype=np.float64)
    diffs = np.abs(np.asarray(query_times, np.float64)[None, :] - frame_times[:, None])
    return np.argmin(diffs, axis=0)


def select_frames(
    video: Video, num_latent_frames: int, hop_length: int = 1920, sample_rate: int = 48000
) -> np.ndarray:
    """Frame index for each latent frame; warns when the video ends before the audio."""
    times = latent_frame_times(num_latent_frames, hop_length, sample_rate)
    idx = nearest_frame_indices(video.timestamps, times)
    past_end = int(np.sum(times >= video.duration)) if len(times) else 0
    if past_end:
        audio_seconds = num_latent_frames * hop_length / sample_rate
        warnings.warn(
            f"{video.source}: video covers {video.duration:.3f} s, audio {audio_seconds:.3f} s; "
            f"the last frame is reused for {past_end} latent frame(s)",
            stacklevel=2,
        )
    return idx


def apply_mask(frames: np.ndarray, mask: np.ndarray, source: str = "mask") -> np.ndarray:
    """frames * (mask == 0): frames (N, H, W, 3); mask (N, H, W) or (N, H, W, 3)."""
    mask = np.asarray(mask)
    _check_mask(mask, frames, source)
    if mask.ndim == 3:
        mask = mask[..., None]
    return frames * (mask == 0).astype(frames.dtype)


def _resize_normalise(frames: jax.Array, size: int) -> jax.Array:
    n = frames.shape[0]
    x = jax.image.resize(
        frames.astype(jnp.float32), (n, size, size, 3), method="bicubic", antialias=True
    )
    x = jnp.clip(jnp.round(x), 0.0, 255.0) / 255.0
    return (x - 0.5) / 0.5


_resize_normalise_jit = jax.jit(_resize_normalise, static_argnums=1)


def preprocess_frames(frames: np.ndarray, image_size: int = 336) -> jax.Array:
    """uint8 (N, H, W, 3) -> float32 (N, image_size, image_size, 3), normalised to [-1, 1]."""
    return _resize_normalise_jit(jnp.asarray(frames), int(image_size))


def masked_frames_for_latents(
    video: Video | str | os.PathLike,
    num_latent_frames: int,
    mask: Video | np.ndarray | str | os.PathLike | None = None,
    *,
    hop_length: int = 1920,
    sample_rate: int = 48000,
    image_size: int = 336,
) -> jax.Array:
    """One preprocessed, masked frame per latent frame: (num_latent_frames, S, S, 3).

    `mask` is a mask video (path or Video) with the video's frame count and size, or an array
    (N, H, W) / (N, H, W, 3) of per-frame masks; non-zero = masked out.
    """
    frames, index = unique_masked_frames(
        video,
        num_latent_frames,
        mask,
        hop_length=hop_length,
        sample_rate=sample_rate,
        image_size=image_size,
    )
    return frames[jnp.asarray(index)]


def unique_masked_frames(
    video: Video | str | os.PathLike,
    num_latent_frames: int,
    mask: Video | np.ndarray | str | os.PathLike | None = None,
    *,
    hop_length: int = 1920,
    sample_rate: int = 48000,
    image_size: int = 336,
) -> tuple[jax.Array, np.ndarray]:
    """The distinct video frames the latent frames select, preprocessed and masked (U, S, S, 3),
    and for each latent frame the row it uses (num_latent_frames,): when the latent rate is
    above the video's frame rate, each video frame is processed (and embedded) once."""
    if not isinstance(video, Video):
        video = read_video(video)
    if num_latent_frames <= 0:
        raise ValueError(f"num_latent_frames must be > 0, got {num_latent_frames}")
    idx = select_frames(video, num_latent_frames, hop_length, sample_rate)
    unique, inverse = np.unique(idx, return_inverse=True)
    selected = video.frames[unique]
    if mask is not None:
        if isinstance(mask, (str, os.PathLike)):
            mask = read_video(mask)
        source = mask.source if isinstance(mask, Video) else "mask"
        mask_frames = mask.frames if isinstance(mask, Video) else np.asarray(mask)
        _check_mask(mask_frames, video.frames, source)
        selected = apply_mask(selected, mask_frames[unique], source)
    return preprocess_frames(selected, image_size), inverse.reshape(-1)


def _check_mask(mask: np.ndarray, frames: np.ndarray, source: str) -> None:
    if mask.ndim not in (3, 4) or (mask.ndim == 4 and mask.shape[-1] not in (1, 3)):
        raise ValueError(f"{source}: expected (N, H, W) or (N, H, W, 3), got {mask.shape}")
    if mask.shape[0] != frames.shape[0]:
        raise ValueError(
            f"{source}: has {mask.shape[0]} frames, the video {frames.shape[0]}; they must match"
        )
    if mask.shape[1:3] != frames.shape[1:3]:
        raise ValueError(
            f"{source}: frames are {mask.shape[1]}x{mask.shape[2]} (HxW), the video's "
            f"{frames.shape[1]}x{frames.shape[2]}; they must match"
        )

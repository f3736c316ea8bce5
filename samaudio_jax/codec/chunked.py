"""Decode long latents in overlapping windows so memory stays bounded.

The latents (B, T, C) are cut into chunks of `chunk_frames`; each chunk is decoded with
`overlap_frames` of real context on both sides (frames outside [0, T) are masked as
absent, so the sequence ends match whole decoding exactly), and neighbouring windows are
cross-faded linearly over a band of `fade_frames` (default: overlap_frames) centred on
the chunk boundary. The windows run in a `lax.scan`, so only one window's activations
are alive at a time; the output buffer is the only thing that grows with T.

Away from chunk boundaries (more than the decoder's receptive field inside the context)
the result equals whole decoding. The watermark branch's LSTMs restart in every window,
so a watermarked chunked decode is only close to a whole one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def decode_chunked(
    codec, latents, chunk_frames: int, overlap_frames: int, *, fade_frames=None, message=None
):
    """(B, T, latent_dim) -> (B, T * hop) via windows; `codec` needs `decode_masked`."""
    if fade_frames is None:
        fade_frames = overlap_frames
    if chunk_frames < 1 or overlap_frames < 0:
        raise ValueError(
            f"chunk_frames must be >= 1 and overlap_frames >= 0, got {chunk_frames}, "
            f"{overlap_frames}"
        )
    if not 0 <= fade_frames <= min(chunk_frames, 2 * overlap_frames):
        raise ValueError(
            f"fade_frames {fade_frames}: must lie in [0, min(chunk_frames, 2 * overlap_frames)]"
        )
    b, t, _ = latents.shape
    hop, c, o = codec.hop_length, chunk_frames, overlap_frames
    n = -(-t // c)
    win = c + 2 * o
    padded = jnp.pad(latents, ((0, 0), (o, n * c - t + o), (0, 0)))
    frame = jnp.arange(n * c + 2 * o) - o
    valid = jnp.broadcast_to((frame >= 0) & (frame < t), (b, n * c + 2 * o))
    fade = fade_frames * hop
    pos = jnp.arange(win * hop, dtype=jnp.float32)  # sample index inside a window

    def weights(i):
        start, end = o * hop, (o + c) * hop  # the chunk's own samples inside the window
        if fade == 0:
            left = (pos >= start).astype(jnp.float32)
            right = (pos < end).astype(jnp.float32)
        else:
            left = jnp.clip((pos - (start - fade / 2) + 0.5) / fade, 0.0, 1.0)
            right = jnp.clip(((end + fade / 2) - pos - 0.5) / fade, 0.0, 1.0)
        left = jnp.where(i == 0, 1.0, left)
        right = jnp.where(i == n - 1, 1.0, right)
        return left * right

    def step(out, i):
        lat = jax.lax.dynamic_slice_in_dim(padded, i * c, win, axis=1)
        mask = jax.lax.dynamic_slice_in_dim(valid, i * c, win, axis=1)
        y = codec.decode_masked(lat, mask, message) * weights(i)
        cur = jax.lax.dynamic_slice_in_dim(out, i * c * hop, win * hop, axis=1)
        return jax.lax.dynamic_update_slice_in_dim(out, cur + y, i * c * hop, axis=1), None

    out = jnp.zeros((b, (n * c + 2 * o) * hop), jnp.float32)
    out, _ = jax.lax.scan(step, out, jnp.arange(n))
    return out[:, o * hop : (o + t) * hop]

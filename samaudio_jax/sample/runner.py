"""The jitted part of `separate`: one padded batch from mixture waveforms to decoded
candidates (encode, integrate the flow ODE, decode), and `Runner`, which pads a prepared
batch to its bucket, places it on the mesh, runs it and ranks the candidates.

Everything from the mixture waveform to the decoded candidates is one jitted function per
(bucketed) shape, specialised on the options in SeparateOptions.jit_options().
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from samaudio_jax.sample import batching, rankers, solvers
from samaudio_jax.sample.options import SeparateOptions

CLEAN_TIME_EPS = 1e-3


def velocity_from_clean(x1_hat, x_t, t, sigma_min: float = 0.0):
    """Velocity of the flow x_t = (1 - (1 - s) t) x0 + t x1 given an estimate of x1:
    u = (x1 - (1 - s) x_t) / (1 - (1 - s) t), the denominator kept >= CLEAN_TIME_EPS."""
    keep = 1.0 - sigma_min
    return (x1_hat - keep * x_t) / jnp.maximum(1.0 - keep * t, CLEAN_TIME_EPS)


@functools.partial(
    jax.jit,
    static_argnames=(
        "graphdef", "solver", "candidates", "padding_aware", "prediction", "sigma_min",
        "rtol", "atol",
    ),
)  # fmt: skip
def _separate_padded(
    graphdef, state, waveforms, lengths, valid, text_features, text_mask, video, anchor_ids,
    anchor_alignment, keys, grid, *, solver: str, candidates: int, padding_aware: bool,
    prediction: str, sigma_min: float, rtol: float, atol: float,
):  # fmt: skip
    """One padded batch -> (target, residual) waveforms (B, k, T * hop)."""
    model, codec = nnx.merge(graphdef, state)

    def repeat(a):
        return None if a is None else jnp.repeat(a, candidates, axis=0)

    mixture = codec.encode(waveforms, num_samples=lengths)
    batch, frames, latent = mixture.shape
    valid_k = repeat(valid)
    features = repeat(jnp.concatenate([mixture, mixture], axis=-1))
    noise = batching.candidate_noise(keys, candidates, frames, 2 * latent)
    if padding_aware:
        features = jnp.where(valid_k[..., None], features, 0.0)
        noise = jnp.where(valid_k[..., None], noise, 0.0)
    conditioning = dict(
        audio_features=features,
        text_features=repeat(text_features),
        text_mask=repeat(text_mask),
        masked_video_features=repeat(video),
        anchor_ids=repeat(anchor_ids),
        anchor_alignment=repeat(anchor_alignment),
        audio_pad_mask=valid_k,
    )

    def field(t, x, args):
        time = jnp.full((x.shape[0],), t, jnp.float32)
        out = model(x, time=time, deterministic=True, **conditioning)
        if prediction == "clean":
            out = velocity_from_clean(out, x, t, sigma_min)
        if padding_aware:
            out = jnp.where(valid_k[..., None], out, 0.0)
        return out.astype(x.dtype)

    if solver in solvers.ADAPTIVE_SOLVERS:
        x1, _ = solvers.integrate_adaptive(field, noise, (), 0.0, 1.0, rtol, atol, method=solver)
    else:
        x1 = solvers.integrate_fixed(solver, field, noise, grid)
    frames_k = jnp.sum(valid_k, axis=1)
    target = codec.decode(x1[..., :latent], num_frames=frames_k).reshape(batch, candidates, -1)
    residual = codec.decode(x1[..., latent:], num_frames=frames_k).reshape(batch, candidates, -1)
    return target, residual


@nnx.jit
def _encode_text(text_encoder, ids, mask):
    return text_encoder(ids, mask)


@dataclasses.dataclass
class BatchOutput:
    """One prepared batch's candidates: target, residual (B, k, N_padded), zero past each
    input's length when ranked; scores (B, k) or None when k == 1."""

    target: np.ndarray
    residual: np.ndarray
    scores: np.ndarray | None

    def pick(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        """Item b's kept candidate: target, residual, its scores, the kept index."""
        if self.scores is None:
            return self.target[b, 0], self.residual[b, 0], None, 0
        best = int(rankers.pick_best(self.scores[b : b + 1])[0])
        return self.target[b, best], self.residual[b, best], self.scores[b], best


class Runner:
    """Runs prepared batches through the jitted separation with one call's options."""

    def __init__(self, model, codec, text_encoder, options: SeparateOptions):
        self.graphdef, self.state = nnx.split((model, codec))
        self.codec = codec
        self.text_encoder = text_encoder
        self.options = options
        self.grid = options.grid()
        self.mesh = options.mesh
        self.data_size = 1 if self.mesh is None else int(self.mesh.shape["data"])
        if self.mesh is not None:
            self.state = jax.device_put(self.state, NamedSharding(self.mesh, P()))

    def _put(self, a):
        if a is None or self.mesh is None:
            return None if a is None else jnp.asarray(a)
        spec = P("data", *([None] * (np.ndim(a) - 1)))
        return jax.device_put(a, NamedSharding(self.mesh, spec))

    def run(self, prepared: batching.PreparedBatch, keys: jax.Array) -> BatchOutput:
        count = prepared.size
        size = batching.bucket_batch(count, self.data_size)
        padded = batching.pad_batch(prepared, size)
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], size - count, axis=0)])
        text = text_mask = None
        if self.text_encoder is not None:
            text = _encode_text(
                self.text_encoder, jnp.asarray(padded.text_ids), jnp.asarray(padded.text_mask)
            )
            text_mask = padded.text_mask
        put = self._put
        target, residual = _separate_padded(
            self.graphdef, self.state, put(padded.waveforms),
            put(padded.lengths.astype(np.int32)), put(padded.valid), put(text), put(text_mask),
            put(padded.video), put(padded.anchor_ids), put(padded.anchor_alignment), put(keys),
            jnp.asarray(self.grid), **self.options.jit_options(),
        )  # fmt: skip
        out = BatchOutput(np.array(target[:count]), np.array(residual[:count]), None)
        if self.options.candidates > 1:
            out.scores = self._rank(prepared, out)
        return out

    def _rank(self, prepared: batching.PreparedBatch, out: BatchOutput) -> np.ndarray:
        for b, n in enumerate(prepared.lengths):  # rankers see each input's own length
            out.target[b, :, n:] = 0.0
            out.residual[b, :, n:] = 0.0
        return np.asarray(
            self.options.ranker.score(
                out.target,
                residual=out.residual,
                mixture=prepared.waveforms,
                lengths=prepared.lengths,
                sample_rate=self.codec.sample_rate,
                descriptions=prepared.descriptions,
                spans=prepared.spans,
            )
        )

"""`separate`: text / span / video-prompted source separation with a trained flow network.

For each input: load it (path or array, any rate or channels) as mono at the codec's rate,
encode the mixture, integrate the flow ODE from noise (t = 0) to t = 1 with the chosen
solver, decode channels [0, L) to the target and [L, 2L) to the residual, and cut both to
the input's length. The release does exactly this with midpoint steps of 2/32 (16 steps).

`separate` is a pipeline of named stages:
  1. options: the call's keyword arguments resolved against the model into one frozen
     SeparateOptions (options.py);
  2. prepare_inputs: every input loaded, counted and checked before any work starts;
  3. run_short: inputs up to `chunk_seconds`, `max_batch` at a time, each batch padded to
     its bucket (batching.py) and run as one jitted call (runner.py);
  4. run_long: longer inputs in overlapping chunks, cross-faded (long_audio.py);
  5. assemble: the per-input results in input order, as a SeparationResult.
Lengths, text lengths and batch sizes are padded to buckets so a handful of compilations
serve every input; they are kept across processes in JAX's persistent compilation cache,
set for the call only (compile_cache.py).

Batching is invisible where it can be. Noise is drawn per item and per frame from the
caller's key (batching.py), never from the batch. A padding-aware model
(config.model.padding_aware_groupnorm) takes its x_embedder statistics over valid frames and
zeroes padded frames before each convolution, so nothing about an input's padding reaches
its valid frames: an input separated in a batch of other lengths equals it separated alone
with the same key. `separate` also keeps padded frames at exactly zero (noise, mixture
features, velocity), so adaptive solvers' error norms see only valid frames.
With the release's GroupNorm (the default), statistics include padded frames, so an item's
result depends on how far it was padded; items of equal length batch invisibly.

Candidates: `candidates=k` draws k noises per input, a ranker (rankers.py) scores them and
the best is kept (`SoundActivityRanker` when none is given: it prefers candidates whose
activity matches the "+" spans, and keeps the first candidate when there are none).

Inputs longer than `chunk_seconds` are separated in overlapping chunks and cross-faded
(long_audio.py). With a `mesh`, the batch axis is split over its 'data' axis and the
parameters are replicated.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from samaudio_jax.data.spans import validate_spans
from samaudio_jax.sample import audio_io, batching, consistency, long_audio, span_prediction
from samaudio_jax.sample.compile_cache import (  # noqa: F401  (public names, kept here)
    DEFAULT_CACHE_DIR,
    call_cache,
    enable_compilation_cache,
)
from samaudio_jax.sample.options import SeparateOptions
from samaudio_jax.sample.runner import (  # noqa: F401  (public names, kept here)
    CLEAN_TIME_EPS,
    BatchOutput,
    Runner,
    velocity_from_clean,
)

Span = tuple[str, float, float]


@dataclasses.dataclass
class SeparationResult:
    """Per input: target and residual waveforms of the input's length at `sample_rate`."""

    target: list[np.ndarray]
    residual: list[np.ndarray]
    sample_rate: int
    frame_masks: list[np.ndarray]  # (T_i,) True on the input's latent frames (all valid)
    padded_masks: list[np.ndarray]  # (T_bucket,) the audio padding mask the model saw
    anchor_alignments: list[np.ndarray]  # (T_bucket,) the span alignment the model saw
    scores: list[np.ndarray | None]  # (k,) ranker scores, None when k == 1
    chosen: list[int]  # index of the kept candidate


@dataclasses.dataclass
class ItemResult:
    """One input's separation (a SeparationResult holds one of each per input)."""

    target: np.ndarray  # (N_i,)
    residual: np.ndarray  # (N_i,)
    padded_mask: np.ndarray  # (T_bucket,)
    anchor_alignment: np.ndarray  # (T_bucket,)
    scores: np.ndarray | None
    chosen: int


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The call's inputs, loaded and checked: mono waveforms at the codec's rate, one
    description, span list (possibly empty), video features (or None) and key each."""

    waves: list[np.ndarray]
    descriptions: list[str]
    spans: list[Sequence[Span] | None]
    videos: list[np.ndarray | None]
    keys: jax.Array
    sample_rate: int
    hop_length: int
    chunk: int | None  # inputs longer than this many samples are chunked

    @property
    def count(self) -> int:
        return len(self.waves)

    def is_long(self, i: int) -> bool:
        return self.chunk is not None and self.waves[i].shape[0] > self.chunk

    def frames(self, i: int) -> int:
        return -(-self.waves[i].shape[0] // self.hop_length)


def separate(
    model,
    codec,
    text_encoder,
    audios: Sequence[audio_io.AudioInput],
    descriptions: Sequence[str],
    spans: Sequence[Sequence[Span] | None] | None = None,
    video_features: Sequence[np.ndarray | None] | None = None,
    *,
    key: jax.Array,
    options: SeparateOptions | None = None,
    **overrides,
) -> SeparationResult:
    """Separates each input by its description (and spans / video features).

    `key`: one PRNG key (item i uses fold_in(key, i)) or one key per input.
    `video_features[i]` is (Dv, T_i) at the latent frame rate. The sampling options are the
    fields of SeparateOptions (solver, steps, step_size, candidates, ranker, padding_aware,
    prediction, sigma_min, rtol, atol, mesh, max_batch, chunk_seconds, overlap_seconds,
    progress, cache_dir, schedule, mixture_consistency, predict_spans): pass them as
    keywords, or as `options` (keywords override it).
    """
    opts = (options or SeparateOptions()).replace(**overrides).resolve(model)
    inputs = prepare_inputs(codec, audios, descriptions, spans, video_features, key, opts)
    runner = Runner(model, codec, text_encoder, opts)
    tokenize = text_encoder.tokenize if text_encoder is not None else None
    with call_cache(opts.cache_dir):
        items = run_short(runner, inputs, opts, tokenize)
        items.update(run_long(runner, inputs, opts, tokenize))
    result = assemble(items, inputs)
    return consistency.apply_to_result(result, inputs.waves, opts.mixture_consistency, codec)


def prepare_inputs(codec, audios, descriptions, spans, video_features, key, opts) -> Inputs:
    """Stage 2: every input loaded (mono, the codec's rate), counted and checked before any
    work starts."""
    if isinstance(audios, (str, os.PathLike, np.ndarray, tuple)):
        raise TypeError("audios: expected a list of inputs (paths, arrays or (array, rate))")
    if isinstance(descriptions, str):
        raise TypeError("descriptions: expected a list of strings, one per input")
    count = len(audios)
    if count == 0:
        raise ValueError("audios: expected at least one input")
    if len(descriptions) != count:
        raise ValueError(f"descriptions: expected one per input ({count}), got {len(descriptions)}")
    spans = [None] * count if spans is None else list(spans)
    if len(spans) != count:
        raise ValueError(f"spans: expected one span list per input ({count}), got {len(spans)}")
    videos = [None] * count if video_features is None else list(video_features)
    if len(videos) != count:
        raise ValueError(f"video_features: expected one per input ({count}), got {len(videos)}")
    rate = codec.sample_rate
    waves = [audio_io.load_audio(a, rate, where=f"audios[{i}]") for i, a in enumerate(audios)]
    spans = span_prediction.fill_spans(opts.predict_spans, waves, rate, descriptions, spans)
    inputs = Inputs(
        waves, list(descriptions), spans, videos, batching.as_item_keys(key, count), rate,
        codec.hop_length, opts.chunk_samples(rate),
    )  # fmt: skip
    for i, wave in enumerate(waves):
        validate_spans([tuple(x) for x in spans[i] or ()], wave.shape[0] / rate, f"spans[{i}]")
        if inputs.is_long(i) and videos[i] is not None:
            raise ValueError(
                f"video_features[{i}]: inputs longer than chunk_seconds={opts.chunk_seconds} "
                "are separated in chunks, which does not take video features yet"
            )
    return inputs


def _prepare(inputs: Inputs, indices, tokenize, waves=None, spans=None, videos=None, frames=None):
    """A PreparedBatch of inputs `indices` (or of the given waves / spans / videos, e.g. a
    long input's chunks), optionally padded to `frames`."""
    return batching.prepare_batch(
        waves if waves is not None else [inputs.waves[i] for i in indices],
        [inputs.descriptions[i] for i in indices],
        spans if spans is not None else [inputs.spans[i] for i in indices],
        videos if videos is not None else [inputs.videos[i] for i in indices],
        sample_rate=inputs.sample_rate,
        hop_length=inputs.hop_length,
        tokenize=tokenize,
        frames=frames,
    )


def run_short(runner: Runner, inputs: Inputs, opts, tokenize) -> dict[int, ItemResult]:
    """Stage 3: inputs up to the chunk length, `max_batch` at a time in input order."""
    short = [i for i in range(inputs.count) if not inputs.is_long(i)]
    items = {}
    for first in range(0, len(short), opts.max_batch):
        group = short[first : first + opts.max_batch]
        prepared = _prepare(inputs, group, tokenize)
        out = runner.run(prepared, inputs.keys[jnp.asarray(group)])
        for b, i in enumerate(group):
            target, residual, scores, chosen = out.pick(b)
            n = int(prepared.lengths[b])
            items[i] = ItemResult(
                target[:n], residual[:n], prepared.valid[b], prepared.anchor_alignment[b],
                scores, chosen,
            )  # fmt: skip
    return items


def run_long(runner: Runner, inputs: Inputs, opts, tokenize) -> dict[int, ItemResult]:
    """Stage 4: longer inputs, each in overlapping chunks (`max_batch` per call) whose
    results are cross-faded; chunk j of input i draws its noise from fold_in(key_i, j)."""
    chunk_frames = None
    if inputs.chunk is not None:
        chunk_frames = batching.bucket_frames(-(-inputs.chunk // inputs.hop_length))
    items = {}
    for i in (i for i in range(inputs.count) if inputs.is_long(i)):

        def separate_chunks(chunks, chunk_spans, first_index, i=i):
            n = len(chunks)
            prepared = _prepare(inputs, [i] * n, tokenize, list(chunks), chunk_spans,
                                [None] * n, chunk_frames)  # fmt: skip
            keys = jax.vmap(lambda j: jax.random.fold_in(inputs.keys[i], j))(
                jnp.arange(first_index, first_index + n)
            )
            out = runner.run(prepared, keys)
            picked = [out.pick(b) for b in range(n)]
            size = chunks.shape[1]
            return (
                np.stack([p[0][:size] for p in picked]),
                np.stack([p[1][:size] for p in picked]),
            )

        target, residual = long_audio.separate_long(
            separate_chunks,
            inputs.waves[i],
            inputs.spans[i],
            sample_rate=inputs.sample_rate,
            chunk_seconds=opts.chunk_seconds,
            overlap_seconds=opts.overlap_seconds,
            chunks_per_call=opts.max_batch,
            progress=opts.progress,
        )
        frames = inputs.frames(i)
        items[i] = ItemResult(
            target, residual, np.ones(frames, bool), np.zeros(frames, np.int32), None, 0
        )
    return items


def assemble(items: dict[int, ItemResult], inputs: Inputs) -> SeparationResult:
    """Stage 5: the per-input results in input order."""
    ordered = [items[i] for i in range(inputs.count)]
    return SeparationResult(
        target=[r.target for r in ordered],
        residual=[r.residual for r in ordered],
        sample_rate=inputs.sample_rate,
        frame_masks=[np.ones(inputs.frames(i), bool) for i in range(inputs.count)],
        padded_masks=[r.padded_mask for r in ordered],
        anchor_alignments=[r.anchor_alignment for r in ordered],
        scores=[r.scores for r in ordered],
        chosen=[r.chosen for r in ordered],
    )

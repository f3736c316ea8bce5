"""Long-audio separation: chunks overlap, blend continuously and cover the exact length."""

import numpy as np
import pytest

from samaudio_jax.sample import long_audio

RATE = 1000


def run(separator, audio, spans=None, chunk=1.0, overlap=0.2, per_call=2, progress=None):
    return long_audio.separate_long(
        separator,
        audio,
        spans,
        sample_rate=RATE,
        chunk_seconds=chunk,
        overlap_seconds=overlap,
        chunks_per_call=per_call,
        progress=progress,
    )


def identity(chunks, spans, first):
    return chunks, 0.5 * chunks


@pytest.mark.parametrize("length", [1, 700, 1000, 1001, 3333, 5000])
def test_output_has_the_exact_length_and_agreeing_chunks_pass_through(length):
    audio = np.random.default_rng(length).normal(size=length).astype(np.float32)
    target, residual = run(identity, audio)
    assert target.shape == (length,) and residual.shape == (length,)
    np.testing.assert_allclose(target, audio, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(residual, 0.5 * audio, rtol=1e-6, atol=1e-6)


def test_no_step_at_the_seams_when_chunks_disagree():
    length = 4321
    audio = np.sin(2 * np.pi * 3.0 * np.arange(length) / RATE).astype(np.float32)

    def offset_per_chunk(chunks, spans, first):
        # Each chunk's output is shifted by its own constant: a hard cut would jump by 1.0.
        offsets = np.arange(first, first + len(chunks), dtype=np.float32)[:, None]
        return chunks + offsets, chunks - offsets

    target, residual = run(offset_per_chunk, audio)
    smooth_step = np.abs(np.diff(audio)).max()
    for out in (target, residual):
        # Raised-cosine ramps over 200 samples: the offset of 1.0 spreads to <= pi/400 a sample.
        assert np.abs(np.diff(out)).max() < smooth_step + np.pi / 400 + 1e-4
    starts = long_audio.chunk_starts(length, 1000, 200)
    assert starts == [0, 664, 1328, 1993, 2657, 3321]
    # Away from the seams, each chunk's own output comes through unchanged.
    np.testing.assert_allclose(target[500], audio[500] + 0.0, atol=1e-6)
    np.testing.assert_allclose(target[1200], audio[1200] + 1.0, atol=1e-6)


def test_spans_are_shifted_into_each_chunks_local_time():
    seen = {}

    def record(chunks, spans, first):
        for j, s in enumerate(spans):
            seen[first + j] = s
        return chunks, chunks

    audio = np.zeros(3000, np.float32)
    run(record, audio, spans=[("+", 1.2, 2.6), ("-", 0.1, 0.3)])
    # Four chunks of 1 s, evenly spaced: starts 0, 0.667, 1.333, 2.0 s.
    assert sorted(seen) == [0, 1, 2, 3]
    assert seen[0] == [("-", pytest.approx(0.1), pytest.approx(0.3))]
    assert seen[1] == [("+", pytest.approx(0.533), pytest.approx(1.0))]
    assert seen[2] == [("+", pytest.approx(0.0), pytest.approx(1.0))]
    assert seen[3] == [("+", pytest.approx(0.0), pytest.approx(0.6))]


def test_memory_is_bounded_by_chunks_per_call_and_progress_is_reported():
    sizes, reports = [], []

    def count(chunks, spans, first):
        sizes.append(chunks.shape)
        return chunks, chunks

    run(count, np.zeros(9000, np.float32), per_call=3, progress=lambda d, t: reports.append((d, t)))
    assert all(s[0] <= 3 and s[1] == 1000 for s in sizes)
    assert sum(s[0] for s in sizes) == 11
    assert reports[-1] == (11, 11) and len(reports) == 4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        run(identity, np.zeros(5000, np.float32), overlap=1.0)
    with pytest.raises(ValueError, match="audio: expected a non-empty mono"):
        run(identity, np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="separate_chunks returned"):
        run(lambda c, s, f: (c[:, :-1], c), np.zeros(3000, np.float32))


@pytest.mark.parametrize(("length", "overlap"), [(2500, 0), (2500, 300), (1001, 200), (9999, 450)])
def test_blend_weights_sum_to_one_everywhere(length, overlap):
    starts = long_audio.chunk_starts(length, 1000, overlap)
    weights = long_audio.chunk_weights(starts, 1000, overlap, length)
    total = np.zeros(length)
    for s, w in zip(starts, weights):
        total[s : s + 1000] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert starts[0] == 0 and starts[-1] + 1000 == length

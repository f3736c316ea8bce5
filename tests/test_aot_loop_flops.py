"""The FLOPs `compile` reports count every layer of a scanned stack: XLA's cost analysis
visits a while loop's body once, parallel/hlo_cost.py multiplies it by the trip count.

The real train step (flow loss, backward, AdamW) of a small DiT on latent batches, compiled
on this CPU with the layers scanned and unrolled: both must report the same FLOPs, and both
must match a count of the DiT's matmuls written out here (2 m n k per matmul; the backward
of a matmul is two matmuls of the same size, so a train step is 3x the forward)."""

import jax
import pytest

from samaudio_jax.cli.compile import compile_for_devices
from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.model.layers import ffn_hidden_dim
from samaudio_jax.parallel import aot

B, SECONDS, LAYERS, DIM, TEXT = 2, 0.25, 3, 128, 16


def _config(scan: bool, remat: str):
    c = load_config("configs/tiny.py", [])
    c.model.dim, c.model.num_layers, c.model.num_heads = DIM, LAYERS, 4
    c.model.scan_layers, c.model.remat_policy = scan, remat
    c.train.global_batch_size, c.data.segment_seconds = B, SECONDS
    c.mesh.data, c.mesh.fsdp = 1, 1
    c.text.kind = "t5"  # latent batches carry the text table's features: no encoder in the step
    return c


def _analytic_train_flops(c) -> float:
    m = c.model
    d, f = m.dim, ffn_hidden_dim(m.dim, m.ffn_exp, m.multiple_of)
    frames = B * int(round(SECONDS * c.data.sample_rate / c.codec.hop_length))
    t = frames // B
    memory = B * TEXT  # cross-attention memory tokens (the text prompt)
    per_frame_layer = 4 * d * d + 2 * d * d + 3 * d * f  # self q k v o, cross q o, SwiGLU
    per_memory_layer = 2 * d * d  # cross k v
    scores = 2 * (B * t * t * d) + 2 * (B * t * TEXT * d)  # q k^T and p v, self and cross
    layers = m.num_layers * (
        2 * frames * per_frame_layer + 2 * memory * per_memory_layer + 2 * scores
    )
    outside = (
        2 * frames * (m.in_channels * d + m.video_dim * d + 2 * 3 * d * d + d * m.out_channels)
    )
    outside += 2 * memory * (m.text_dim * d + 3 * d * d)  # memory_proj, context SwiGLU
    return 3 * (layers + outside)


def _cost(scan: bool):
    config = _config(scan, "none")  # no remat: a train step is exactly 3 forwards of matmuls
    compiled, _ = compile_for_devices(config, jax.devices()[:1], TEXT, "latents")
    return aot.loop_cost(compiled)


def test_scanned_and_unrolled_stacks_report_the_same_flops():
    scanned, unrolled = _cost(True), _cost(False)
    assert not scanned.unknown and not unrolled.unknown
    # the scanned stack is a loop of LAYERS trips in the forward and one in the backward
    # (the other loops, in both programs, are the 5 rounds of the noise's threefry hash)
    trips = [loop.trip_count for loop in scanned.loops]
    assert trips.count(LAYERS) == 2 and set(trips) == {LAYERS, 5}, scanned.loops
    assert {loop.trip_count for loop in unrolled.loops} <= {5}, unrolled.loops
    # XLA alone undercounts the scanned program (about one block of three)...
    assert scanned.xla_flops < 0.6 * unrolled.xla_flops
    assert unrolled.flops == pytest.approx(unrolled.xla_flops, rel=0.01)
    # ...the loop-aware count does not (stated tolerance: 2%)
    assert scanned.flops == pytest.approx(unrolled.flops, rel=0.02)
    # bytes: the scanned program really moves more in XLA's model (each trip slices its
    # layer's weights out of the stack and copies the carry), but the same order
    assert unrolled.bytes_accessed <= scanned.bytes_accessed <= 2 * unrolled.bytes_accessed
    analytic = _analytic_train_flops(_config(True, "none"))
    assert 0.9 * analytic <= scanned.flops <= 1.1 * analytic, (scanned.flops, analytic)
    assert 0.9 * analytic <= unrolled.flops <= 1.1 * analytic, (unrolled.flops, analytic)


def test_trip_counts_are_read_from_the_loop_condition_when_xla_does_not_annotate_them():
    """The TPU backend's compiled HLO carries no known_trip_count: the count then comes from
    the condition `i < N` and i's initial constant. Checked on a CPU program with the
    annotation removed, against the annotated count and the 2 m n k x trips arithmetic."""
    import re

    import jax.numpy as jnp

    from samaudio_jax.parallel import hlo_cost

    steps, m, n = 7, 32, 64

    def f(w, x):
        h, _ = jax.lax.scan(lambda h, wi: (jnp.tanh(h @ wi), None), x, w)
        return h.sum()

    compiled = (
        jax.jit(jax.grad(f))
        .lower(
            jax.ShapeDtypeStruct((steps, n, n), jnp.float32),
            jax.ShapeDtypeStruct((m, n), jnp.float32),
        )
        .compile()
    )
    flops, nbytes = aot.xla_cost(compiled)
    text = compiled.as_text()
    assert '"known_trip_count"' in text
    annotated = hlo_cost.loop_aware_cost(text, flops, nbytes)
    stripped = re.sub(r',?"known_trip_count":\{"n":"\d+"\}', "", text)
    assert '"known_trip_count"' not in stripped
    read = hlo_cost.loop_aware_cost(stripped, flops, nbytes)
    assert [loop.trip_count for loop in read.loops] == [steps, steps] and not read.unknown
    assert read.flops == annotated.flops and read.bytes_accessed == annotated.bytes_accessed
    # forward h @ w, backward dh @ w^T and h^T @ dh: three matmuls per step
    assert read.flops == pytest.approx(3 * 2 * m * n * n * steps, rel=0.1)
    assert flops < 0.3 * read.flops  # XLA alone: one step of seven

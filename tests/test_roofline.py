"""The roofline prediction `compile` prints: XLA's FLOPs and bytes for a program whose
counts are known, and the predicted time / bound / MFU arithmetic."""

import jax
import jax.numpy as jnp
import pytest

from samaudio_jax.parallel import aot


def test_cost_analysis_counts_a_matmul_and_the_roofline_picks_the_bound():
    m, k, n = 256, 512, 128
    compiled = (
        jax.jit(lambda a, b: a @ b)
        .lower(jax.ShapeDtypeStruct((m, k), jnp.float32), jax.ShapeDtypeStruct((k, n), jnp.float32))
        .compile()
    )
    flops, nbytes = aot.cost(compiled)
    assert flops == pytest.approx(2 * m * k * n, rel=0.01)
    assert nbytes >= 4 * (m * k + k * n + m * n)  # reads both operands, writes the result
    r = aot.roofline("v5p", flops, nbytes)
    assert r.peak_flops == 459e12 and r.hbm_bytes_per_s == 2765e9
    # a small matmul moves more bytes per FLOP than v5p's ridge point (~166 FLOP/byte)
    assert flops / nbytes < 459e12 / 2765e9 and r.bound == "HBM bandwidth"
    assert r.step_s == pytest.approx(nbytes / 2765e9)
    assert r.mfu() == pytest.approx(flops / 459e12 / r.step_s) and r.mfu() < 1
    big = aot.roofline("v5e", 1e15, 1e9)
    assert big.bound == "compute" and big.mfu() == pytest.approx(1.0)
    assert big.mfu(useful_flops=0.5e15) == pytest.approx(0.5)

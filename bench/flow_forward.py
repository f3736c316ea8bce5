"""Forward passes/s of the flow network (jitted JAX, CPU) against mlx-audio's SAM Audio port
(mlx[cpu]) on the same random release-layout weights and inputs.

Prints the median of --runs timed runs (after a warm-up that compiles) for our network with
unscanned and scanned blocks and for mlx-audio, and the ratio mlx / ours (> 1: ours faster).
mlx-audio omits align_masked_video, so its gate is 0 here (ours still runs the branch).

    PYTHONPATH=. python bench/flow_forward.py [--dim 256] [--layers 4] [--frames 250] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax.numpy as jnp
import mlx.core as mx
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts, median_seconds  # noqa: E402
from samaudio_jax.config_schema import default_config  # noqa: E402
from samaudio_jax.model.factory import (  # noqa: E402
    abstract_flow_params,
    build_flow,
    flow_arrays_from_state_dict,
    flow_state_dict,
)
from tests.mlx_reference import mlx_reference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    m = default_config().model
    m.dim, m.num_layers, m.num_heads = args.dim, args.layers, args.heads
    rng = np.random.default_rng(0)
    arrays = {
        k: (rng.standard_normal(v.shape) * 0.05).astype(np.float32)
        for k, v in abstract_flow_params(m).items()
    }
    arrays["align_masked_video.gate"][:] = 0.0
    unscanned = build_flow(m, arrays)
    state = flow_state_dict(unscanned, m)
    ms = m.copy_and_resolve_references()
    ms.scan_layers = True
    scanned = build_flow(ms, flow_arrays_from_state_dict(state, ms))
    ref = mlx_reference(m, state)

    b, t, s = args.batch, args.frames, 16
    noisy = rng.standard_normal((b, t, 256)).astype(np.float32)
    feats = rng.standard_normal((b, t, 256)).astype(np.float32)
    text = rng.standard_normal((b, s, 768)).astype(np.float32)
    mask = np.ones((b, s), bool)
    time_ = np.full((b,), 0.5, np.float32)
    pad = np.ones((b, t), bool)
    jargs = [jnp.asarray(a) for a in (noisy, feats, text, mask, time_)]

    @nnx.jit
    def forward(model, *a):
        return model(*a, audio_pad_mask=jnp.asarray(pad))

    ours_u = median_seconds(lambda: forward(unscanned, *jargs).block_until_ready(), args.runs)
    ours_s = median_seconds(lambda: forward(scanned, *jargs).block_until_ready(), args.runs)
    margs = [mx.array(a) for a in (noisy, feats, text, time_)]
    ids = mx.array(np.tile(np.array([[0, 3]], np.int32), (b, 1)))
    align = mx.array(np.zeros((b, t), np.int32))

    def run_mlx():
        out = ref(
            *margs,
            text_mask=mx.array(mask),
            anchor_ids=ids,
            anchor_alignment=align,
            audio_pad_mask=mx.array(pad),
        )
        mx.eval(out)

    theirs = median_seconds(run_mlx, args.runs)
    check = np.asarray(forward(unscanned, *jargs))
    out = ref(
        *margs,
        text_mask=mx.array(mask),
        anchor_ids=ids,
        anchor_alignment=align,
        audio_pad_mask=mx.array(pad),
    )
    err = np.linalg.norm(check - np.array(out)) / np.linalg.norm(np.array(out))

    print(machine_facts())
    print(
        f"flow forward, D={m.dim} x {m.num_layers} layers, B={b}, T={t}, f32; "
        f"median of {args.runs}; rel. diff {err:.1e}"
    )
    print(f"{'implementation':<28}{'seconds':>10}{'mlx / this':>12}")
    for name, sec in (
        ("ours (jit, unscanned)", ours_u),
        ("ours (jit, scanned)", ours_s),
        ("mlx-audio (mlx cpu)", theirs),
    ):
        print(f"{name:<28}{sec:>10.4f}{theirs / sec:>12.2f}")


if __name__ == "__main__":
    main()

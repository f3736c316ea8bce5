"""The two samplers the separation benchmarks compare, on the same weights and inputs.

Ours: the flow network under jax.jit, integrated by solvers.integrate_fixed("midpoint").
The reference: bench/torch_dit.py's eager PyTorch copy loaded from our weights through
flow_state_dict, integrated by torchdiffeq's midpoint rule (the release's way). Also the
random inputs both get and our end-to-end separate() on configs/tiny.py. Used by
bench/separate.py (batch 1, the speed-up table) and bench/separate_throughput.py (batches).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from bench.common import time_runs
from bench.torch_dit import TorchSAMAudioFlow, sample_midpoint
from samaudio_jax.model.factory import flow_state_dict
from samaudio_jax.sample import solvers

FRAMES, TEXT_TOKENS = 250, 16  # 10 s at 25 latent frames/s; 11 of 16 text tokens valid


def random_inputs(m, batch: int) -> tuple[np.ndarray, ...]:
    """(noise, features, text, text_mask, valid) for a network config, seed 0."""
    rng = np.random.default_rng(0)
    c = m.out_channels
    noise = rng.normal(size=(batch, FRAMES, c)).astype(np.float32)
    mixture = rng.normal(size=(batch, FRAMES, c // 2)).astype(np.float32)
    features = np.concatenate([mixture, mixture], axis=-1)
    text = rng.normal(size=(batch, TEXT_TOKENS, m.text_dim)).astype(np.float32)
    text_mask = np.broadcast_to(np.arange(TEXT_TOKENS)[None] < 11, (batch, TEXT_TOKENS)).copy()
    valid = np.ones((batch, FRAMES), bool)
    return noise, features, text, text_mask, valid


def jax_midpoint_sampler(model, steps: int):
    """A jitted midpoint sampler over `steps` uniform steps: f(noise, features, text,
    text_mask, valid) -> the clean latents."""
    graphdef, state = nnx.split(model)
    grid = jnp.asarray(solvers.uniform_grid(steps))

    @jax.jit
    def sample(state, noise, features, text, text_mask, valid):
        net = nnx.merge(graphdef, state)

        def field(t, x, args):
            time_ = jnp.full((x.shape[0],), t, jnp.float32)
            return net(x, features, text, text_mask, time_, audio_pad_mask=valid)

        return solvers.integrate_fixed("midpoint", field, noise, grid)

    return lambda *args: sample(state, *args)


def time_jax(sampler, inputs, repeats: int):
    """(first call seconds, median seconds of `repeats` more, the output) of a jitted
    sampler on numpy inputs."""
    args = [jnp.asarray(a) for a in inputs]
    start = time.perf_counter()
    jax.block_until_ready(sampler(*args))
    compile_s = time.perf_counter() - start
    median, out = time_runs(lambda: jax.block_until_ready(sampler(*args)), repeats, warmup=0)
    return compile_s, median, out


def torch_midpoint_runner(model, m, inputs, probe_repeats: int = 1):
    """The torch reference on `model`'s weights: (run(steps) -> tensor, threads).

    `model` may be deleted afterwards. torch gets a warm-up and the faster of 1 thread and
    all cores, timed on one step (on a loaded machine OpenMP's spinning threads can be
    several times slower than one thread); that count stays set.
    """
    noise, features, text, text_mask, valid = inputs
    net = TorchSAMAudioFlow.from_config(m).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in flow_state_dict(model, m).items()}
    net.load_state_dict(state, strict=True)
    cond = dict(
        text=torch.from_numpy(text),
        text_mask=torch.from_numpy(text_mask),
        audio_mask=torch.from_numpy(valid),
    )

    def run(steps: int):
        with torch.no_grad():
            return sample_midpoint(
                net, torch.from_numpy(noise), torch.from_numpy(features), steps=steps, **cond
            )

    seconds = {}
    for count in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(count)
        run(1)
        seconds[count], _ = time_runs(lambda: run(1), probe_repeats, warmup=0)
    best = min(seconds, key=seconds.get)
    torch.set_num_threads(best)
    return run, best


def max_relative_difference(ours, reference: torch.Tensor) -> float:
    ref = reference.numpy()
    return float(np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max())


def tiny_separate_timing(batch: int, steps: int, repeats: int) -> tuple[float, float]:
    """Our separate() end to end (configs/tiny.py: frames codec, small text encoder) on
    `batch` random clips of FRAMES frames: (median seconds a call, first call seconds)."""
    from configs.tiny import get_config
    from samaudio_jax.sample import loading
    from samaudio_jax.sample.separate import separate

    config = get_config()
    sep = loading.build_separator(config)
    rng = np.random.default_rng(0)
    audios = [
        (rng.normal(size=FRAMES * config.codec.hop_length) * 0.3).astype(np.float32)
        for _ in range(batch)
    ]

    def call():
        return separate(
            sep.model, sep.codec, sep.text_encoder, audios, ["a dog barking"] * batch,
            key=jax.random.key(0), steps=steps, max_batch=batch, cache_dir=None,
        )  # fmt: skip

    start = time.perf_counter()
    call()
    compile_s = time.perf_counter() - start
    median, _ = time_runs(call, repeats, warmup=0)
    return median, compile_s

"""bench/torch_dit.py (the PyTorch eager network the benchmark times) computes what our JAX
SAMAudioFlow computes on the same weights, padding and masks included."""

import jax
import numpy as np
import pytest
import torch
from flax import nnx

from bench.torch_dit import TorchSAMAudioFlow, sample_midpoint
from samaudio_jax.model import SAMAudioFlow
from samaudio_jax.model.factory import flow_state_dict
from samaudio_jax.sample import solvers
from tests.release_fixtures import tiny_model_config

B, T, S = 2, 14, 5


def perturbed_pair(padding_aware):
    """Our model with every parameter perturbed (gates open), and the torch copy of it."""
    m = tiny_model_config(padding_aware_groupnorm=padding_aware)
    model = SAMAudioFlow(m, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    for _, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        value = np.asarray(var.get_value())
        var.set_value(value + 0.2 * rng.normal(size=value.shape).astype(value.dtype))
    net = TorchSAMAudioFlow.from_config(m).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in flow_state_dict(model, m).items()}
    net.load_state_dict(state, strict=True)
    return model, net


def random_inputs(seed=0):
    rng = np.random.default_rng(seed)
    frames = np.array([T, 9])
    valid = np.arange(T)[None] < frames[:, None]
    alignment = np.where(valid, 0, 1)
    alignment[0, 3:8] = 2
    alignment[1, 1:4] = 3
    return dict(
        noisy=rng.normal(size=(B, T, 16)).astype(np.float32),
        features=rng.normal(size=(B, T, 16)).astype(np.float32),
        time=np.array([0.3, 0.85], np.float32),
        text=rng.normal(size=(B, S, 24)).astype(np.float32),
        text_mask=np.arange(S)[None] < np.array([[S], [2]]),
        video=rng.normal(size=(B, 20, T)).astype(np.float32),
        anchor_ids=np.array([[0, 3, 1, 3], [0, 3, 2, 1]], np.int64),
        anchor_alignment=alignment.astype(np.int64),
        audio_mask=valid,
    )


def jax_forward(model, x):
    return np.asarray(
        model(
            x["noisy"],
            x["features"],
            x["text"],
            x["text_mask"],
            x["time"],
            x["video"],
            x["anchor_ids"],
            x["anchor_alignment"],
            x["audio_mask"],
        )
    )


def torch_forward(net, x):
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in x.items()}
    with torch.no_grad():
        return net(
            t["noisy"], t["features"], t["time"], t["text"], t["text_mask"], t["video"],
            t["anchor_ids"], t["anchor_alignment"], t["audio_mask"],
        ).numpy()  # fmt: skip


@pytest.mark.parametrize("padding_aware", [False, True])
def test_torch_network_matches_jax_network_on_the_same_weights(padding_aware):
    model, net = perturbed_pair(padding_aware)
    x = random_inputs()
    ours, ref = jax_forward(model, x), torch_forward(net, x)
    valid = x["audio_mask"]
    scale = np.abs(ref[valid]).max()
    np.testing.assert_allclose(ours[valid] / scale, ref[valid] / scale, atol=1e-4)
    # Padded frames take part in the GroupNorm, so they also agree.
    np.testing.assert_allclose(ours / scale, ref / scale, atol=1e-4)


def test_torch_midpoint_sampling_matches_our_midpoint_solver():
    model, net = perturbed_pair(False)
    x = random_inputs(3)
    noise = x["noisy"]

    def field(t, y, args):
        return model(y, x["features"], x["text"], x["text_mask"], jax.numpy.full((B,), t))

    ours = np.asarray(solvers.solve(field, noise, solver="midpoint", step_size=2 / 32))
    ref = sample_midpoint(
        net,
        torch.from_numpy(noise),
        torch.from_numpy(x["features"]),
        steps=16,
        text=torch.from_numpy(x["text"]),
        text_mask=torch.from_numpy(x["text_mask"]),
    ).numpy()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours / scale, ref / scale, atol=1e-4)

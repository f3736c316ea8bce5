"""Fine-tuning a released SAM Audio end to end, with LoRA and with freezing.

A release-layout directory with random weights for every part (flow network, a small DACVAE,
a small PE-Core tower, a carried span predictor; tests/release_fixtures.py) and a small T5
directory: `train --init_from` that release -> 20 steps -> export. The export's flow tensors
load strictly into the release-architecture torch network (bench/torch_dit.py) and match the
JAX network (adapters unmerged) to 1e-4; the codec's, vision tower's and carried tensors are
the source's bytes at every stage; frozen flow tensors never move and get no optimizer state.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import samaudio_jax as sa
from bench.torch_dit import TorchSAMAudioFlow
from samaudio_jax.checkpoint.release_dir import state_dict
from samaudio_jax.checkpoint.workdir import saved_config
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.state_dict_io import read_state_dict
from samaudio_jax.train import freeze
from samaudio_jax.train import state as state_lib
from samaudio_jax.train.loop import train
from tests.release_fixtures import write_full_release_dir
from tests.test_load import assert_bit_exact, train_config
from tests.test_text_t5 import _t5_dir

STEPS = 20
FROZEN_PARTS = ("audio_codec.", "vision_encoder.", "span_predictor.")


def _flow_inputs(m, seed=0):
    rng = np.random.default_rng(seed)
    b, t, s, c = 2, 8, 5, 2 * m.latent_dim
    return (
        rng.normal(size=(b, t, c)).astype(np.float32),
        rng.normal(size=(b, t, c)).astype(np.float32),
        rng.normal(size=(b, s, m.text_dim)).astype(np.float32),
        np.arange(s)[None] < np.array([[s], [3]]),
        np.array([0.2, 0.7], np.float32),
    )


def _torch_outputs(exported: dict, model_config, inputs) -> np.ndarray:
    flow = {
        k: torch.from_numpy(np.asarray(v, np.float32))
        for k, v in exported.items()
        if not k.startswith((*FROZEN_PARTS, "text_encoder."))
    }
    net = TorchSAMAudioFlow.from_config(model_config).eval()
    net.load_state_dict(flow, strict=True)  # the release's names, nothing missing or extra
    noisy, feats, text, mask, time = inputs
    with torch.no_grad():
        return net(
            torch.from_numpy(noisy),
            torch.from_numpy(feats),
            torch.from_numpy(time),
            torch.from_numpy(text),
            torch.from_numpy(mask),
        ).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "freeze"])
def test_fine_tune_a_release_and_export_it_for_the_release_network(mode, tmp_path):
    release, _ = write_full_release_dir(tmp_path / "release")
    t5 = tmp_path / "t5"
    _t5_dir(t5)
    source = read_state_dict(release)[0]
    config = train_config(sa.load(release, t5_dir=str(t5)))
    config.train.steps = STEPS
    config.train.checkpoint_every = STEPS
    config.train.learning_rate = 1e-2  # large enough that 20 steps visibly move the weights
    last = int(config.model.num_layers) - 1
    if mode == "lora":
        config.model.lora.rank = 4
    else:
        config.train.trainable = (f"flow/transformer/layers/{last}/.*",)
    result = train(config, tmp_path / "work", init_from=str(release), print_fn=print)
    assert result.final_step == STEPS and result.resumed_from == 0

    trained = sa.load(tmp_path / "work")
    assert trained.step == STEPS
    assert_bit_exact(source, state_dict(trained), FROZEN_PARTS)  # codec etc. after training

    sa.save(trained, tmp_path / "export")
    exported = read_state_dict(tmp_path / "export")[0]
    assert_bit_exact(source, exported, FROZEN_PARTS)  # ... and in the export
    flow_keys = [k for k in source if not k.startswith(FROZEN_PARTS)]
    moved = {k for k in flow_keys if source[k].tobytes() != exported[k].tobytes()}
    assert moved, "20 steps changed nothing"
    if mode == "freeze":
        layer = f"transformer.layers.{last}."
        assert all(k.startswith(layer) for k in moved), sorted(moved)[:5]
        # No optimizer state for the frozen parameters: Adam keeps two moments per trained
        # element and nothing else of parameter size.
        setup = state_lib.build_setup(
            saved_config(tmp_path / "work", STEPS), make_mesh(config.mesh, None)
        )
        trainable, total = freeze.count(setup.trainable, setup.abstract_state["params"])
        assert 0 < trainable < total
        import jax

        moments = sum(int(x.size) for x in jax.tree.leaves(setup.abstract_state["opt_state"]))
        assert trainable * 2 <= moments < trainable * 2 + 16, (moments, trainable, total)

    # The export in the release's torch network == our network as trained (adapters unmerged).
    inputs = _flow_inputs(trained.config.model)
    ours = np.asarray(trained.model(*inputs[:2], inputs[2], inputs[3], inputs[4]))
    again = sa.load(tmp_path / "export", t5_dir=str(t5))
    assert again.config.model.lora.rank == 0
    theirs = _torch_outputs(exported, again.config.model, inputs)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=1e-4)

"""Visual prompts through the real trainer: `samaudio-jax train` on shards with video
features (synth videos through a tiny random PE-Core tower) trains the video path; the
loss sees the video; step.network_video (what the loss feeds the network) is zeros for
examples whose visual prompt is dropped (train.cond_dropout)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_testlib import REPO, TINY, tiny_config

from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
from samaudio_jax.cli.main import main
from samaudio_jax.data.pipeline import dataset_from_config
from samaudio_jax.data.synth import SynthVideo, write_synth_corpus
from samaudio_jax.parallel.constraints import activation_sharding
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib
from samaudio_jax.vision.features import FrameEncoder, random_tower
from samaudio_jax.vision.pe import PEConfig

HOP = 16  # configs/tiny.py: codec hop 16 at 8 kHz


@pytest.fixture(scope="module")
def video_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_corpus")
    vision = tiny_config().vision
    encoder = FrameEncoder(random_tower(PEConfig.from_config(vision), 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_synth_corpus(
            root,
            classes=("tone", "noise", "sweep"),
            train_per_class=2,
            test_per_class=1,
            clip_seconds=0.1,
            video=SynthVideo(size=16, fps=50.0),
            video_encoder=encoder,
            hop_length=HOP,
        )
    return root


def _data(root, extra=()):
    return [
        f"--config.data.dir={root}",
        "--config.train.synthetic_data=false",
        "--config.data.min_sources=1",
        "--config.data.max_sources=1",
        *extra,
    ]


def _train_cli(workdir, overrides):
    argv = ["train", "--config", str(REPO / "configs" / "tiny.py"), "--workdir", str(workdir)]
    return main(argv + TINY + overrides)


def test_train_refuses_shards_whose_feature_width_is_not_model_video_dim(
    video_corpus, tmp_path, capsys
):
    assert _train_cli(tmp_path / "w", _data(video_corpus, ["--config.model.video_dim=32"])) == 1
    err = capsys.readouterr().err
    assert "video features are 48 wide" in err and "config.model.video_dim is 32" in err
    assert str(video_corpus / "train") in err


@pytest.mark.slow
def test_trainer_on_video_shards_trains_the_video_path(video_corpus, tmp_path):
    overrides = _data(
        video_corpus,
        [
            "--config.train.steps=3",
            "--config.train.checkpoint_every=1",
            "--config.train.learning_rate=1e-2",
            "--config.train.cond_dropout=0.0",
        ],
    )
    assert _train_cli(tmp_path / "w", overrides) == 0
    config = tiny_config(overrides)
    setup = state_lib.build_setup(config, make_mesh(config.mesh))
    ckpt = TrainCheckpointer(tmp_path / "w" / "checkpoints", config)
    state1, _ = ckpt.restore(1, setup.abstract_state)
    state, _ = ckpt.restore(3, setup.abstract_state)
    ckpt.close()
    # Step 1 moves the gate off 0; after that the conv kernel gets a gradient only from
    # non-zero video (its gradient is video x upstream): it moved, so video reached the net.
    trained = state["params"]["flow"]["align_masked_video"]
    before = state1["params"]["flow"]["align_masked_video"]["conv"]["kernel"]
    assert abs(float(trained["gate"][0])) > 1e-3
    assert np.abs(np.asarray(trained["conv"]["kernel"]) - np.asarray(before)).max() > 1e-4

    frozen = state_lib.init_frozen(setup)
    local = next(iter(dataset_from_config(config)))
    assert local["has_video"].all() and np.abs(local["video"]).max() > 0.1
    batch = step_lib.global_batch(setup, local)
    assert batch["video"].shape == (4, 48, 16)  # 0.032 s segments: 16 latent frames
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    grad_fn = jax.value_and_grad(step_lib.make_loss_fn(setup), has_aux=True)

    @jax.jit
    def run(params, b):
        with activation_sharding(setup.mesh, config.mesh.rules):
            (sse, count), g = grad_fn(params, frozen, b, keys, jax.random.PRNGKey(1))
        return sse / count, g["flow"]["align_masked_video"]["conv"]["kernel"]

    loss_real, g_real = run(state["params"], batch)
    loss_zero, g_zero = run(state["params"], dict(batch, video=jnp.zeros_like(batch["video"])))
    assert abs(float(loss_real - loss_zero)) > 1e-5 * abs(float(loss_zero))
    assert np.abs(np.asarray(g_real)).max() > 1e-6 and np.all(np.asarray(g_zero) == 0)


def test_visual_prompt_dropout_hands_the_network_zeros():
    rng = np.random.default_rng(0)
    video = jnp.asarray(rng.standard_normal((64, 5, 7)), jnp.float32) + 3.0  # no zero rows
    keys = jax.random.split(jax.random.PRNGKey(3), 64)

    def seen(rate):
        cfg = tiny_config([f"--config.train.cond_dropout={rate}"]).train
        return np.asarray(step_lib.network_video(video, keys, cfg)), cfg

    everything, _ = seen(1.0)
    assert np.all(everything == 0)
    nothing, _ = seen(0.0)
    np.testing.assert_array_equal(nothing, np.asarray(video))
    half, cfg = seen(0.5)
    dropped = np.asarray(step_lib.conditioning_drops(keys, cfg))[:, 1]
    assert 10 < dropped.sum() < 54  # about half of 64
    assert np.all(half[dropped] == 0)
    np.testing.assert_array_equal(half[~dropped], np.asarray(video)[~dropped])

"""Never save poison; refuse non-finite overrides; the resume check names every changed field
of data, vision, codec and the process/device layout, and an explicit allow-list lets it pass."""

import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from train_testlib import PYTHON, REPO, TINY, subprocess_env, tiny_config

from samaudio_jax.checkpoint import orbax_io
from samaudio_jax.checkpoint.orbax_io import (
    ConfigMismatchError,
    TrainCheckpointer,
    parse_allow_list,
)
from samaudio_jax.cli import train as train_cli_module
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.train import state as state_lib


def test_nan_learning_rate_is_rejected_at_the_command_line(tmp_path):
    cmd = [PYTHON, "-m", "samaudio_jax.cli.train", "--config", str(REPO / "configs" / "tiny.py")]
    cmd += ["--workdir", str(tmp_path / "w"), *TINY, "--config.train.learning_rate=nan"]
    proc = subprocess.run(
        cmd, env=subprocess_env(), capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: --config.train.learning_rate: expected a finite number, got 'nan'"]
    assert not (tmp_path / "w" / "checkpoints").exists()


@pytest.mark.parametrize(
    "override",
    ["--config.train.grad_clip_norm=inf", "--config.data.segment_seconds=-inf"],
)
def test_non_finite_float_overrides_are_rejected_naming_the_field(override):
    field = override.split("=")[0].removeprefix("--")
    with pytest.raises(ValueError, match=rf"^--{field}: expected a finite number"):
        tiny_config([override])
    with pytest.raises(ValueError, match=r"--config.data.snr_db: expected finite numbers"):
        tiny_config(["--config.data.snr_db=(1e999, 5)"])


def _poison_from_third_update(real):
    """The configured optimizer, then a multiplier that is nan from the third update on: the
    third step's loss (computed with the second step's parameters) is finite, its update is not."""

    def make(train_cfg):
        return optax.chain(
            real(train_cfg),
            optax.scale_by_schedule(lambda count: jnp.where(count >= 2, jnp.nan, 1.0)),
        )

    return make


@pytest.mark.slow
def test_a_non_finite_update_after_a_finite_loss_is_never_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        state_lib, "make_optimizer", _poison_from_third_update(state_lib.make_optimizer)
    )
    argv = ["--config", str(REPO / "configs" / "tiny.py"), "--workdir", str(tmp_path), *TINY]
    argv += ["--config.train.steps=6", "--config.train.checkpoint_every=2"]
    assert train_cli_module.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: step 3: param_norm is nan (loss "), err
    assert "finite): training stopped" in err[0] and "last good checkpoint is step 2" in err[0]

    config = tiny_config(["--config.train.steps=6", "--config.train.checkpoint_every=2"])
    setup = state_lib.build_setup(config, make_mesh(config.mesh))
    ckpt = TrainCheckpointer(tmp_path / "checkpoints", config, read_only=True)
    try:
        assert ckpt.all_steps() == [2]
        state, _ = ckpt.restore(2, setup.abstract_state)
    finally:
        ckpt.close()
    leaves = jax.tree.leaves(jax.device_get(state))
    assert leaves and all(np.isfinite(np.asarray(x)).all() for x in leaves)
    assert not (tmp_path / "train.lock").exists()  # released on the way out


def _saved(tmp_path, config):
    ckpt = TrainCheckpointer(tmp_path, config)
    ckpt.save(1, {"step": jnp.zeros((), jnp.int32)}, force=True)
    ckpt.close()


CHANGES = {
    "data": (["--config.data.dir=/data/a"], ["--config.data.dir=/data/b"], ["data.dir"]),
    "data stream": (
        [],
        ["--config.data.snr_db=(-5, 5)", "--config.data.sample_rate=16000"],
        ["data.sample_rate", "data.snr_db"],
    ),
    "vision": ([], ["--config.vision.enabled=true"], ["vision.enabled"]),
    "codec": (
        [],
        ["--config.codec.kind=dacvae", "--config.codec.encoder_rates=(2,8)"],  # tiny's hop 16
        ["codec.encoder_rates", "codec.kind"],
    ),
}


@pytest.mark.parametrize("group", sorted(CHANGES))
def test_resume_check_names_each_changed_field_and_the_allow_list_passes_it(tmp_path, group):
    before, after, fields = CHANGES[group]
    _saved(tmp_path, tiny_config(before))
    changed = tiny_config(after)
    ckpt = TrainCheckpointer(tmp_path, changed)
    with pytest.raises(ConfigMismatchError) as info:
        ckpt.check_config(1)
    message = str(info.value)
    assert "\n" not in message
    for f in fields:
        assert f"{f} is " in message, message
    assert f"--allow_config_change={','.join(fields)}" in message
    ckpt.close()
    allowed = TrainCheckpointer(tmp_path, changed, allow_changes=parse_allow_list(",".join(fields)))
    allowed.check_config(1)  # no error
    allowed.close()
    section = TrainCheckpointer(tmp_path, changed, allow_changes=(fields[0].split(".")[0],))
    section.check_config(1)
    section.close()


def test_resume_check_names_a_changed_process_and_device_layout(tmp_path, monkeypatch):
    config = tiny_config()
    _saved(tmp_path, config)
    real = orbax_io.current_layout()
    monkeypatch.setattr(
        orbax_io,
        "current_layout",
        lambda: {"process_count": 4, "device_count": real["device_count"] * 4},
    )
    ckpt = TrainCheckpointer(tmp_path, config)
    with pytest.raises(
        ConfigMismatchError,
        match=r"layout\.device_count is .*layout\.process_count is 1 there but 4 here",
    ):
        ckpt.check_config(1)
    ckpt.close()
    ok = TrainCheckpointer(tmp_path, config, allow_changes=("layout",))
    ok.check_config(1)
    ok.close()
    # Readers run anywhere: a read-only checkpointer does not compare layouts.
    reader = TrainCheckpointer(tmp_path, config, read_only=True)
    reader.check_config(1)
    reader.close()


def test_paths_that_are_only_locations_stay_free_and_unknown_allow_names_are_refused(tmp_path):
    _saved(tmp_path, tiny_config())
    moved = tiny_config(["--config.codec.checkpoint=/elsewhere", "--config.data.read_threads=9"])
    ckpt = TrainCheckpointer(tmp_path, moved)
    ckpt.check_config(1)
    ckpt.close()
    with pytest.raises(ValueError, match=r"--allow_config_change: 'sample\.steps' is not"):
        parse_allow_list("data.dir,sample.steps")

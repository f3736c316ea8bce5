"""Freezing by parameter-path patterns: frozen tensors never change, get no optimizer state,
and per-layer patterns work on scanned (stacked) layers too."""

import jax
import numpy as np
import pytest
from train_testlib import tiny_config

from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.train import freeze
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib
from samaudio_jax.train.synthetic import SyntheticBatches


def _flat(tree):
    return {
        jax.tree_util.keystr(p): np.asarray(x)
        for p, x in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    }


def _elements(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _train(extra, steps=3):
    """(initial params, final params, opt_state, setup) after `steps` steps on the tiny config."""
    config = tiny_config(["--config.train.warmup_steps=0", *extra])
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    state, frozen = state_lib.init_state(setup), state_lib.init_frozen(setup)
    before = _flat(state["params"])
    src = SyntheticBatches(
        global_batch=4, num_samples=256, sample_rate=8000, tokenize=setup.tokenize
    )
    batch = step_lib.global_batch(setup, next(src))
    fn = step_lib.jit_train_step(setup, batch)
    for i in range(steps):
        state, metrics = fn(state, frozen, batch, jax.random.PRNGKey(i))
        assert np.isfinite(float(metrics["loss"]))
    return before, _flat(state["params"]), state["opt_state"], setup


def _moments(opt_state) -> int:
    """Elements in Adam's moments (mu and nu: every leaf but the scalar step counts)."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(opt_state) if len(x.shape) > 0)


@pytest.mark.slow
def test_frozen_parameters_are_bit_identical_and_have_no_optimizer_state():
    frozen_rx = "flow/transformer/layers/0/.*"
    before, after, opt_state, setup = _train([f"--config.train.freeze=('{frozen_rx}', 'text/.*')"])

    def is_frozen(k):
        return k.startswith("['flow']['transformer']['layers'][0]") or k.startswith("['text']")

    frozen_keys = [k for k in before if is_frozen(k)]
    assert len(frozen_keys) > 10
    for k in before:
        if is_frozen(k):
            assert after[k].tobytes() == before[k].tobytes(), k
    changed = [k for k in before if not is_frozen(k) and not np.array_equal(after[k], before[k])]
    assert "['flow']['transformer']['layers'][1]['attention']['wq']" in changed
    trainable = sum(v.size for k, v in before.items() if not is_frozen(k))
    frozen_n = sum(v.size for k, v in before.items() if is_frozen(k))
    # Adam keeps mu and nu for the trainable parameters only.
    assert _moments(opt_state) == 2 * trainable
    assert freeze.count(setup.trainable, setup.abstract_state["params"]) == (
        trainable,
        trainable + frozen_n,
    )
    # ... and the abstract state the checkpointer and AOT use says the same.
    assert _moments(setup.abstract_state["opt_state"]) == 2 * trainable


def test_full_training_keeps_moments_for_every_parameter():
    config = tiny_config()
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    assert setup.trainable is None
    assert _moments(setup.abstract_state["opt_state"]) == 2 * _elements(
        setup.abstract_state["params"]
    )


@pytest.mark.slow
def test_last_layer_only_with_scanned_layers_cuts_the_stacked_leaves():
    before, after, opt_state, setup = _train(
        [
            "--config.model.scan_layers=true",
            "--config.train.trainable=('flow/transformer/layers/1/.*',)",
        ]
    )
    layers = "['flow']['transformer']['layers']"
    stacked = [k for k in before if k.startswith(layers)]
    assert stacked and all(before[k].shape[0] == 2 for k in stacked)
    for k, v in before.items():
        if k.startswith(layers):
            assert after[k][0].tobytes() == v[0].tobytes(), k  # layer 0 frozen
        else:
            assert after[k].tobytes() == v.tobytes(), k  # everything outside the blocks frozen
    assert not np.array_equal(
        after[layers + "['attention']['wq']"][1], before[layers + "['attention']['wq']"][1]
    )
    per_layer = sum(before[k][1].size for k in stacked)
    assert _moments(opt_state) == 2 * per_layer


def test_patterns_that_match_nothing_or_freeze_everything_are_errors():
    config = tiny_config(["--config.train.freeze=('flow/transformer/layer/0/.*',)"])
    with pytest.raises(
        ValueError,
        match=r"config.train.freeze: 'flow/transformer/layer/0/\.\*' matches no parameter path",
    ):
        state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    config = tiny_config(["--config.train.freeze=('.*',)"])
    with pytest.raises(ValueError, match="no parameter is left to train"):
        state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    config = tiny_config(["--config.train.trainable=('flow/(',)"])
    with pytest.raises(ValueError, match=r"config.train.trainable: 'flow/\(' is not a valid regex"):
        state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))


def test_compile_flags_set_the_finetuning_fields():
    import argparse

    from samaudio_jax.cli import compile as compile_cli

    parser = argparse.ArgumentParser()
    compile_cli.add_arguments(parser)
    base = ["--config", "configs/tiny.py", "--topology", "v5e:2x2"]
    config = tiny_config()
    args = parser.parse_args(base + ["--train_last_layers", "1"])
    assert compile_cli._apply_finetune_flags(config, args) == "partly frozen"
    assert config.train.trainable == ("flow/transformer/layers/(1)/.*",)
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    trained, total = freeze.count(setup.trainable, setup.abstract_state["params"])
    layer1 = sum(
        int(np.prod(x.shape))
        for x in jax.tree.leaves(setup.abstract_state["params"]["flow"]["transformer"]["layers"][1])
    )
    assert trained == layer1 < total
    config = tiny_config()
    args = parser.parse_args(base + ["--lora_rank", "8"])
    assert compile_cli._apply_finetune_flags(config, args) == "LoRA rank 8"
    assert config.model.lora.rank == 8
    # Scanned layers: the count cuts the stacked (abstract) leaves.
    config = tiny_config(["--config.model.scan_layers=true"])
    compile_cli._apply_finetune_flags(
        config, parser.parse_args(base + ["--train_last_layers", "1"])
    )
    setup = state_lib.build_setup(config, make_mesh(config.mesh, jax.devices()[:1]))
    assert freeze.count(setup.trainable, setup.abstract_state["params"]) == (layer1, total)
    args = parser.parse_args(base + ["--train_last_layers", "3"])
    with pytest.raises(ValueError, match="--train_last_layers: the model has 2 blocks"):
        compile_cli._apply_finetune_flags(tiny_config(), args)


def test_train_cli_names_a_bad_pattern_in_one_line(tmp_path, capsys):
    from train_testlib import REPO, TINY

    from samaudio_jax.cli import train as train_cli_module

    argv = ["--config", str(REPO / "configs" / "tiny.py"), "--workdir", str(tmp_path), *TINY]
    assert train_cli_module.main(argv + ["--config.train.trainable=('flow/nothing/.*',)"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: config.train.trainable: 'flow/nothing/.*' matches no parameter path"]
    assert (
        train_cli_module.main(argv + ["--config.model.lora.rank=2", "--config.model.lora.alpha=-1"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: config.model.lora.alpha: expected > 0, got -1.0"]

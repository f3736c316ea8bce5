"""Release checkpoint I/O (checkpoint/release_dir.py through samaudio_jax.load / save): exact
round trips, both file formats, scanned layers, named errors, the release's other parts carried
through unchanged."""

from __future__ import annotations

import json

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import samaudio_jax as sa
from samaudio_jax.checkpoint import release_config_from_model
from samaudio_jax.checkpoint.release_dir import write_release_dir as save_dir
from samaudio_jax.state_dict_io import read_state_dict
from tests.release_fixtures import random_release_state_dict, small_model_config, write_release_dir

CARRIED = {"span_predictor.proj.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}


def load_flow(path, model_config=None):
    """(separator, its config.model) of a release dir; a requested config.model's numerics
    fields (scan_layers, param_dtype) are set the way a fine-tuning run would."""
    sep = sa.load(path)
    if model_config is not None:
        from samaudio_jax.model.factory import (
            build_flow,
            flow_arrays_from_state_dict,
            flow_state_dict,
        )
        from samaudio_jax.train.init_from import check_architecture

        config = sep.config.copy_and_resolve_references()
        config.model = model_config
        check_architecture(config, sep)
        state = flow_state_dict(sep.model, sep.config.model)
        sep.model = build_flow(model_config, flow_arrays_from_state_dict(state, model_config))
        sep.config = config
    return sep


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    m = small_model_config()
    state = random_release_state_dict(m, seed=2)
    d = write_release_dir(tmp_path_factory.mktemp("rel"), m, state, extra=CARRIED)
    return m, state, d


def assert_same_state(a: dict, b: dict):
    assert set(a) == set(b)
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_export_of_import_is_bit_exact(release, tmp_path, scan_layers, fmt):
    m, state, d = release
    sep = load_flow(d, small_model_config(scan_layers=scan_layers))
    assert sep.codec is None and sep.text_encoder is None  # a flow-only file: none to give
    written = save_dir(sep, tmp_path, formats=(fmt,))
    again, _ = read_state_dict(written[0])
    assert_same_state({**state, **CARRIED}, again)
    exported_config = json.loads((tmp_path / "config.json").read_text())
    assert exported_config["transformer"]["dim"] == m.dim
    assert exported_config["transformer"]["n_layers"] == m.num_layers


def test_bfloat16_file_round_trips_with_its_own_dtypes(tmp_path):
    m = small_model_config()
    state = {k: v.astype(ml_dtypes.bfloat16) for k, v in random_release_state_dict(m, 3).items()}
    d = tmp_path / "bf16"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(release_config_from_model(m)))
    torch.save(
        {k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16) for k, v in state.items()},
        d / "checkpoint.pt",
    )
    sep = load_flow(d)
    assert set(sep.dtypes.values()) == {"bfloat16"}
    out = tmp_path / "out"
    sa.save(sep, out)
    for name in ("checkpoint.pt", "model.safetensors"):
        again, _ = read_state_dict(out / name)
        assert_same_state(state, again)


def test_config_comes_from_config_json_and_outputs_follow_the_weights(release):
    m, state, d = release
    sep = load_flow(d)
    model, config = sep.model, sep.config
    for field in ("dim", "num_layers", "num_heads", "latent_dim", "text_dim", "video_dim"):
        assert config.model[field] == m[field], field
    scanned = load_flow(d, small_model_config(scan_layers=True)).model
    assert np.array_equal(
        np.asarray(model.transformer.layers[1].attention.wq[...]),
        np.asarray(scanned.transformer.layers.attention.wq[...][1]),
    )
    wq = state["transformer.layers.1.attention.wq.weight"]  # [hd*H, D], channel c -> head c % H
    hd, h = m.dim // m.num_heads, m.num_heads
    ours = np.asarray(model.transformer.layers[1].attention.wq[...])  # [D, hd, H]
    np.testing.assert_array_equal(ours[:, 2, 3], wq[2 * h + 3])
    assert ours.shape == (m.dim, hd, h)


def test_other_parts_are_carried_unchanged(release):
    _, _, d = release
    sep = load_flow(d)
    assert set(sep.carried) == set(CARRIED)
    np.testing.assert_array_equal(
        sep.carried["span_predictor.proj.weight"], CARRIED["span_predictor.proj.weight"]
    )


def test_missing_key_is_an_error_naming_it(release, tmp_path):
    m, state, _ = release
    broken = {k: v for k, v in state.items() if k != "transformer.layers.1.ffn_norm.weight"}
    d = write_release_dir(tmp_path, m, broken)
    with pytest.raises(KeyError, match="transformer.layers.1.ffn_norm.weight"):
        load_flow(d)


def test_unknown_key_is_an_error_naming_it(release, tmp_path):
    m, state, _ = release
    d = write_release_dir(tmp_path, m, state, extra={"transformer.extra.weight": np.zeros(2)})
    with pytest.raises(KeyError, match="transformer.extra.weight"):
        load_flow(d)


def test_shape_mismatch_is_an_error_naming_the_key(release, tmp_path):
    m, state, _ = release
    bad = dict(state, **{"memory_proj.weight": np.zeros((m.dim, m.text_dim + 1), np.float32)})
    d = write_release_dir(tmp_path, m, bad)
    with pytest.raises(ValueError, match=r"memory_proj\.weight.*shape"):
        load_flow(d)


def test_requested_config_disagreeing_with_config_json_names_the_field(release):
    _, _, d = release
    with pytest.raises(ValueError, match="model.num_heads"):
        load_flow(d, small_model_config(num_heads=8))


def test_unsupported_release_setting_names_the_field(release, tmp_path):
    m, state, _ = release
    d = write_release_dir(
        tmp_path, m, state, config_overrides={"transformer": {"non_linearity": "gelu"}}
    )
    with pytest.raises(ValueError, match="transformer.non_linearity"):
        load_flow(d)


def test_numerics_fields_come_from_the_requested_config(release):
    _, state, d = release
    sep = load_flow(d, small_model_config(param_dtype="bfloat16"))
    assert sep.config.model.param_dtype == "bfloat16"
    wq = sep.model.transformer.layers[0].attention.wq[...]
    assert wq.dtype == jnp.bfloat16

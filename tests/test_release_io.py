"""Release checkpoint I/O: exact round trips, both file formats, scanned layers, named errors,
parts of the file owned by other packages reported (or handed to their importers)."""

from __future__ import annotations

import json
import logging

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

from samaudio_jax.checkpoint import (
    ReleasePart,
    load_release,
    read_state_dict,
    register_part,
    registered_parts,
    release_io,
    save_release,
)
from tests.release_fixtures import random_release_state_dict, small_model_config, write_release_dir


def load_flow(path, config=None, **kwargs):
    """The flow network (and a codec importer when one is registered); vision is skipped."""
    return load_release(path, config, parts=("audio_codec",), **kwargs)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    m = small_model_config()
    state = random_release_state_dict(m, seed=2)
    codec = {"audio_codec.encoder.block.0.weight_v": np.ones((4, 1, 7), np.float32)}
    vision = {"vision_encoder.model.proj": np.ones((3, 3), np.float32)}
    d = write_release_dir(tmp_path_factory.mktemp("rel"), m, state, extra={**codec, **vision})
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
    model, config, report = load_flow(d, small_model_config(scan_layers=scan_layers))
    assert sorted(report.loaded) == sorted(state)
    written = save_release(model, config, tmp_path, formats=(fmt,))
    again, _ = read_state_dict(written[-1])
    assert_same_state(state, again)
    exported_config = json.loads((tmp_path / "config.json").read_text())
    assert exported_config["transformer"]["dim"] == m.dim
    assert exported_config["transformer"]["n_layers"] == m.num_layers


def test_bfloat16_file_round_trips_with_its_own_dtypes(tmp_path):
    m = small_model_config()
    state = {k: v.astype(ml_dtypes.bfloat16) for k, v in random_release_state_dict(m, 3).items()}
    d = tmp_path / "bf16"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(release_io.release_config_from_model(m)))
    torch.save(
        {k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16) for k, v in state.items()},
        d / "checkpoint.pt",
    )
    model, config, report = load_flow(d)
    assert set(report.dtypes.values()) == {"bfloat16"}
    out = tmp_path / "out"
    save_release(model, config, out, formats=("pt", "safetensors"), dtypes=report.dtypes)
    for name in ("checkpoint.pt", "model.safetensors"):
        again, _ = read_state_dict(out / name)
        assert_same_state(state, again)


def test_config_comes_from_config_json_and_outputs_follow_the_weights(release):
    m, state, d = release
    model, config, _ = load_flow(d)
    for field in ("dim", "num_layers", "num_heads", "latent_dim", "text_dim", "video_dim"):
        assert config.model[field] == m[field], field
    scanned, _, _ = load_flow(d, small_model_config(scan_layers=True))
    assert np.array_equal(
        np.asarray(model.transformer.layers[1].attention.wq[...]),
        np.asarray(scanned.transformer.layers.attention.wq[...][1]),
    )
    wq = state["transformer.layers.1.attention.wq.weight"]  # [hd*H, D], channel c -> head c % H
    hd, h = m.dim // m.num_heads, m.num_heads
    ours = np.asarray(model.transformer.layers[1].attention.wq[...])  # [D, hd, H]
    np.testing.assert_array_equal(ours[:, 2, 3], wq[2 * h + 3])
    assert ours.shape == (m.dim, hd, h)


def test_other_parts_are_reported_as_skipped(release, caplog):
    _, _, d = release
    with caplog.at_level(logging.INFO, logger="samaudio_jax.checkpoint.release_io"):
        _, _, report = load_flow(d)
    assert report.skipped == {
        "audio_codec": ["audio_codec.encoder.block.0.weight_v"],
        "vision_encoder": ["vision_encoder.model.proj"],
    }
    assert "audio_codec." in caplog.text


def test_a_registered_importer_receives_its_keys_and_exports_them_back(release, tmp_path):
    _, state, d = release
    saved = registered_parts()["audio_codec"]
    try:
        register_part(
            ReleasePart(
                "audio_codec",
                "audio_codec.",
                load=lambda sub, cfg: {"arrays": sub, "rate": cfg["audio_codec"]["sample_rate"]},
                export=lambda obj: obj["arrays"],
            )
        )
        model, config, report = load_flow(d)
        codec = report.parts["audio_codec"]
        assert codec["rate"] == 48000 and list(codec["arrays"]) == ["encoder.block.0.weight_v"]
        assert "audio_codec" not in report.skipped
        written = save_release(model, config, tmp_path, parts={"audio_codec": codec})
        again, _ = read_state_dict(written[-1])
        assert set(again) == set(state) | {"audio_codec.encoder.block.0.weight_v"}
    finally:
        register_part(saved)
    with pytest.raises(ValueError, match="overlaps"):
        register_part(ReleasePart("codec2", "audio_codec.enc"))


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
    model, config, _ = load_flow(d, small_model_config(param_dtype="bfloat16"))
    assert config.param_dtype == "bfloat16"  # a config.model in, a config.model out
    wq = model.transformer.layers[0].attention.wq[...]
    assert wq.dtype == jnp.bfloat16

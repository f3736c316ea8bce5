"""Export to the release layout and import back: every tensor exact, outputs identical;
the flow keys load strictly into a PyTorch copy of the release network with the same
outputs; bad inputs give errors naming the file or key."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from bench.torch_dit import TorchSAMAudioFlow
from samaudio_jax.checkpoint.bundle import flat_params
from samaudio_jax.checkpoint.release_dir import LATENT_SCALE_KEY, is_release_architecture
from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.demo import outputs_identical
from samaudio_jax.sample.loading import build_separator, load, save
from samaudio_jax.state_dict_io import read_state_dict, write_state_dict


def export_separator(separator, out):
    return save(separator, out)


def import_separator(directory, aux_dir=None):
    return load(directory)


def tiny_demo_config(head="gated_mix", text_to_adaln=True):
    c = load_config("configs/demo.py", [])
    m = c.model
    m.dim, m.num_layers, m.num_heads = 32, 2, 4
    m.latent_dim, m.out_channels, m.in_channels = 16, 32, 96
    m.text_dim, m.video_dim, m.anchor_embedding_dim, m.frequency_embedding_dim = 16, 8, 8, 16
    m.head, m.text_to_adaln = head, text_to_adaln
    c.codec.hop_length = c.codec.latent_dim = 16
    c.text.small.dim = 16
    return c


def perturbed_separator(config, tmp_path):
    """A separator whose every parameter (and the frames codec's scale) is non-trivial."""
    from samaudio_jax.codec import frames

    rng = np.random.default_rng(3)
    scale_path = tmp_path / "scale.npy"
    frames.save_latent_scale(str(scale_path), rng.uniform(0.5, 2.0, 16).astype(np.float32))
    config.codec.latent_scale = str(scale_path)
    sep = build_separator(config, seed=1)
    for module in (sep.model, sep.text_encoder):
        for _, var in nnx.to_flat_state(nnx.state(module, nnx.Param)):
            value = np.asarray(var.get_value())
            var.set_value(jnp.asarray(value + 0.1 * rng.normal(size=value.shape), value.dtype))
    return sep


def test_export_then_import_reproduces_every_tensor_and_output_exactly(tmp_path):
    sep = perturbed_separator(tiny_demo_config(), tmp_path)
    written = export_separator(sep, tmp_path / "export")
    assert {p.split("/")[-1] for p in written} == {
        "config.json",
        "checkpoint.pt",
        "model.safetensors",
    }
    meta = json.loads((tmp_path / "export" / "config.json").read_text())
    assert meta["samaudio_jax"]["release_architecture"] is False
    assert meta["transformer"]["dim"] == 32
    again = import_separator(tmp_path / "export", tmp_path / "aux")
    for a, b in ((sep.model, again.model), (sep.text_encoder, again.text_encoder)):
        fa, fb = flat_params(a), flat_params(b)
        assert fa.keys() == fb.keys()
        for k in fa:
            np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    np.testing.assert_array_equal(
        np.asarray(sep.codec.scale[...]), np.asarray(again.codec.scale[...])
    )
    assert again.config.model.to_dict() == sep.config.model.to_dict()
    assert outputs_identical(sep, again) == 0.0
    # the .pt and .safetensors files hold the same tensors
    pt, _ = read_state_dict(tmp_path / "export" / "checkpoint.pt")
    st, _ = read_state_dict(tmp_path / "export" / "model.safetensors")
    assert pt.keys() == st.keys() and LATENT_SCALE_KEY in pt
    assert any(k.startswith("text_encoder.") for k in pt)
    for k in pt:
        np.testing.assert_array_equal(pt[k], st[k], err_msg=k)


def test_release_architecture_flow_loads_strictly_into_torch_with_same_outputs(tmp_path):
    config = tiny_demo_config(head="linear", text_to_adaln=False)
    config.model.prediction = "velocity"
    sep = perturbed_separator(config, tmp_path)
    export_separator(sep, tmp_path / "export")
    state = torch.load(tmp_path / "export" / "checkpoint.pt", map_location="cpu", weights_only=True)
    flow = {k: v for k, v in state.items() if not k.startswith(("text_encoder.", "audio_codec."))}
    net = TorchSAMAudioFlow.from_config(config.model).eval()
    net.load_state_dict(flow, strict=True)  # the release's key names, nothing missing
    rng = np.random.default_rng(0)
    b, t, s, c = 2, 12, 5, 2 * config.model.latent_dim
    noisy = rng.normal(size=(b, t, c)).astype(np.float32)
    feats = rng.normal(size=(b, t, c)).astype(np.float32)
    text = rng.normal(size=(b, s, config.model.text_dim)).astype(np.float32)
    mask = np.arange(s)[None] < np.array([[s], [3]])
    time = np.array([0.2, 0.7], np.float32)
    ours = np.asarray(sep.model(noisy, feats, text, mask, time))
    with torch.no_grad():
        theirs = net(
            torch.from_numpy(noisy),
            torch.from_numpy(feats),
            torch.from_numpy(time),
            torch.from_numpy(text),
            torch.from_numpy(mask),
        ).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_release_architecture_flag_is_true_only_for_release_parts():
    c = tiny_demo_config(head="linear", text_to_adaln=False)
    assert not is_release_architecture(c)  # frames codec + small text encoder
    c.codec.kind, c.text.kind = "dacvae", "t5"
    assert is_release_architecture(c)
    c.model.mixture_magnitude = True  # a wider input projection than the release's
    assert not is_release_architecture(c)
    c.model.mixture_magnitude = False
    c.model.head = "gated_mix"
    assert not is_release_architecture(c)


def test_import_without_config_json_names_the_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="neither a training workdir"):
        import_separator(tmp_path / "d", tmp_path / "aux")


def test_import_with_shapes_disagreeing_with_config_names_field_or_key(tmp_path):
    sep = perturbed_separator(tiny_demo_config(), tmp_path)
    out = tmp_path / "export"
    export_separator(sep, out)
    meta = json.loads((out / "config.json").read_text())
    meta["transformer"]["n_layers"] = 3
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model\.num_layers.*config\.json"):
        import_separator(out, tmp_path / "aux")
    # config consistent, one tensor of the wrong shape: the key is named
    meta["transformer"]["n_layers"] = 2
    (out / "config.json").write_text(json.dumps(meta))
    state, _ = read_state_dict(out / "model.safetensors")
    state["proj.weight"] = np.zeros((3, 3), np.float32)
    (out / "checkpoint.pt").unlink()
    write_state_dict(state, out / "model.safetensors")
    with pytest.raises(ValueError, match="proj.weight"):
        import_separator(out, tmp_path / "aux")


def test_export_of_workdir_without_checkpoint_names_the_workdir(tmp_path):
    from samaudio_jax.checkpoint.workdir import read_workdir

    with pytest.raises(ValueError, match="no training checkpoint"):
        read_workdir(tmp_path / "empty")


def test_outputs_identical_detects_a_changed_weight(tmp_path):
    sep = perturbed_separator(tiny_demo_config(), tmp_path)
    export_separator(sep, tmp_path / "export")
    again = import_separator(tmp_path / "export", tmp_path / "aux")
    var = next(iter(nnx.to_flat_state(nnx.state(again.model, nnx.Param))))[1]
    var.set_value(var.get_value() + 1e-3)
    assert outputs_identical(sep, again) > 0.0

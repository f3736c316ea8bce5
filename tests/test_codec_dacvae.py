"""DACVAE in NNX: parity with transformers' DAC modules and a torch reference of the
watermark branch, checkpoint key round trip, padded batches, bf16."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from transformers import DacConfig
from transformers.models.dac.modeling_dac import DacDecoder, DacEncoder

from samaudio_jax.codec import build_codec
from samaudio_jax.codec.base import jit_method
from samaudio_jax.codec.dacvae import DacVaeCodec
from samaudio_jax.codec.dacvae_layers import conv_transpose1d
from samaudio_jax.codec.factory import export_codec_state, import_codec_state
from samaudio_jax.config_schema import default_config
from tests import dacvae_torch_reference as ref

TOL = 1e-4
SMALL = dict(enc_dim=4, enc_rates=(2, 4), hidden=16, latent=8, dec_dim=48, dec_rates=(4, 2))
WM = dict(wm_rates=(2, 2), d=8, nbits=16)
HOP = 8


def _codec(**kw):
    return DacVaeCodec(
        encoder_dim=SMALL["enc_dim"],
        encoder_rates=SMALL["enc_rates"],
        encoder_hidden_dim=SMALL["hidden"],
        latent_dim=SMALL["latent"],
        decoder_dim=SMALL["dec_dim"],
        decoder_rates=SMALL["dec_rates"],
        wm_rates=WM["wm_rates"],
        wm_msg_dim=WM["d"],
        wm_nbits=WM["nbits"],
        **kw,
    )


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.fixture(scope="module")
def release():
    """A perturbed torch reference (release key names) and the NNX codec loaded from it."""
    torch.manual_seed(0)
    model = ref.Release(**SMALL, **WM)
    ref.perturb_(model, seed=1)
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    codec = _codec(watermark=True)
    import_codec_state(codec, state)
    return model, codec, state


def _fold(sd, prefix):
    g = sd[prefix + ".weight_g"].double()
    v = sd[prefix + ".weight_v"].double()
    return (g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)).float()


def _hf_encoder_state(sd):
    """Release names -> transformers DacEncoder names, weight norm folded here."""
    out = {}
    n = len(SMALL["enc_rates"])

    def conv(dst, src):
        out[dst + ".weight"] = _fold(sd, src)
        out[dst + ".bias"] = sd[src + ".bias"]

    conv("conv1", "model.encoder.block.0")
    for i in range(n):
        p = f"model.encoder.block.{i + 1}.block"
        for j in range(3):
            u = f"block.{i}.res_unit{j + 1}"
            out[u + ".snake1.alpha"] = sd[f"{p}.{j}.block.0.alpha"]
            conv(u + ".conv1", f"{p}.{j}.block.1")
            out[u + ".snake2.alpha"] = sd[f"{p}.{j}.block.2.alpha"]
            conv(u + ".conv2", f"{p}.{j}.block.3")
        out[f"block.{i}.snake1.alpha"] = sd[f"{p}.3.alpha"]
        conv(f"block.{i}.conv1", f"{p}.4")
    out["snake1.alpha"] = sd[f"model.encoder.block.{n + 1}.alpha"]
    conv("conv2", f"model.encoder.block.{n + 2}")
    return out


def _hf_decoder_state(sd):
    out = {}

    def conv(dst, src):
        out[dst + ".weight"] = _fold(sd, src)
        out[dst + ".bias"] = sd[src + ".bias"]

    conv("conv1", "model.decoder.model.0")
    for i in range(len(SMALL["dec_rates"])):
        p = f"model.decoder.model.{i + 1}.block"
        out[f"block.{i}.snake1.alpha"] = sd[f"{p}.0.alpha"]
        conv(f"block.{i}.conv_t1", f"{p}.1")
        for j, idx in enumerate((4, 5, 8)):
            u = f"block.{i}.res_unit{j + 1}"
            out[u + ".snake1.alpha"] = sd[f"{p}.{idx}.block.0.alpha"]
            conv(u + ".conv1", f"{p}.{idx}.block.1")
            out[u + ".snake2.alpha"] = sd[f"{p}.{idx}.block.2.alpha"]
            conv(u + ".conv2", f"{p}.{idx}.block.3")
    out["snake1.alpha"] = sd["model.decoder.wm_model.encoder_block.pre.0.alpha"]
    conv("conv2", "model.decoder.wm_model.encoder_block.pre.1")
    return out


def _hf_config():
    cfg = DacConfig(
        encoder_hidden_size=SMALL["enc_dim"],
        downsampling_ratios=list(SMALL["enc_rates"]),
        decoder_hidden_size=SMALL["dec_dim"],
        codebook_dim=SMALL["latent"],
    )
    cfg.upsampling_ratios = list(SMALL["dec_rates"])
    assert cfg.hidden_size == SMALL["hidden"]
    return cfg


@pytest.mark.parametrize("n", [64, 61])
def test_encode_matches_transformers_dac_encoder_plus_in_proj_mean(release, n):
    model, codec, sd = release
    enc = DacEncoder(_hf_config()).eval()
    enc.load_state_dict(_hf_encoder_state(sd), strict=True)
    wav = torch.randn(2, n, generator=torch.Generator().manual_seed(n)) * 0.5
    x = F.pad(wav[:, None], (0, (-n) % HOP), mode="reflect")
    with torch.no_grad():
        h = enc(x)
        want = F.conv1d(h, _fold(sd, "model.quantizer.in_proj"), sd["model.quantizer.in_proj.bias"])
    want = want[:, : SMALL["latent"]].permute(0, 2, 1).numpy()
    got = jit_method(codec, "encode")(jnp.asarray(wav.numpy()))
    assert got.shape == (2, math.ceil(n / HOP), SMALL["latent"]) == want.shape
    assert _rel_err(got, want) <= TOL
    # The torch reference built from the release's key names agrees too.
    with torch.no_grad():
        want_ref = model.model.encode(wav).permute(0, 2, 1).numpy()
    assert _rel_err(got, want_ref) <= TOL


def test_decoder_main_path_matches_transformers_dac_decoder(release):
    frames = 7
    _, codec, sd = release
    dec = DacDecoder(_hf_config()).eval()
    dec.load_state_dict(_hf_decoder_state(sd), strict=True)
    lat = torch.randn(2, SMALL["latent"], frames, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        emb = F.conv1d(
            lat, _fold(sd, "model.quantizer.out_proj"), sd["model.quantizer.out_proj.bias"]
        )
        want = dec(emb)[:, 0].numpy()
    codec.watermark = False
    try:
        got = jit_method(codec, "decode")(jnp.asarray(lat.permute(0, 2, 1).numpy()))
    finally:
        codec.watermark = True
    assert got.shape == (2, frames * HOP) == want.shape
    assert _rel_err(got, want) <= TOL


def test_watermarked_decode_matches_torch_reference_and_is_deterministic(release):
    model, codec, _ = release
    gen = torch.Generator().manual_seed(3)
    lat = torch.randn(2, SMALL["latent"], 6, generator=gen)
    msg = torch.randint(0, 2, (2, WM["nbits"]), generator=gen)
    with torch.no_grad():
        want = model.model.decode(lat, msg).numpy()
        plain = model.model.decode(lat).numpy()
    decode = jit_method(codec, "decode")
    lat_j = jnp.asarray(lat.permute(0, 2, 1).numpy())
    got = decode(lat_j, message=jnp.asarray(msg.numpy()))
    assert _rel_err(got, want) <= TOL
    # The branch matters (the check above is not just the main path) ...
    assert np.abs(want - plain).max() > 100 * TOL * np.abs(want).max()
    # ... and the same message gives the same waveform; another message another one.
    np.testing.assert_array_equal(got, decode(lat_j, message=jnp.asarray(msg.numpy())))
    other = decode(lat_j, message=jnp.asarray(1 - msg.numpy()))
    assert np.abs(np.asarray(other) - np.asarray(got)).max() > 10 * TOL


def test_import_then_export_is_bit_exact_with_the_release_key_set(release):
    _, codec, state = release
    out = export_codec_state(codec)
    assert set(out) == set(state)
    for k, v in state.items():
        a = v.numpy()
        assert out[k].dtype == a.dtype and out[k].shape == a.shape, k
        assert np.array_equal(out[k].view(np.uint32), a.view(np.uint32)), k
    # Numpy input and keys without the wrapper's `model.` import the same way.
    other = _codec()
    import_codec_state(other, {k[len("model.") :]: v.numpy() for k, v in state.items()})
    again = export_codec_state(other)
    assert all(np.array_equal(again[k], out[k]) for k in out)


def test_release_config_has_317_codec_keys_and_the_published_parameter_counts():
    full = nnx.eval_shape(lambda: DacVaeCodec(seed=None))
    from samaudio_jax.keymaps.codec import codec_rules

    rules = codec_rules(full)
    assert len({r.release for r in rules}) == len(rules) == 317
    variables = {".".join(map(str, p)): v for p, v in nnx.to_flat_state(nnx.state(full))}
    pairs = [(r.release, variables[r.ours]) for r in rules]

    def count(m):
        return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(m)))

    assert round(count(full.encoder) / 1e6, 1) == 27.3
    assert round(count(full.decoder) / 1e6, 1) == 80.0
    total = sum(int(np.prod(v.shape)) for _, v in pairs)
    assert round(total / 1e6, 1) == 107.7


def test_import_rejects_missing_unexpected_and_misshapen_keys(release):
    _, _, state = release
    codec = _codec()
    bad = dict(state)
    bad.pop("model.encoder.block.0.bias")
    bad["model.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="1 missing.*block.0.bias.*1 unexpected.*model.extra"):
        import_codec_state(codec, bad)
    bad = dict(state)
    bad["model.quantizer.in_proj.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match="audio_codec.model.quantizer.in_proj.bias: shape"):
        import_codec_state(codec, bad)


def test_padded_batch_encodes_and_decodes_like_each_example_alone(release):
    model, codec, _ = release
    codec.watermark = False
    try:
        rng = np.random.default_rng(5)
        lengths = [61, 30, 17]
        wav = np.zeros((3, 61), np.float32)
        for b, n in enumerate(lengths):
            wav[b, :n] = rng.standard_normal(n)
        batch = np.asarray(
            jit_method(codec, "encode")(jnp.asarray(wav), num_samples=jnp.array(lengths))
        )
        frames = [math.ceil(n / HOP) for n in lengths]
        out = np.asarray(
            jit_method(codec, "decode")(jnp.asarray(batch), num_frames=jnp.array(frames))
        )
    finally:
        codec.watermark = True
    for b, (n, t) in enumerate(zip(lengths, frames)):
        # Each example alone, through the torch reference (checked equal to the port above).
        with torch.no_grad():
            alone = model.model.encode(torch.from_numpy(wav[b : b + 1, :n]))
            dec_alone = model.model.decode(torch.from_numpy(batch[b, :t].T[None].copy()))
        assert _rel_err(batch[b, :t], alone[0].T.numpy()) <= TOL
        assert np.all(batch[b, t:] == 0)
        assert _rel_err(out[b, : t * HOP], dec_alone[0].numpy()) <= TOL
        assert np.all(out[b, t * HOP :] == 0)


@pytest.mark.parametrize("stride", [3, 4])
def test_transposed_conv_matches_torch_with_release_padding(stride):
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((2, 5, 6)).astype(np.float32)
    w = rng.standard_normal((6, 4, 2 * stride)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    p, op = math.ceil(stride / 2), stride % 2
    got = conv_transpose1d(jnp.asarray(x), w, b, stride=stride, padding=p, output_padding=op)
    tx = torch.from_numpy(x).permute(0, 2, 1)
    want = F.conv_transpose1d(tx, torch.from_numpy(w), torch.from_numpy(b), stride, p, op)
    assert got.shape == (2, 5 * stride, 4)
    assert _rel_err(got, want.permute(0, 2, 1).numpy()) <= TOL


def test_bfloat16_codec_stays_close_to_float32(release):
    _, codec, state = release
    half = _codec(dtype="bfloat16")
    import_codec_state(half, state)
    wav = jnp.asarray(np.random.default_rng(6).standard_normal((1, 64)).astype(np.float32))
    z32, z16 = jit_method(codec, "encode")(wav), jit_method(half, "encode")(wav)
    assert z16.dtype == jnp.float32
    assert _rel_err(z16, z32) < 5e-2


def test_factory_builds_dacvae_and_rejects_a_hop_that_does_not_match_the_strides():
    cfg = default_config().codec
    cfg.sample_rate, cfg.encoder_dim, cfg.encoder_rates = 8000, 4, (2, 4)
    cfg.encoder_hidden_dim, cfg.latent_dim = 16, 8
    cfg.decoder_dim, cfg.decoder_rates, cfg.wm_rates = 48, (4, 2), (2, 2)
    cfg.hop_length = 8
    codec = build_codec(cfg)
    assert (codec.hop_length, codec.latent_dim, codec.num_frames(17)) == (8, 8, 3)
    cfg.hop_length = 16
    with pytest.raises(ValueError, match="codec.hop_length"):
        build_codec(cfg)

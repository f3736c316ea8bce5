"""The analytic DCT frame codec: exact inversion, scaling, the factory and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from samaudio_jax.codec import build_codec, check_latents, check_waveform, frame_mask
from samaudio_jax.codec import frames as fr
from samaudio_jax.config_schema import default_config


def _snr_db(ref, est):
    return 10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2))


@pytest.mark.parametrize("hop,n", [(128, 128 * 64), (128, 1000), (16, 17), (7, 3)])
def test_decode_of_encode_reconstructs_above_80_db(hop, n):
    rng = np.random.default_rng(hop + n)
    wav = rng.standard_normal((3, n)).astype(np.float32) * np.array([[1.0], [1e-3], [30.0]])
    codec = fr.FrameDCTCodec(8000, hop, latent_scale=rng.uniform(0.01, 5.0, hop))
    lat = jax.jit(codec.encode)(jnp.asarray(wav))
    assert lat.shape == (3, codec.num_frames(n), hop) == (3, -(-n // hop), hop)
    out = np.asarray(jax.jit(codec.decode)(lat))
    assert out.shape == (3, lat.shape[1] * hop)
    for b in range(3):
        assert _snr_db(wav[b], out[b, :n]) >= 80.0


def test_latents_are_orthonormal_dct_ii_of_zero_padded_frames_over_scale():
    rng = np.random.default_rng(0)
    wav = rng.standard_normal((2, 50)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, 16).astype(np.float32)
    lat = np.asarray(fr.FrameDCTCodec(8000, 16, scale).encode(jnp.asarray(wav)))
    padded = np.pad(wav, ((0, 0), (0, 64 - 50))).reshape(2, 4, 16).astype(np.float64)
    want = scipy.fft.dct(padded, type=2, norm="ortho", axis=-1) / scale
    np.testing.assert_allclose(lat, want, rtol=1e-5, atol=1e-5)


def test_measured_scale_gives_unit_rms_per_bin_and_round_trips_through_npy(tmp_path):
    rng = np.random.default_rng(1)
    # Coloured noise: strong low bins, weak high bins.
    wavs = [np.cumsum(rng.standard_normal((2, 640)), axis=-1).astype(np.float32) for _ in range(3)]
    scale = fr.measure_latent_scale(wavs, 32)
    assert scale.shape == (32,) and scale[0] > 10 * scale[-1]
    path = tmp_path / "sub" / "scale.npy"
    fr.save_latent_scale(str(path), scale)
    np.testing.assert_array_equal(fr.load_latent_scale(str(path), 32), scale)
    cfg = default_config().codec
    cfg.kind, cfg.sample_rate, cfg.hop_length, cfg.latent_dim = "frames", 8000, 32, 32
    cfg.latent_scale = str(path)
    codec = build_codec(cfg)
    lat = np.concatenate([np.asarray(codec.encode(jnp.asarray(w))).reshape(-1, 32) for w in wavs])
    np.testing.assert_allclose(np.sqrt((lat**2).mean(0)), 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match="latent_scale"):
        fr.load_latent_scale(str(path), 16)


def test_factory_rejects_latent_dim_other_than_hop_and_unknown_kind():
    cfg = default_config().codec
    cfg.kind, cfg.hop_length, cfg.latent_dim = "frames", 16, 8
    with pytest.raises(ValueError, match="codec.latent_dim"):
        build_codec(cfg)
    cfg.kind = "mp3"
    with pytest.raises(ValueError, match="codec.kind"):
        build_codec(cfg)


def test_bad_waveforms_raise_errors_naming_the_argument():
    with pytest.raises(ValueError, match="mixture: empty audio"):
        check_waveform(np.zeros((1, 0)), "mixture")
    with pytest.raises(ValueError, match="wav: empty audio"):
        check_waveform(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="wav: expected shape \\(batch, samples\\).*rank 1"):
        check_waveform(np.zeros(5))
    with pytest.raises(ValueError, match="rank 3"):
        check_waveform(np.zeros((1, 2, 5)))
    bad = np.zeros((2, 5), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="wav: 1 non-finite samples.*example 1, sample 3"):
        check_waveform(bad)
    with pytest.raises(ValueError, match="latents: expected shape \\(batch, frames, 16\\)"):
        check_latents(np.zeros((1, 3, 8)), 16)
    assert check_waveform(np.ones((1, 3), np.int16)).dtype == np.float32


def test_frame_mask_marks_frames_holding_any_valid_sample():
    m = np.asarray(frame_mask(jnp.array([0, 1, 16, 17]), 3, 16))
    assert m.tolist() == [
        [False, False, False],
        [True, False, False],
        [True, False, False],
        [True, True, False],
    ]


def test_padded_batch_masks_samples_and_frames_past_each_length():
    rng = np.random.default_rng(3)
    wav = rng.standard_normal((2, 40)).astype(np.float32)
    codec = fr.FrameDCTCodec(8000, 16)
    lat = np.asarray(codec.encode(jnp.asarray(wav), num_samples=jnp.array([40, 20])))
    alone = np.asarray(codec.encode(jnp.asarray(wav[1:, :20])))
    np.testing.assert_allclose(lat[1, :2], alone[0], atol=1e-6)
    assert np.all(lat[1, 2:] == 0)
    out = np.asarray(codec.decode(jnp.asarray(lat), num_frames=jnp.array([3, 1])))
    assert np.all(out[1, 16:] == 0) and _snr_db(wav[0], out[0, :40]) >= 80.0

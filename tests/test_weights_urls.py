"""Weights and configs read from a bucket (gs:// on the test GCS server): a T5 directory
(`text.t5_dir`), a release directory (samaudio_jax.load), a codec checkpoint (`codec.checkpoint`),
a vision checkpoint and a latent scale load through the URL exactly as their local copies do,
and a missing file is a one-line error naming the URL."""

import io
import json

import jax
import ml_dtypes
import numpy as np
import pytest
import torch
from flax import nnx
from train_testlib import subprocess_env, train_cli

import samaudio_jax as sa
from samaudio_jax.codec import build_codec
from samaudio_jax.codec.factory import export_codec_state, load_codec_checkpoint
from samaudio_jax.codec.frames import load_latent_scale, save_latent_scale
from samaudio_jax.config_schema import default_config
from samaudio_jax.paths import as_path
from samaudio_jax.text import build_text_encoder
from samaudio_jax.text.t5_import import load_t5_network, load_t5_text_encoder
from samaudio_jax.text.tokenizer import T5Tokenizer
from samaudio_jax.vision.factory import load_vision_tower
from tests import dacvae_torch_reference as ref
from tests.release_fixtures import random_release_state_dict, small_model_config, write_release_dir
from tests.test_codec_dacvae import SMALL, WM
from tests.test_text_t5 import PROMPTS, _t5_dir, _tiny_torch_t5
from tests.vision_reference import SMALL_PE, random_visual_state


def _upload(local, url: str) -> str:
    """Copies the files of the local directory `local` (not recursive) to `url`/."""
    for f in sorted(local.iterdir()):
        if f.is_file():
            (as_path(url) / f.name).write_bytes(f.read_bytes())
    return url


def _leaves(module):
    """Every array of the module (parameters, frozen weights, buffers) but PRNG keys."""
    leaves = jax.tree_util.tree_leaves(nnx.to_pure_dict(nnx.state(module)))
    return [
        np.asarray(x) for x in leaves if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    ]


def _assert_same_params(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb) > 0
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_t5_directory_in_a_bucket_encodes_like_its_local_copy(gcs_server, gcs_bucket, tmp_path):
    _t5_dir(tmp_path)
    url = _upload(tmp_path, f"{gcs_bucket}/t5")
    cfg = default_config().text
    cfg.kind, cfg.t5_dir = "t5", url
    remote = build_text_encoder(cfg, rngs=nnx.Rngs(0))
    local = load_t5_text_encoder(str(tmp_path))
    ids, mask = remote.tokenize(PROMPTS)
    local_ids, local_mask = local.tokenize(PROMPTS)
    np.testing.assert_array_equal(ids, local_ids)
    np.testing.assert_array_equal(mask, local_mask)
    feats, fmask = remote.encode(PROMPTS)
    local_feats, local_fmask = local.encode(PROMPTS)
    np.testing.assert_array_equal(np.asarray(fmask), np.asarray(local_fmask))
    np.testing.assert_array_equal(np.asarray(feats), np.asarray(local_feats))
    assert float(np.abs(np.asarray(feats)).max()) > 0


@pytest.mark.parametrize("layout", ["sharded", "bfloat16", "pytorch_bin"])
def test_t5_weight_layouts_in_a_bucket_match_local(gcs_server, gcs_bucket, tmp_path, layout):
    model = _tiny_torch_t5("gated-gelu")
    if layout == "sharded":
        model.save_pretrained(tmp_path, max_shard_size="30KB")
        shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
        index = tmp_path / "model.safetensors.index.json"
        assert len(shards) > 1 and index.is_file()
        # A shard holding only keys the encoder does not use is never read (a full T5's
        # decoder shards): this one is not even a safetensors file.
        raw = json.loads(index.read_text())
        raw["weight_map"]["decoder.block.0.layer.0.SelfAttention.q.weight"] = "decoder.safetensors"
        index.write_text(json.dumps(raw))
        (tmp_path / "decoder.safetensors").write_bytes(b"not read")
    elif layout == "bfloat16":
        model.to(torch.bfloat16).save_pretrained(tmp_path)
    else:
        model.config.to_json_file(str(tmp_path / "config.json"))
        torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    url = _upload(tmp_path, f"{gcs_bucket}/t5-{layout}")
    remote, local = load_t5_network(url), load_t5_network(str(tmp_path))
    _assert_same_params(remote, local)
    if layout == "bfloat16":  # the values really came through bfloat16
        emb = np.asarray(remote.embedding[...])
        assert np.array_equal(emb, emb.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_sentencepiece_tokenizer_in_a_bucket_matches_local(gcs_server, gcs_bucket, tmp_path):
    import sentencepiece as spm

    words = "a the dog cat barks meows loudly softly rain on roof man speaking car".split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 10
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=40,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (tmp_path / "spiece.model").write_bytes(model.getvalue())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    url = _upload(tmp_path, f"{gcs_bucket}/spm")
    remote = T5Tokenizer.from_directory(url)
    local = T5Tokenizer.from_directory(str(tmp_path))
    prompts = ["a dog barks loudly", "", "rain on the roof", "zebra"]
    r_ids, r_mask = remote(prompts)
    l_ids, l_mask = local(prompts)
    np.testing.assert_array_equal(r_ids, l_ids)
    np.testing.assert_array_equal(r_mask, l_mask)
    assert r_mask[1].sum() == 1 and r_ids.shape[1] > 2


def test_missing_t5_files_in_a_bucket_name_the_url(gcs_server, gcs_bucket, tmp_path):
    model = _tiny_torch_t5()
    url = f"{gcs_bucket}/t5-partial"
    with pytest.raises(FileNotFoundError, match="not a directory") as err:
        load_t5_text_encoder(url)
    assert url in str(err.value) and "\n" not in str(err.value)
    model.config.to_json_file(str(tmp_path / "config.json"))
    _upload(tmp_path, url)
    with pytest.raises(FileNotFoundError, match="no T5 weights") as err:
        load_t5_text_encoder(url)
    assert str(err.value).startswith(url) and "\n" not in str(err.value)
    model.save_pretrained(tmp_path / "w")
    _upload(tmp_path / "w", url)
    with pytest.raises(FileNotFoundError, match="no tokenizer") as err:
        load_t5_text_encoder(url)
    assert str(err.value).startswith(url) and "\n" not in str(err.value)
    # An index naming a shard that is not there names the shard's URL.
    index = {"weight_map": {"shared.weight": "model-00001-of-00002.safetensors"}}
    (as_path(url) / "model.safetensors").unlink()
    (as_path(url) / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="missing shard") as err:
        load_t5_network(url)
    assert f"{url}/model-00001-of-00002.safetensors" in str(err.value)


@pytest.fixture
def release_dir(tmp_path):
    """A local release directory holding the flow, audio_codec.* (a small DACVAE) and
    vision_encoder.* (a small PE-Core tower)."""
    torch.manual_seed(0)
    codec_ref = ref.Release(**SMALL, **WM)
    ref.perturb_(codec_ref, seed=1)
    extra = {"audio_codec." + k: v.detach().numpy() for k, v in codec_ref.state_dict().items()}
    vision = random_visual_state(SMALL_PE, seed=1)
    extra.update({"vision_encoder." + k: v for k, v in vision.items()})
    m = small_model_config(video_dim=SMALL_PE.output_dim, latent_dim=SMALL["latent"])
    m.out_channels, m.in_channels = 2 * SMALL["latent"], 6 * SMALL["latent"]
    sizes = {"codec": dict(_small_codec_config("").items())}  # the release cannot say them
    sizes["codec"] = {k: list(v) if isinstance(v, tuple) else v for k, v in sizes["codec"].items()}
    return write_release_dir(
        tmp_path / "release",
        m,
        random_release_state_dict(m),
        extra,
        config_overrides={"samaudio_jax": {"config": sizes}},
    )


def _small_codec_config(checkpoint: str):
    c = default_config().codec
    c.encoder_dim, c.encoder_rates = SMALL["enc_dim"], SMALL["enc_rates"]
    c.encoder_hidden_dim, c.latent_dim = SMALL["hidden"], SMALL["latent"]
    c.decoder_dim, c.decoder_rates = SMALL["dec_dim"], SMALL["dec_rates"]
    c.wm_rates, c.wm_msg_dim = WM["wm_rates"], WM["d"]
    c.hop_length = int(np.prod(SMALL["enc_rates"]))
    c.checkpoint = checkpoint
    return c


def test_release_directory_in_a_bucket_loads_like_its_local_copy(
    gcs_server, gcs_bucket, release_dir
):
    url = _upload(release_dir, f"{gcs_bucket}/release")
    remote, local = sa.load(url), sa.load(release_dir)
    assert remote.source == url and remote.config.codec.checkpoint == url
    assert remote.config.model.to_dict() == local.config.model.to_dict()
    _assert_same_params(remote.model, local.model)
    a, b = export_codec_state(remote.codec), export_codec_state(local.codec)
    assert set(a) == set(b) and len(a) > 0
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # vision.checkpoint and codec.checkpoint naming the bucket directory
    _assert_same_params(load_vision_tower(url), load_vision_tower(release_dir))
    codec_remote = build_codec(_small_codec_config(url))
    codec_local = build_codec(_small_codec_config(str(release_dir)))
    a, b = export_codec_state(codec_remote), export_codec_state(codec_local)
    assert set(a) == set(b) and len(a) > 0
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_missing_release_files_in_a_bucket_name_the_url(gcs_server, gcs_bucket, release_dir):
    url = f"{gcs_bucket}/missing"
    with pytest.raises(ValueError, match="no such directory") as err:
        sa.load(url)  # names the directory, not the bucket root's config.json
    assert str(err.value).endswith(url) and "\n" not in str(err.value)
    weights = as_path(url) / "checkpoint.pt"
    weights.write_bytes((release_dir / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError) as err:
        sa.load(url)
    assert f"{url}/config.json" in str(err.value) and "\n" not in str(err.value)
    (as_path(url) / "config.json").write_bytes((release_dir / "config.json").read_bytes())
    weights.unlink()
    with pytest.raises(ValueError, match="neither checkpoint.pt nor") as err:
        sa.load(url)
    assert url in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="codec.checkpoint") as err:
        build_codec(_small_codec_config(url))
    assert f"{url}: holds neither" in str(err.value)
    codec = build_codec(_small_codec_config(""))
    with pytest.raises(ValueError, match="codec.checkpoint"):
        load_codec_checkpoint(codec, f"{gcs_bucket}/nothing.pt")


def test_latent_scale_in_a_bucket(gcs_server, gcs_bucket):
    scale = np.linspace(0.5, 2.0, 8).astype(np.float32)
    url = f"{gcs_bucket}/aux/latent_scale.npy"
    save_latent_scale(url, scale)
    np.testing.assert_array_equal(load_latent_scale(url, 8), scale)
    with pytest.raises(ValueError, match=f"{gcs_bucket}/aux/none.npy"):
        load_latent_scale(f"{gcs_bucket}/aux/none.npy", 8)


def test_train_with_a_missing_t5_dir_in_a_bucket_is_one_line(gcs_server, gcs_bucket, tmp_path):
    env = subprocess_env()
    env.update(gcs_server.env)
    url = f"{gcs_bucket}/no-t5"
    extra = ["--config.text.kind=t5", f"--config.text.t5_dir={url}"]
    proc = train_cli(tmp_path / "run", extra, env)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0], out[-3000:]

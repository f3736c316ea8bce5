"""Latent shards (encode-shards): stored latents are the codec's encoding of mixtures that
the seeds regenerate, the train step on latent batches gives the waveform path's loss (T5
features from the table included), and datasets that do not fit the config are named."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from train_testlib import REPO, subprocess_env, tiny_config

from samaudio_jax.cli.encode_shards import encode_dataset
from samaudio_jax.codec import build_codec
from samaudio_jax.data import latent_shards
from samaudio_jax.data.latent_shards import LatentDatasetError, LatentShardReader
from samaudio_jax.data.pipeline import MakeExample, PipelineConfig, make_dataset
from samaudio_jax.data.shard_writer import ShardWriter
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.synth import write_synth_corpus
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.train import inputs as inputs_lib
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib

RATE = 8000
CLIP = ["--config.data.segment_seconds=0.25"]  # one whole 0.25 s synth clip = 125 frames


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    write_synth_corpus(
        root, seed=0, train_per_class=2, test_per_class=1, sample_rate=RATE, clip_seconds=0.25
    )
    return root / "train"


@pytest.fixture(scope="module")
def latents(audio, tmp_path_factory):
    out = tmp_path_factory.mktemp("latents") / "lat"
    config = tiny_config(CLIP)
    encode_dataset(config, str(audio), str(out), mixes=3, examples_per_shard=4, progress=False)
    return out


def _regenerate(source, config, index, info):
    mixer = MakeExample(source, PipelineConfig.from_config(config.data))
    audio = source[index]["audio"]
    rng = np.random.default_rng(info["seed"])
    return mixer.mix_at(index, audio, 0, len(audio), rng)


def test_stored_latents_are_the_codec_encoding_of_the_mixes_the_seeds_regenerate(audio, latents):
    config = tiny_config(CLIP)
    source, reader = ShardReader(audio), LatentShardReader(latents)
    codec = build_codec(config.codec)
    assert len(reader) == len(source) == 10 and reader.mixes == 3
    assert reader.index["latent_dtype"] == "float16"
    for i in range(len(reader)):
        record = reader[i]
        assert record["id"] == source.records[i]["id"]
        for k, info in enumerate(record["mixes"]):
            mixture, target, residual, snrs, others = _regenerate(source, config, i, info)
            assert info["others"] == list(others) and len(others) >= 1
            np.testing.assert_allclose(info["snr_db"], snrs)
            # mixture = target + residual in the waveform domain, for every stored mix
            np.testing.assert_allclose(mixture, target + residual, atol=1e-6)
            for s, wave in enumerate((mixture, target, residual)):
                want = np.asarray(codec.encode(wave[None]))[0]
                got = record["latents"][k, s].astype(np.float32)
                scale = np.abs(want).max()
                np.testing.assert_allclose(got, want, rtol=2**-10, atol=scale * 2**-11)
            # and from the stored latents alone: the (linear) codec decodes them to
            # waveforms with mixture = target + residual, to float16's precision
            lat = record["latents"][k].astype(np.float32)
            dec = np.asarray(codec.decode(lat))
            err = np.abs(dec[0] - dec[1] - dec[2]).max()
            assert err <= 2e-3 * np.abs(dec[0]).max(), err


def test_dacvae_batches_of_unequal_clips_store_each_clip_as_encoded_alone(tmp_path):
    """A tiny random DACVAE: waveforms of different lengths share padded batches, yet each
    stored latent equals the codec's encoding of that mixture alone (float32 storage)."""
    overrides = [
        "--config.codec.kind=dacvae",
        "--config.codec.encoder_dim=4",
        "--config.codec.encoder_rates=(2,2,2,2)",
        "--config.codec.encoder_hidden_dim=16",
        "--config.codec.decoder_dim=96",
        "--config.codec.decoder_rates=(2,2,2,2)",
        "--config.codec.wm_rates=(2,2,2,2)",
        "--config.data.min_sources=1",
        "--config.data.max_sources=1",
    ]
    config = tiny_config(overrides)
    rng = np.random.default_rng(1)
    with ShardWriter(tmp_path / "audio", RATE) as w:
        for i, n in enumerate([300, 517]):
            meta = {"id": f"c{i}", "description": f"sound {i}", "category": "sfx"}
            w.add(meta, 0.3 * rng.standard_normal(n).astype(np.float32))
    out = tmp_path / "lat"
    encode_dataset(
        config,
        str(tmp_path / "audio"),
        str(out),
        mixes=1,
        dtype="float32",
        batch_per_device=4,
        progress=False,
    )
    codec = build_codec(config.codec)
    source, reader = ShardReader(tmp_path / "audio"), LatentShardReader(out)
    for i in range(len(reader)):
        record = reader[i]
        assert record["frames"] == -(-source.records[i]["num_samples"] // 16)
        for k, info in enumerate(record["mixes"]):
            mixture, target, residual, _, _ = _regenerate(source, config, i, info)
            for s, wave in enumerate((mixture, target, residual)):
                want = np.asarray(codec.encode(wave[None]))[0]
                np.testing.assert_allclose(record["latents"][k, s], want, rtol=1e-4, atol=1e-5)


def test_pipeline_crops_whole_frames_of_one_stored_mix(latents):
    config = tiny_config()  # 0.032 s segments = 16 frames
    reader = LatentShardReader(latents)
    ds = make_dataset(reader, PipelineConfig.from_config(config.data), batch_size=4, seed=3)
    batch = next(iter(ds))
    assert batch["mixture_latent"].shape == (4, 16, 16)
    assert batch["valid"].shape == (4, 16) and batch["valid"].all()
    for b in range(4):
        stored = reader[int(batch["index"][b])]["latents"][int(batch["mix"][b])]
        crop = batch["mixture_latent"][b]
        # the crop is a run of whole stored frames of that mix
        starts = [o for o in range(stored.shape[1] - 15) if np.array_equal(stored[0, o], crop[0])]
        assert any(np.array_equal(stored[0, o : o + 16], crop) for o in starts)
        assert any(np.array_equal(stored[1, o : o + 16], batch["target_latent"][b]) for o in starts)
    # all mixes: K items per record
    cfg_all = PipelineConfig.from_config(config.data).__class__(
        **{**PipelineConfig.from_config(config.data).__dict__, "latent_mixes": "all"}
    )
    items = make_dataset(reader, cfg_all, batch_size=1, num_epochs=1, shuffle=False)
    seen = [(int(b["index"][0]), int(b["mix"][0])) for b in items]
    assert sorted(seen) == [(i, k) for i in range(len(reader)) for k in range(3)]


def _t5_config(t5_dir, extra=()):
    return tiny_config(
        CLIP
        + [
            "--config.text.kind=t5",
            f"--config.text.t5_dir={t5_dir}",
            "--config.train.cond_dropout=0.5",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    from tests.test_text_t5 import _t5_dir

    root = tmp_path_factory.mktemp("t5")
    _t5_dir(root)
    return root


@pytest.mark.slow  # two train-step compiles (one with T5 inside): ~45 s of CPU
def test_latent_batch_step_loss_equals_waveform_step_loss_with_t5_table(audio, t5_dir, tmp_path):
    config = _t5_config(t5_dir)
    out = tmp_path / "lat"
    encode_dataset(config, str(audio), str(out), mixes=1, dtype="float32", progress=False)
    reader, source = LatentShardReader(out), ShardReader(audio)
    table = reader.text_table()
    assert table is not None and table.row(0)[0] == ""
    mesh = make_mesh(config.mesh, jax.devices()[:1])

    wave_setup = state_lib.build_setup(config, mesh)
    frozen = state_lib.init_frozen(wave_setup)
    # Table features equal T5 run on the same description (float32 table here).
    t5 = wave_setup.factories.text(config, state_lib._text_rngs(config))
    descs = sorted({r["description"] for r in source.records} | {""})
    assert table.num == len(descs)
    for i, d in enumerate(descs):
        got_d, feats = table.row(i)
        want, mask = t5.encode([d])
        assert got_d == d
        np.testing.assert_allclose(feats, np.asarray(want)[0][mask[0]], rtol=1e-5, atol=1e-5)

    rows = [0, 3, 5, 8]
    waves, lats = {k: [] for k in step_lib.WAVE_KEYS}, {k: [] for k in step_lib.LATENT_KEYS}
    feats, masks, texts = [], [], []
    for i in rows:
        record = reader[i]
        mixture, target, residual, _, _ = _regenerate(source, config, i, record["mixes"][0])
        for key, w in zip(step_lib.WAVE_KEYS, (mixture, target, residual), strict=True):
            waves[key].append(w)
        for s, key in enumerate(step_lib.LATENT_KEYS):
            lats[key].append(record["latents"][0, s])
        f, m = table.features(record["text_index"])
        feats.append(f)
        masks.append(m)
        texts.append(record["description"])
    spans = np.zeros((4, 4, 3), np.float32)
    spans[:, 0] = [1.0, 0.1, 0.6]
    ids, mask = wave_setup.tokenize(texts)
    wave_batch = {k: np.stack(v) for k, v in waves.items()}
    wave_batch.update(spans=spans, text_ids=ids, text_mask=mask)
    lat_batch = {k: np.stack(v) for k, v in lats.items()}
    lat_batch.update(spans=spans, text_features=np.stack(feats), text_mask=np.stack(masks))

    lat_setup = state_lib.build_setup(
        config, mesh, inputs_lib.latent_factories(config, state_lib.ModuleFactories())
    )
    lat_setup = inputs_lib.with_text_table(lat_setup, table)
    assert lat_setup.text_graph is None and "codec" in lat_setup.abstract_frozen
    assert not jax.tree.leaves(lat_setup.abstract_frozen["codec"])  # no codec weights
    rng = jax.random.PRNGKey(7)

    def loss(setup, frozen, batch):
        state = state_lib.init_state(setup)
        batch = step_lib.global_batch(setup, batch)
        _, m = jax.jit(step_lib.make_train_step(setup))(state, frozen, batch, rng)
        return float(m["loss"])

    wave_loss = loss(wave_setup, frozen, wave_batch)
    lat_loss = loss(lat_setup, state_lib.init_frozen(lat_setup), lat_batch)
    assert np.isfinite(wave_loss)
    assert abs(lat_loss - wave_loss) <= 1e-5 * abs(wave_loss), (lat_loss, wave_loss)


def _one_line_error(cmd):
    proc = subprocess.run(
        [sys.executable, "-m", *cmd],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_audio_at_another_rate_than_the_config_is_one_line_naming_both(tmp_path):
    write_synth_corpus(
        tmp_path / "a16", seed=0, train_per_class=1, test_per_class=1, sample_rate=16000
    )
    line = _one_line_error(
        [
            "samaudio_jax.cli.encode_shards",
            "--data",
            str(tmp_path / "a16"),
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(REPO / "configs" / "tiny.py"),
        ]
    )
    assert "16000" in line and "8000" in line and "sample_rate" in line, line
    assert not (tmp_path / "out" / "index.json").exists()


def test_latent_dim_or_hop_other_than_the_model_is_named(latents):
    reader = LatentShardReader(latents)
    # (model.latent_dim follows codec.latent_dim; config_checks refuses them apart)
    dacvae = ["--config.codec.kind=dacvae", "--config.codec.encoder_rates=(2,2,2,4)"]
    config = tiny_config([*dacvae, "--config.codec.hop_length=32"])
    with pytest.raises(LatentDatasetError, match=r"hop_length 16 .*codec.hop_length is 32"):
        latent_shards.check_against_config(reader, config)
    config = tiny_config(["--config.codec.latent_dim=8", "--config.codec.hop_length=8"])
    with pytest.raises(LatentDatasetError, match=r"latent_dim 16 .*codec.latent_dim is 8"):
        latent_shards.check_against_config(reader, config)
    config = tiny_config([dacvae[0], "--config.codec.encoder_rates=(2,2,2,2)"])  # same shapes
    with pytest.raises(LatentDatasetError, match=r"kind frames .*codec.kind is dacvae"):
        latent_shards.check_against_config(reader, config)
    # through `train`: one line, naming both values
    line = _one_line_error(
        [
            "samaudio_jax.cli.train",
            "--config",
            str(REPO / "configs" / "tiny.py"),
            "--workdir",
            str(latents.parent / "run"),
            f"--config.data.dir={latents}",
            "--config.codec.hop_length=32",
            "--config.codec.latent_dim=32",
        ]
    )
    assert "latent_dim 16" in line and "codec.latent_dim is 32" in line, line


def test_missing_text_table_is_one_line_naming_both(latents, t5_dir, tmp_path):
    # encoded with the small text encoder: no table, but the config asks for frozen T5
    line = _one_line_error(
        [
            "samaudio_jax.cli.train",
            "--config",
            str(REPO / "configs" / "tiny.py"),
            "--workdir",
            str(tmp_path / "run"),
            f"--config.data.dir={latents}",
            "--config.text.kind=t5",
            f"--config.text.t5_dir={t5_dir}",
        ]
    )
    assert "no text-feature table" in line and "'small'" in line and "'t5'" in line, line


def test_latent_dataset_in_a_bucket_reads_like_its_local_copy(
    gcs_server, gcs_bucket, audio, latents, t5_dir
):
    """encode-shards to gs:// (shards, sidecars, table and index through the same code), and
    the pipeline over it gives the local dataset's batches."""
    config = _t5_config(t5_dir)
    url = f"{gcs_bucket}/lat"
    encode_dataset(config, str(audio), url, mixes=3, examples_per_shard=4, progress=False)
    local_dir = latents.parent / "lat_t5"
    encode_dataset(
        config, str(audio), str(local_dir), mixes=3, examples_per_shard=4, progress=False
    )
    remote, local = LatentShardReader(url), LatentShardReader(local_dir)
    assert remote.index["shards"] == local.index["shards"]
    cfg = PipelineConfig.from_config(tiny_config().data)
    tr, tl = remote.text_table(), local.text_table()
    a = next(iter(make_dataset(remote, cfg, batch_size=4, seed=1, text_table=tr)))
    b = next(iter(make_dataset(local, cfg, batch_size=4, seed=1, text_table=tl)))
    assert a.keys() == b.keys() and "text_features" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_latent_pipeline_resumes_exactly_and_compile_auto_picks_the_latent_program(latents):
    import json

    config = tiny_config([f"--config.data.dir={latents}", "--config.train.synthetic_data=false"])
    cfg = PipelineConfig.from_config(config.data)

    def fresh():
        return iter(make_dataset(LatentShardReader(latents), cfg, batch_size=2, seed=5))

    ref = fresh()
    for _ in range(3):
        next(ref)
    state = json.loads(json.dumps(ref.get_state()))  # saved mid-epoch, as a checkpoint does
    expected = [next(ref) for _ in range(4)]
    resumed = fresh()
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    # `compile --inputs auto` and `train` choose the program from the dataset's index
    assert inputs_lib.for_dataset(config, state_lib.ModuleFactories())[2] == "latents"

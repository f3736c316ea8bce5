"""A release-layout Judge directory (config.json, model.safetensors, tokenizer.json written
by the test) loads into a scorer whose scores equal the model's; the weights come back bit
for bit; the processor resamples, hop-pads with masks, truncates long descriptions with a
warning and names what is missing."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from samaudio_jax.eval import evaluate as ev
from samaudio_jax.judge.load import export_judge_state, load_judge
from samaudio_jax.judge.processor import JudgeProcessor, TextTokenizer
from samaudio_jax.judge.scorer import JudgeScorer, _forward
from samaudio_jax.sample.rankers import JudgeRanker, pick_best
from samaudio_jax.state_dict_io import read_state_dict
from tests import judge_reference as R

RATE = R.CODEC["sample_rate"]


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("judge")
    model = R.write_judge_dir(d, seed=3)
    return d, model


def test_directory_round_trip_is_bit_exact(judge_dir):
    d, model = judge_dir
    written, _ = read_state_dict(d)
    loaded = export_judge_state(load_judge(d))
    assert set(loaded) == set(written) == set(export_judge_state(model))
    assert all(np.array_equal(loaded[k], written[k]) for k in written)
    assert json.loads((d / "config.json").read_text())["nth_text_layer"] == R.NTH


def test_scorer_matches_model_and_resamples(judge_dir):
    d, model = judge_dir
    scorer = JudgeScorer.load(d, max_batch=1)  # equal shapes below: one compilation
    rng = np.random.default_rng(0)
    mixes = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (48, 45, 41)]
    seps = [m * 0.5 for m in mixes]
    texts = ["a dog barks", "man speech", "loud car engine"]
    got = scorer.score(mixes, seps, texts, RATE)
    assert set(got) == {"overall", "recall", "precision", "faithfulness"}
    for sl in (slice(0, 1), slice(1, 2), slice(2, 3)):  # batches of max_batch, in order
        b = scorer.processor(texts[sl], mixes[sl], seps[sl], RATE)
        want = np.asarray(_forward(scorer.model, *(jnp.asarray(b[k]) for k in ("input_ids",
                          "attention_mask", "input_values", "separated_values", "padding_mask"))))  # fmt: skip
        assert np.allclose(got["recall"][sl], want[:, 1], rtol=1e-5, atol=1e-6)
        assert np.allclose(got["faithfulness"][sl], want[:, 3], rtol=1e-5, atol=1e-6)
    # the same audio given at twice the rate is resampled to the codec's
    up = [np.repeat(m, 2) for m in mixes[1:2]]
    batch = scorer.processor(texts[:1], up, up, 2 * RATE)
    assert batch["input_values"].shape == (1, 48)  # 45 samples, hop-padded to 6 frames
    assert np.corrcoef(batch["input_values"][0, :40], mixes[1][:40])[0, 1] > 0.9


def test_processor_masks_at_the_hop_and_truncates_with_a_warning(judge_dir):
    d, _ = judge_dir
    tok = TextTokenizer.from_dir(d, max_length=8, pad_id=0)
    proc = JudgeProcessor(tok, RATE, R.HOP)
    mix = [np.ones(50, np.float32) * 0.1, np.linspace(-1, 1, 30).astype(np.float32)]
    long = " ".join(["dog"] * 20)
    with pytest.warns(
        UserWarning, match=r"descriptions\[1\].*longer than the text model's limit of 8"
    ):
        b = proc(["a dog", long], mix, [mix[0], mix[1][:25]], RATE)
    assert b["input_values"].shape == (2, 56)
    assert b["padding_mask"].sum(1).tolist() == [56, 32]
    # reflect padding at the item's own end, zeros after
    assert b["input_values"][1, 30] == mix[1][28] and b["input_values"][1, 32:].max() == 0
    assert b["separated_values"][1, 25:30].max() == 0  # cut short: zero-filled to the mixture
    assert b["input_ids"].shape == (2, 8) and b["input_ids"][1, -1] == 3  # [SEP] kept
    assert b["attention_mask"].sum(1).tolist() == [4, 8]


def test_missing_tokenizer_and_silence_are_named(tmp_path, judge_dir):
    d, _ = judge_dir
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((d / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="bare: no tokenizer.json"):
        JudgeScorer.load(bare)
    proc = JudgeProcessor(TextTokenizer.from_dir(d, 8, 0), RATE, R.HOP)
    with pytest.warns(UserWarning, match=r"separated\[0\]: silent audio"):
        proc(["a dog"], [np.ones(16, np.float32)], [np.zeros(16, np.float32)], RATE)


def test_judge_ranker_picks_the_argmax_of_overall(judge_dir):
    d, _ = judge_dir
    scorer = JudgeScorer.load(d, max_batch=1)
    ranker = JudgeRanker(scorer)
    rng = np.random.default_rng(4)
    mix = rng.standard_normal((2, 48)).astype(np.float32) * 0.3
    noise = rng.standard_normal((2, 1, 48)).astype(np.float32) * 0.3
    target = np.concatenate([mix[:, None] * 0.2, mix[:, None] * 0.9 + 0.1 * noise, noise], 1)
    texts = ["a dog barks", "loud car engine"]
    lengths = [48, 41]
    got = ranker.score(target, residual=mix[:, None] - target, mixture=mix, lengths=lengths,
                       sample_rate=RATE, descriptions=texts, spans=[[], []])  # fmt: skip
    assert got.shape == (2, 3)
    for b in range(2):  # each candidate scored on its own, cut to the item's length
        n = lengths[b]
        alone = [scorer.score([mix[b, :n]], [target[b, c, :n]], texts[b : b + 1], RATE)["overall"][0]
                 for c in range(3)]  # fmt: skip
        assert np.allclose(got[b], alone, rtol=1e-5, atol=1e-6)
        assert pick_best(got)[b] == int(np.argmax(alone))
    assert len(set(np.round(got.ravel(), 6))) == 6  # the candidates are told apart


def test_eval_saj_columns(judge_dir):
    d, _ = judge_dir
    scorer = JudgeScorer.load(d, max_batch=1)
    rng = np.random.default_rng(5)
    mixes = [ev.Mixture(rng.standard_normal(48).astype(np.float32) * 0.3, None, "a dog barks", c, str(i))
             for i, c in enumerate(["dog", "dog", "car"])]  # fmt: skip
    for m in mixes:
        m.target = m.mixture * 0.5
    estimates = [m.mixture * 0.4 for m in mixes]
    per_item = ev.score([m.target for m in mixes], estimates, [m.mixture for m in mixes])
    per_item.update(ev.judge_scores(scorer, mixes, estimates, RATE))
    want = scorer.score([m.mixture for m in mixes], estimates, [m.description for m in mixes], RATE)
    assert np.allclose(per_item["saj_overall"], want["overall"])
    summary = ev.summarise(per_item, [m.category for m in mixes])
    table = ev.format_table(summary)
    assert "SAJ overall" in table.splitlines()[0] and "faithful" in table.splitlines()[0]
    dog = summary["per_category"]["dog"]
    assert np.isclose(dog["saj_recall_median"], np.median(want["recall"][:2]))
    assert f"{dog['saj_overall_median']:.3f}" in table.splitlines()[3]  # car, dog, overall


def test_config_errors_name_the_field(tmp_path):
    from samaudio_jax.judge.config import FrameConfig, JudgeConfig

    good = R.judge_config_dict()
    assert JudgeConfig.from_dict(good).to_dict()["nth_text_layer"] == R.NTH
    with pytest.raises(ValueError, match="unknown Judge field.*'bogus'"):
        JudgeConfig.from_dict({**good, "bogus": 1})
    with pytest.raises(ValueError, match="nth_text_layer 9 must be in 0..4"):
        JudgeConfig.from_dict({**good, "nth_text_layer": 9})
    with pytest.raises(ValueError, match=r"audio_codec: unknown field\(s\) \['rate'\]"):
        JudgeConfig.from_dict({**good, "audio_codec": {"rate": 1}})
    with pytest.raises(ValueError, match="transformer.num_hidden_layers: bad value 'x'"):
        JudgeConfig.from_dict({**good, "transformer": {"num_hidden_layers": "x"}})
    bad_dac = R.frame_config_dict(1)
    bad_dac["audio_model"]["dac_vae_encoder"]["codebook_size"] = 32
    with pytest.raises(ValueError, match="hidden_size 16 .* codebook_size 32"):
        FrameConfig.from_dict(bad_dac)
    with pytest.raises(FileNotFoundError, match="config.json: missing"):
        JudgeScorer.load(tmp_path)


def test_judge_audio_takes_separates_inputs(judge_dir, tmp_path):
    import soundfile

    from samaudio_jax.sample.judging import judge_audio

    d, _ = judge_dir
    scorer = JudgeScorer.load(d, max_batch=1)
    rng = np.random.default_rng(6)
    mix = (rng.standard_normal(48) * 0.3).astype(np.float32)
    soundfile.write(tmp_path / "mix.wav", mix, RATE, subtype="FLOAT")
    stereo_sep = np.stack([mix * 0.4, mix * 0.6])  # (channels, samples): averaged to mono
    got = judge_audio(scorer, [str(tmp_path / "mix.wav"), (mix, RATE)],
                      [stereo_sep, (mix * 0.5, RATE)], ["a dog barks", "a dog barks"])  # fmt: skip
    want = scorer.score([mix, mix], [mix * 0.5, mix * 0.5], ["a dog barks"] * 2, RATE)
    assert np.allclose(got["overall"], want["overall"], rtol=1e-5, atol=1e-6)


def test_judge_with_a_dac_vae_encoder_config_keeps_that_layout(tmp_path):
    """config.json naming the codec "dac_vae_encoder" (transformers' DacConfig fields), as
    users of the published Judge report: plain DAC convolution keys, round trip bit-exact."""
    from samaudio_jax.judge.config import JudgeConfig
    from samaudio_jax.judge.load import build_judge, write_judge_dir

    data = R.judge_config_dict()
    del data["audio_codec"]
    data["dac_vae_encoder"] = {k: R.DAC[k] for k in R.DAC}
    cfg = JudgeConfig.from_dict(data)
    assert cfg.codec_layout == "dac" and cfg.audio_codec.hop_length == R.HOP
    model = build_judge(cfg, seed=2)
    write_judge_dir(model, tmp_path)
    assert "dac_vae_encoder" in json.loads((tmp_path / "config.json").read_text())
    written, _ = read_state_dict(tmp_path)
    assert "dac_vae_encoder.encoder.block.0.res_unit1.conv1.weight" in written
    assert not any(k.startswith("audio_codec.") for k in written)
    back = export_judge_state(load_judge(tmp_path))
    assert set(back) == set(written) and all(np.array_equal(back[k], written[k]) for k in written)
    with pytest.raises(ValueError, match="audio_codec or dac_vae_encoder, not both"):
        JudgeConfig.from_dict({**data, "audio_codec": R.CODEC})

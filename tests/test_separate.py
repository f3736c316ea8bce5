"""separate(): batching is invisible where it can be, spans reach the model, candidates are
ranked, long inputs are chunked, sharding over 'data' changes nothing, bad input is refused.

Tiny config (frames codec at 8 kHz, hop 16; small text encoder), random weights, Euler with
2 steps to keep compilation short.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import soundfile

from configs.tiny import get_config
from samaudio_jax.checkpoint.bundle import flat_params
from samaudio_jax.cli import separate as separate_cli
from samaudio_jax.cli.main import main as samaudio_main
from samaudio_jax.sample import batching, loading, rankers
from samaudio_jax.sample.separate import separate

RATE = 8000
OPTS = dict(solver="euler", steps=2, cache_dir=None)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(padding_aware):
    config = get_config()
    config.model.padding_aware_groupnorm = padding_aware
    return config


@pytest.fixture(scope="module")
def aware():
    return loading.build_separator(tiny(True))


@pytest.fixture(scope="module")
def release():
    return loading.build_separator(tiny(False))


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    # 113, 119 and 225 latent frames: buckets 128, 128 and 256.
    return [rng.normal(size=n).astype(np.float32) * 0.3 for n in (1800, 1900, 3600)]


def assert_close(actual, expected):
    """Equal up to float32 rounding of differently shaped compilations (1e-4 of the peak);
    another noise draw differs by ~1e-1 of the peak."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def cli_main(argv):
    """`samaudio-jax separate ...` through the subcommand module (as cli/main.py calls it)."""
    parser = argparse.ArgumentParser()
    separate_cli.add_arguments(parser)
    args, rest = parser.parse_known_args(argv[1:])
    return separate_cli.run(args, rest)


def run(sep, audios, descriptions, spans=None, **kw):
    return separate(
        sep.model, sep.codec, sep.text_encoder, audios, descriptions, spans, **{**OPTS, **kw}
    )


@pytest.mark.slow
def test_padding_aware_batch_of_different_lengths_equals_each_item_alone(aware, clips):
    key = jax.random.key(7)
    # A fourth input fills its 128-frame bucket exactly: alone it has no padded frame at all.
    inputs = [*clips, np.random.default_rng(3).normal(size=128 * 16).astype(np.float32) * 0.3]
    descriptions = ["dog barking", "a cat", "rain on a tin roof", "a bell"]
    spans = [[("+", 0.05, 0.12)], None, [("-", 0.0, 0.1)], None]
    batched = run(aware, inputs, descriptions, spans, key=key)
    keys = batching.item_keys(key, 4)
    for i in (0, 1, 3):
        alone = run(aware, [inputs[i]], [descriptions[i]], [spans[i]], key=keys[i : i + 1])
        assert alone.padded_masks[0].shape == (128,) and batched.padded_masks[i].shape == (256,)
        assert batched.target[i].shape == (inputs[i].shape[0],)
        assert_close(batched.target[i], alone.target[0])
        assert_close(batched.residual[i], alone.residual[0])
    # The span reached the model: frames ceil(0.05 * 8000 / 16) .. ceil(0.12 * 8000 / 16).
    lo, hi = math.ceil(0.05 * RATE / 16), math.ceil(0.12 * RATE / 16)
    assert np.flatnonzero(batched.anchor_alignments[0] == 2).tolist() == list(range(lo, hi))
    # Different keys give different separations (the noise matters).
    other = run(aware, [clips[0]], [descriptions[0]], [spans[0]], key=keys[1:2])
    assert np.abs(other.target[0] - batched.target[0]).max() > 1e-3


@pytest.mark.slow
def test_release_groupnorm_batches_equal_lengths_invisibly_but_not_padding(release, clips):
    rng = np.random.default_rng(1)
    x, y = clips[1], rng.normal(size=1900).astype(np.float32) * 0.3
    key = jax.random.key(2)
    keys = batching.item_keys(key, 2)
    batched = run(release, [x, y], ["a cat", "birds"], key=key)
    alone = run(release, [x], ["a cat"], key=keys[0:1])
    scale = np.abs(alone.target[0]).max()
    assert_close(batched.target[0], alone.target[0])
    # As in the release, padding an item further (beside a longer one) changes its result.
    padded = run(release, [x, clips[2]], ["a cat", "birds"], key=keys)
    assert np.abs(padded.target[0] - alone.target[0]).max() > 1e-4 * scale


class Prefer(rankers.Ranker):
    def __init__(self, index):
        self.index = index

    def score(self, target, **kwargs):
        scores = np.zeros(target.shape[:2], np.float32)
        scores[:, self.index] = 1.0
        return scores


@pytest.mark.slow
def test_candidates_are_ranked_and_candidate_zero_is_the_single_draw(aware, clips):
    key = jax.random.key(5)
    single = run(aware, [clips[1]], ["a cat"], key=key)
    first = run(aware, [clips[1]], ["a cat"], key=key, candidates=2, ranker=Prefer(0))
    second = run(aware, [clips[1]], ["a cat"], key=key, candidates=2, ranker=Prefer(1))
    assert_close(first.target[0], single.target[0])
    assert first.chosen == [0] and second.chosen == [1]
    assert second.scores[0].tolist() == [0.0, 1.0]
    assert np.abs(second.target[0] - single.target[0]).max() > 1e-3


@pytest.mark.slow
def test_long_input_is_chunked_to_the_exact_length(aware):
    rng = np.random.default_rng(3)
    audio = rng.normal(size=5000).astype(np.float32) * 0.3
    key = jax.random.key(9)
    done = []
    result = run(
        aware,
        [audio],
        ["rain"],
        key=key,
        chunk_seconds=0.236,  # 118 frames: the 128-frame bucket
        overlap_seconds=0.05,
        max_batch=1,
        progress=lambda d, t: done.append((d, t)),
    )
    assert result.target[0].shape == (5000,) and np.isfinite(result.target[0]).all()
    assert done[-1] == (4, 4)
    # Away from the first seam the output is chunk 0 separated on its own with its key.
    chunk0 = run(
        aware,
        [audio[:1888]],
        ["rain"],
        key=jax.random.fold_in(batching.item_keys(key, 1)[0], 0)[None],
    )
    assert_close(result.target[0][:1000], chunk0.target[0][:1000])


def test_bad_inputs_are_refused_with_clear_errors(aware, tmp_path):
    key = jax.random.key(0)
    ok = np.zeros(800, np.float32)
    with pytest.raises(ValueError, match="unknown solver 'rk45'; choose one of euler"):
        run(aware, [ok], ["x"], key=key, solver="rk45")
    nan = ok.copy()
    nan[5] = np.nan
    with pytest.raises(ValueError, match=r"audios\[1\]: 1 non-finite samples"):
        run(aware, [ok, nan], ["x", "y"], key=key)
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    with pytest.raises(ValueError, match="bad.wav.*not a readable audio file"):
        run(aware, [bad], ["x"], key=key)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0), RATE)
    with pytest.raises(ValueError, match="empty audio"):
        run(aware, [empty], ["x"], key=key)
    with pytest.raises(ValueError, match=r"spans\[0\]\[0\]: end 0.5 s is past the audio's end"):
        run(aware, [ok], ["x"], [[("+", 0.0, 0.5)]], key=key)
    with pytest.raises(ValueError, match=r"spans\[0\]\[0\]: start 0.05 s must be before end"):
        run(aware, [ok], ["x"], [[("+", 0.05, 0.02)]], key=key)
    with pytest.raises(ValueError, match="descriptions: expected one per input"):
        run(aware, [ok, ok], ["x"], key=key)


def test_padding_aware_request_needs_a_padding_aware_model(release):
    with pytest.raises(ValueError, match="padding_aware_groupnorm=True"):
        run(release, [np.zeros(800, np.float32)], ["x"], key=jax.random.key(0), padding_aware=True)


def test_checkpoint_directory_missing_files_is_refused(aware, tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        loading.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="neither a training workdir"):
        loading.load(tmp_path)
    loading.save(aware, tmp_path / "sep")
    os.remove(tmp_path / "sep" / "checkpoint.pt")
    os.remove(tmp_path / "sep" / "model.safetensors")
    with pytest.raises(ValueError, match="neither checkpoint.pt nor model.safetensors"):
        loading.load(tmp_path / "sep")


def test_separator_directory_round_trips_and_refuses_a_mismatched_model(aware, tmp_path):
    loading.save(aware, tmp_path / "sep")
    back = loading.load(tmp_path / "sep")
    ours, theirs = flat_params(aware.model), flat_params(back.model)
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    assert back.config.model.padding_aware_groupnorm is True
    config = json.loads((tmp_path / "sep" / "config.json").read_text())
    config["samaudio_jax"]["config"]["model"]["dim"] = 96
    (tmp_path / "sep" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model.dim.*config.json"):
        loading.load(tmp_path / "sep")


@pytest.mark.slow
def test_cli_writes_target_residual_and_spectrograms(aware, clips, tmp_path, capsys):
    loading.save(aware, tmp_path / "sep")
    soundfile.write(tmp_path / "mix.wav", clips[1], RATE)
    code = cli_main(
        [
            "separate", "--checkpoint", str(tmp_path / "sep"), "--input", str(tmp_path / "mix.wav"),
            "--description", "a cat", "--span", "+:0.05:0.12", "--solver", "euler", "--steps", "2",
            "--out", str(tmp_path / "out"), "--cache_dir", "none",
        ]
    )  # fmt: skip
    assert code == 0
    target, rate = soundfile.read(tmp_path / "out" / "target.wav")
    residual, _ = soundfile.read(tmp_path / "out" / "residual.wav")
    assert rate == RATE and target.shape == residual.shape == (1900,)
    png = (tmp_path / "out" / "spectrograms.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    direct = run(
        aware,
        [clips[1]],
        ["a cat"],
        [[("+", 0.05, 0.12)]],
        key=jax.random.fold_in(jax.random.key(0), 0),
    )
    assert_close(target, direct.target[0])


def test_cli_refuses_bad_spans_solvers_and_missing_checkpoints(tmp_path, capsys):
    soundfile.write(tmp_path / "mix.wav", np.zeros(800), RATE)
    base = [
        "separate",
        "--input",
        str(tmp_path / "mix.wav"),
        "--description",
        "x",
        "--out",
        str(tmp_path / "o"),
    ]
    assert cli_main(base + ["--checkpoint", str(tmp_path), "--span", "+:1"]) == 2
    assert "expected SIGN:START:END" in capsys.readouterr().err
    assert cli_main(base + ["--checkpoint", str(tmp_path), "--solver", "rk45"]) == 2
    assert "--solver: unknown solver 'rk45'" in capsys.readouterr().err
    # Through the real entry point: the subcommand is registered in cli/main.py.
    assert samaudio_main(base + ["--checkpoint", str(tmp_path)]) == 2
    assert "is neither a training workdir" in capsys.readouterr().err


@pytest.mark.slow
def test_sharded_batch_over_data_axis_matches_unsharded(tmp_path):
    script = textwrap.dedent(
        """
        import jax
        jax.config.update("jax_num_cpu_devices", 2)
        import numpy as np
        from jax.sharding import Mesh
        from configs.tiny import get_config
        from samaudio_jax.sample import loading
        from samaudio_jax.sample.separate import separate
        config = get_config()
        config.model.padding_aware_groupnorm = True
        sep = loading.build_separator(config)
        rng = np.random.default_rng(0)
        clips = [rng.normal(size=n).astype(np.float32) for n in (1800, 1900, 700)]
        mesh = Mesh(np.array(jax.devices()), ("data",))
        kw = dict(key=jax.random.key(4), solver="euler", steps=2, cache_dir=None)
        args = (sep.model, sep.codec, sep.text_encoder, clips, ["a", "b", "c"])
        sharded = separate(*args, mesh=mesh, **kw)
        plain = separate(*args, **kw)
        assert len(jax.devices()) == 2
        print(max(float(np.abs(s - p).max()) for s, p in zip(sharded.target, plain.target)))
        """
    )
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-5

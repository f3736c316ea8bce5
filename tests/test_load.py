"""samaudio_jax.load on every kind of source, the codec kept at every stage, train --init_from,
Hub ids from a local Hub cache (offline) and the gated-access error.

One release-layout directory holds every part with random weights (tests/release_fixtures.py:
flow network, a small DACVAE, a small PE-Core tower, a carried span predictor in bfloat16) and
a small Hugging Face T5 directory stands for the release's text encoder.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from train_testlib import subprocess_env

import samaudio_jax as sa
from samaudio_jax.checkpoint.release_dir import state_dict
from samaudio_jax.state_dict_io import read_state_dict
from tests.release_fixtures import write_full_release_dir
from tests.test_text_t5 import _t5_dir

REPO_ID = "testorg/sam-audio-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def assert_bit_exact(a: dict, b: dict, prefixes=("",)):
    keys = {k for k in a if k.startswith(prefixes)}
    assert keys == {k for k in b if k.startswith(prefixes)} and keys
    for k in keys:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


def flow_outputs(sep) -> np.ndarray:
    m = sep.config.model
    rng = np.random.default_rng(0)
    b, t, s = 2, 6, 4
    noisy = rng.normal(size=(b, t, 2 * m.latent_dim)).astype(np.float32)
    feats = rng.normal(size=(b, t, 2 * m.latent_dim)).astype(np.float32)
    text, mask = sep.text_encoder.encode(["a dog barks", "rain"])
    return np.asarray(sep.model(noisy, feats, text[:, :s], mask[:, :s], np.array([0.2, 0.7])))


def train_config(sep):
    config = sep.config.copy_and_resolve_references()
    config.codec.checkpoint = ""  # the run must get the codec from --init_from alone
    config.train.synthetic_data = True
    config.train.steps = 2
    config.train.global_batch_size = 2
    config.train.log_every = 1
    config.train.warmup_steps = 1
    config.data.sample_rate = int(config.codec.sample_rate)
    config.data.segment_seconds = 0.032
    return config


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The release dir, the T5 dir, an export of the release, a workdir trained 2 steps from
    the release with init_from, and the source's tensors."""
    from samaudio_jax.train.loop import train

    tmp = tmp_path_factory.mktemp("load")
    release, _ = write_full_release_dir(tmp / "release")
    t5 = tmp / "t5"
    _t5_dir(t5)
    sep = sa.load(release, t5_dir=str(t5))
    sa.save(sep, tmp / "export")
    result = train(train_config(sep), tmp / "work", init_from=str(release), print_fn=print)
    return {
        "tmp": tmp,
        "release": release,
        "t5": t5,
        "export": tmp / "export",
        "work": tmp / "work",
        "result": result,
        "state": read_state_dict(release)[0],
        "outputs": flow_outputs(sep),
    }


@pytest.mark.slow
def test_import_train_export_keeps_every_part_and_training_proceeds(sources, tmp_path):
    state, work = sources["state"], sources["work"]
    assert sources["result"].final_step == 2 and sources["result"].resumed_from == 0
    # Step 0 is the source, bit for bit: flow, codec, vision tower and carried tensors.
    step0 = sa.load(work, step=0)
    assert step0.step == 0 and step0.config.codec.checkpoint == str(work / "frozen")
    assert_bit_exact(state, state_dict(step0))
    # After training: the flow moved, every frozen part is still the source's bytes.
    trained = sa.load(work)
    assert trained.step == 2
    after = state_dict(trained)
    frozen = ("audio_codec.", "vision_encoder.", "span_predictor.")
    assert_bit_exact(state, after, frozen)
    assert any(state[k].tobytes() != after[k].tobytes() for k in state if not k.startswith(frozen))
    # Export (the CLI) writes them too; the export loads back to the same bytes.
    from samaudio_jax.cli import export as export_cli

    args = type("A", (), {"workdir": str(work), "out": str(tmp_path / "out"), "step": None})
    assert export_cli.run(args, []) == 0
    exported = read_state_dict(tmp_path / "out")[0]
    assert_bit_exact(after, exported)
    assert_bit_exact(state, exported, frozen)
    meta = json.loads((tmp_path / "out" / "config.json").read_text())
    assert meta["vision_encoder"]["name"] == "PE-Core-tiny-test"  # the source's sections kept


def _hub_cache(hf_home, release):
    """A Hugging Face Hub cache holding REPO_ID at COMMIT (refs/main), built by hand."""
    repo = hf_home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in ("config.json", "checkpoint.pt"):
        shutil.copy(release / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


# Loads a source in a fresh process and saves what it got (the release layout, bit-exact).
LOAD_AND_SAVE = """
import sys, samaudio_jax as sa
sep = sa.load(sys.argv[1], t5_dir=sys.argv[2], revision=sys.argv[3] or None)
sa.save(sep, sys.argv[4])
print("source:", sep.source)
"""


@pytest.mark.slow
def test_every_kind_of_source_gives_the_same_separator(sources, tmp_path):
    expected, state = sources["outputs"], sources["state"]
    t5 = str(sources["t5"])
    for source, kw in (
        (sources["release"], {}),
        (sources["export"], {}),
        (sources["work"], {"step": 0}),
    ):
        sep = sa.load(source, t5_dir=t5, **kw)
        assert sep.codec is not None and sep.vision_part is not None, source
        np.testing.assert_array_equal(flow_outputs(sep), expected, err_msg=str(source))
        assert_bit_exact(state, state_dict(sep))
    # A Hub id, from a local Hub cache in offline mode (a subprocess: huggingface_hub reads
    # HF_HOME and HF_HUB_OFFLINE when imported).
    hf_home = tmp_path / "hf"
    _hub_cache(hf_home, sources["release"])
    env = subprocess_env()
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    out = tmp_path / "from_hub"
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SAVE, REPO_ID, t5, "main", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"source: {REPO_ID}@main" in proc.stdout
    assert_bit_exact(state, read_state_dict(out / "model.safetensors")[0])
    np.testing.assert_array_equal(flow_outputs(sa.load(out, t5_dir=t5)), expected)


class _GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers like the Hub for a gated repository the caller has no access to."""

    def _gated(self):
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to this model is restricted.")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b'{"error": "Access to this model is restricted."}')

    do_GET = do_HEAD = _gated

    def log_message(self, *args):
        pass


def test_a_gated_repository_says_what_to_do(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = subprocess_env()
        env.update(
            HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}"
        )
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
            env.pop(name, None)
        code = (
            "import samaudio_jax as sa\n"
            "try:\n    sa.load('facebook/sam-audio-large')\n"
            "except ValueError as e:\n    print('ERROR', e)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        server.shutdown()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR")), "")
    assert "gated" in line and "accept its licence" in line and "HF_TOKEN" in line, (
        proc.stdout + proc.stderr
    )
    assert "https://huggingface.co/facebook/sam-audio-large" in line


def test_offline_hub_id_missing_from_the_cache_is_one_line(tmp_path):
    env = subprocess_env()
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    code = (
        "import samaudio_jax as sa\n"
        "try:\n    sa.load('testorg/not-cached')\n"
        "except ValueError as e:\n    print('ERROR', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert "ERROR testorg/not-cached: not in the local Hub cache" in proc.stdout, (
        proc.stdout + proc.stderr
    )


def test_a_dacvae_without_weights_warns_and_train_refuses_it(tmp_path, capsys):
    from samaudio_jax.cli import train as train_cli
    from samaudio_jax.codec.factory import RandomCodecWarning, build_codec
    from samaudio_jax.config_schema import default_config
    from tests.release_fixtures import SMALL_DACVAE

    c = default_config().codec
    for k, v in SMALL_DACVAE.items():
        c[k] = tuple(v) if isinstance(v, list) else v
    with pytest.warns(RandomCodecWarning, match="RANDOM"):
        build_codec(c)
    args = type(
        "A",
        (),
        dict(
            config="configs/tiny.py",
            workdir=str(tmp_path / "w"),
            coordinator_address=None,
            num_processes=None,
            process_id=None,
            stop_after_steps=None,
            force_unlock=False,
            allow_config_change="",
            init_from=None,
            allow_random_codec=False,
        ),
    )
    # (encoder strides whose product is tiny's hop of 16: the config is otherwise valid)
    assert (
        train_cli.run(args, ["--config.codec.kind=dacvae", "--config.codec.encoder_rates=(2,8)"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.codec.checkpoint: empty" in err, err
    assert "--allow_random_codec" in err and not (tmp_path / "w").exists()


@pytest.mark.slow  # its fixture trains
def test_step_and_revision_only_where_they_mean_something(sources):
    with pytest.raises(ValueError, match="only a training workdir has steps"):
        sa.load(sources["release"], step=3)
    with pytest.raises(ValueError, match="not a Hub id"):
        sa.load(sources["work"], revision="main")
    with pytest.raises(ValueError, match="--step: .* has no checkpoint 7"):
        sa.load(sources["work"], step=7)

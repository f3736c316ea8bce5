"""One config check for every entry point: derived fields follow their sources, and a
config whose latent size, vision width or hop disagrees fails when it is loaded, with one
line naming the fields, for train and compile (a --config file and overrides) and for
separate and export (a checkpoint's saved config). Prompt dropout is one family (train.*),
its old data.* names refused by name and moved in saved configs."""

import json
import os
import subprocess
import sys

import pytest

from configs.tiny import get_config
from samaudio_jax.cli.config_loader import load_config
from samaudio_jax.config_checks import ConfigError, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT = "config.model.latent_dim: 8 must equal config.codec.latent_dim 16"
VISION = "config.vision.output_dim: 12 must equal config.model.video_dim 48"
HOP = "config.codec.latent_dim: 16 must equal config.codec.hop_length (the frames codec"


def test_derived_fields_follow_their_sources():
    config = get_config()
    config.codec.latent_dim = config.codec.hop_length = 32
    config.model.video_dim = 24
    m = config.model
    assert (m.latent_dim, m.out_channels, m.in_channels) == (32, 64, 192)
    assert config.vision.output_dim == 24
    validate_config(config)
    saved = json.loads(config.to_json())  # saved configs hold the values
    assert saved["model"]["in_channels"] == 192 and saved["vision"]["output_dim"] == 24


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model.latent_dim", 8, LATENT),
        ("model.out_channels", 30, "config.model.out_channels: 30 must equal 2 * config.model."),
        ("vision.output_dim", 12, VISION),  # (with the tower in use, below)
        ("codec.hop_length", 20, HOP),
        ("data.sample_rate", 4001, "config.codec.hop_length: 16 at config.codec.sample_rate"),
    ],
)
def test_a_disagreeing_field_is_refused_naming_both(field, value, message):
    config = get_config()
    section, name = field.split(".")
    config[section][name] = value
    config.vision.enabled = True  # the tower's width matters only where it is used
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert message in str(err.value) and "\n" not in str(err.value)


def _mismatched_release(tmp_path):
    """A release-layout directory whose saved config (written as `save` writes it) has its
    codec hop changed; its weights file is never reached, the config is refused first."""
    from samaudio_jax.checkpoint.bundle import Bundle
    from samaudio_jax.checkpoint.release_dir import release_config

    out = tmp_path / "release"
    out.mkdir()
    data = release_config(Bundle(config=get_config(), model=None, codec=None, text_encoder=None))
    data["samaudio_jax"]["config"]["codec"]["hop_length"] = 20
    (out / "config.json").write_text(json.dumps(data))
    (out / "model.safetensors").write_bytes(b"")
    return out


def test_every_entry_point_refuses_a_mismatched_config_at_load_time(tmp_path):
    release = _mismatched_release(tmp_path)
    (tmp_path / "mix.wav").write_bytes(b"")  # never read: the config is refused first
    tiny = os.path.join(ROOT, "configs", "tiny.py")
    runs = {
        "train": ["train", "--config", tiny, "--workdir", str(tmp_path / "w"),
                  "--config.model.latent_dim=8"],
        "compile": ["compile", "--config", tiny, "--topology", "v5e:2x2",
                    "--config.vision.enabled=true", "--config.vision.output_dim=12"],
        "separate": ["separate", "--checkpoint", str(release), "--input",
                     str(tmp_path / "mix.wav"), "--description", "x", "--out",
                     str(tmp_path / "o")],
        "export": ["export", "--workdir", str(release), "--out", str(tmp_path / "e")],
    }  # fmt: skip
    # One process runs the four commands as `samaudio-jax` does (cli/main.py).
    script = (
        "import json, sys\n"
        "from samaudio_jax.cli.main import main\n"
        "for name, argv in json.loads(sys.argv[1]).items():\n"
        "    print(f'@@ {name}', file=sys.stderr, flush=True)\n"
        "    print(f'@@ rc {main(argv)}', file=sys.stderr, flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(runs)],
        env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    parts = out.stderr.split("@@ ")[1:]
    got = {}
    for head, body in zip(parts[::2], parts[1::2]):
        lines = [x for x in head.splitlines()[1:] if x.strip()]
        got[head.splitlines()[0]] = (body.split()[1], lines)
    expected = {"train": LATENT, "compile": VISION, "separate": HOP, "export": HOP}
    for name, message in expected.items():
        rc, lines = got[name]
        assert rc == "2", (name, lines)
        assert len(lines) == 1 and message in lines[0], (name, lines)
    assert not (tmp_path / "w").exists() and not (tmp_path / "e").exists()


def test_prompt_dropout_is_one_family_and_old_names_are_named():
    from samaudio_jax.checkpoint.bundle import config_from_dict
    from samaudio_jax.cli.config_loader import apply_overrides

    config = get_config()
    config.train.cond_dropout = 0.2
    t = config.train
    assert (t.text_dropout, t.video_dropout, t.span_dropout) == (0.2, 0.2, 0.2)
    t.span_dropout = 1.0  # one prompt's own rate; the others keep following
    config.train.cond_dropout = 0.1
    assert (t.text_dropout, t.video_dropout, t.span_dropout) == (0.1, 0.1, 1.0)
    with pytest.raises(ConfigError, match=r"^--config.data.span_dropout: renamed config.train"):
        apply_overrides(get_config(), ["--config.data.span_dropout=1"])
    old_file = get_config()
    old_file.data.text_dropout = 0.5  # an experiment file still setting the old field
    with pytest.raises(ConfigError, match=r"^config.data.text_dropout: renamed config.train"):
        validate_config(old_file)
    # A config saved before: the pipeline's rate p_old came before the step's p.
    saved = json.loads(get_config().to_json())
    for name in ("text_dropout", "video_dropout", "span_dropout"):
        del saved["train"][name]
    saved["train"]["cond_dropout"] = 0.5
    saved["data"].update(text_dropout=0.0, span_dropout=0.5)
    loaded = config_from_dict(saved, "config").train
    assert (loaded.text_dropout, loaded.video_dropout, loaded.span_dropout) == (0.5, 0.5, 0.75)


def test_the_steps_prompt_flags_keep_the_single_rate_draw():
    import jax

    from samaudio_jax.train import objective, step

    keys = jax.random.split(jax.random.key(0), 64)
    one = jax.vmap(lambda k: jax.random.bernoulli(k, 0.3, (3,)))(keys)  # the former draw
    config = get_config()
    config.train.cond_dropout = 0.3
    rates = step.prompt_dropout_rates(config.train)
    same = jax.vmap(lambda k: objective.dropout_mask(k, 3, rates))(keys)
    assert (one == same).all()
    demo = load_config(os.path.join(ROOT, "configs", "demo.py")).train  # spans always dropped
    flags = jax.vmap(lambda k: objective.dropout_mask(k, 3, step.prompt_dropout_rates(demo)))(keys)
    assert flags[:, 2].all() and not flags[:, :2].any()

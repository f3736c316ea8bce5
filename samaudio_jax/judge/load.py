"""Release Judge / PE-A-Frame directories: config.json + model.safetensors (or checkpoint.pt),
read through the project's state-dict reader, local or behind a URL.

`build_*` makes a model with random weights (tests, benchmarks); `load_*` builds it from a
directory and imports every tensor (keymaps/judge.py; a key no parameter takes, or one that
is missing, is an error naming it); `export_*` gives the state dict back under the release's
names, bit for bit, and `write_*_dir` writes a directory `load_*` reads.
"""

from __future__ import annotations

import json

import jax.numpy as jnp
from flax import nnx

from samaudio_jax.io_atomic import atomic_write_bytes
from samaudio_jax.judge.config import FrameConfig, JudgeConfig
from samaudio_jax.judge.frame import FrameModel
from samaudio_jax.judge.judge import JudgeModel
from samaudio_jax.judge.weights import export_state, import_state, random_fill, shell, variables
from samaudio_jax.keymaps.judge import frame_rules, judge_rules
from samaudio_jax.paths import PathLike, as_path, check_reachable
from samaudio_jax.state_dict_io import SAFETENSORS_FILE, read_state_dict, write_state_dict

CONFIG_FILE = "config.json"


def read_config_json(directory: PathLike) -> dict:
    check_reachable(directory)
    path = as_path(directory) / CONFIG_FILE
    if not as_path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a release model directory holds config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def build_judge(cfg: JudgeConfig, seed: int = 0) -> JudgeModel:
    """A Judge with random weights (weights.random_fill), for tests and benchmarks."""
    model = shell(lambda: JudgeModel(cfg, rngs=nnx.Rngs(0)))
    random_fill(model, seed)
    return model


def build_frame(cfg: FrameConfig, seed: int = 0) -> FrameModel:
    """A PE-A-Frame with random weights (weights.random_fill)."""
    model = shell(lambda: FrameModel(cfg, rngs=nnx.Rngs(0)))
    random_fill(model, seed)
    return model


def import_judge_state(model: JudgeModel, state: dict, source: str = "state dict") -> None:
    if model.cfg.codec_layout == "dac":
        gains = [n for n in variables(model) if n.endswith(".weight_g")]
        import_state(model, state, judge_rules(model), source, derived=gains)
        _plain_gains(model.audio_codec)
    else:
        import_state(model, state, judge_rules(model), source)


def export_judge_state(model: JudgeModel) -> dict:
    return export_state(model, judge_rules(model))


def import_frame_state(model: FrameModel, state: dict, source: str = "state dict") -> None:
    rules = frame_rules(model)
    gains = [n for n in variables(model) if n.endswith(".weight_g")]
    import_state(model, state, rules, source, derived=gains)
    _plain_gains(model.audio_codec)


def _plain_gains(codec) -> None:
    """Plain (not weight-normed) DAC convolutions are held as v = w: g is then ||w||."""
    for _, mod in nnx.iter_modules(codec):
        if hasattr(mod, "weight_g"):
            v = mod.weight_v[...].astype(jnp.float32)
            g = jnp.sqrt(jnp.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))
            mod.weight_g.set_value(g.astype(mod.weight_g[...].dtype))


def export_frame_state(model: FrameModel) -> dict:
    return export_state(model, frame_rules(model))


def load_judge(directory: PathLike) -> JudgeModel:
    return _load(directory, JudgeConfig, JudgeModel, import_judge_state)


def load_frame(directory: PathLike) -> FrameModel:
    return _load(directory, FrameConfig, FrameModel, import_frame_state)


def _load(directory: PathLike, config_type, model_type, import_fn):
    """config.json -> an unallocated model shell -> the directory's weights imported."""
    cfg = config_type.from_dict(read_config_json(directory), f"{directory}/{CONFIG_FILE}")
    state, file = read_state_dict(directory)
    model = shell(lambda: model_type(cfg, rngs=nnx.Rngs(0)))
    import_fn(model, state, file)
    return model


def _write_dir(config: dict, state: dict, out_dir: PathLike) -> None:
    out = as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # weights first: a directory whose config.json exists is complete
    write_state_dict(state, out / SAFETENSORS_FILE)
    atomic_write_bytes(out / CONFIG_FILE, json.dumps(config, indent=2).encode())


def write_judge_dir(model: JudgeModel, out_dir: PathLike) -> None:
    _write_dir(model.cfg.to_dict(), export_judge_state(model), out_dir)


def write_frame_dir(model: FrameModel, out_dir: PathLike) -> None:
    _write_dir(model.cfg.to_dict(), export_frame_state(model), out_dir)

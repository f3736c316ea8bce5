"""Builds the PE-Core vision tower from the release's `vision_encoder.*` tensors, and back.

load_vision_part(state, release_config) builds a PEVisionTower from the `model.visual.*` keys
(sizes read off the array shapes; head counts from the release's vision_encoder name, or
head_dim 64) and keeps every other key of the part (the unused CLIP text tower, logit_scale)
as it was, so export_vision_part writes back the same key set with the same bytes and dtypes.
frame_encoder_from_config builds the FrameEncoder that config.vision names.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.keymaps import rules as rules_lib
from samaudio_jax.keymaps.vision import VISUAL, count_layers, vision_rules
from samaudio_jax.paths import as_path
from samaudio_jax.state_dict_io import cast, read_state_dict
from samaudio_jax.vision.pe import PEConfig, PEVisionTower

# Head counts that array shapes cannot tell: release vision_encoder name -> (heads, pool heads).
KNOWN_HEADS = {
    "PE-Core-B16-224": (12, 8),
    "PE-Core-L14-336": (16, 8),
    "PE-Core-G14-448": (16, 8),
}
PART_PREFIX = "vision_encoder."


@dataclasses.dataclass
class VisionEncoderPart:
    """What the `vision_encoder.` part holds: the tower, the carried keys, the file's dtypes."""

    tower: PEVisionTower
    carried: dict[str, np.ndarray]
    dtypes: dict[str, str]


def pe_config_from_state(
    state: dict[str, np.ndarray],
    release_config: dict | None = None,
    base: PEConfig | None = None,
    source: str = "vision_encoder",
) -> PEConfig:
    """PEConfig whose sizes match the arrays in `state` (keys relative to `vision_encoder.`).

    Numerics (dtype, param_dtype, eps, rope_theta) come from `base`; head counts from `base`
    when given, else from the release's vision_encoder name, else width / 64.
    """
    v = VISUAL
    for key in (f"{v}conv1.weight", f"{v}positional_embedding", f"{v}proj"):
        if key not in state:
            raise KeyError(f"{source}: missing key {PART_PREFIX + key!r}")
    width, _, patch, _ = state[f"{v}conv1.weight"].shape
    tokens = state[f"{v}positional_embedding"].shape[0]
    grid = int(round(np.sqrt(tokens - 1)))
    if grid * grid + 1 != tokens:
        raise ValueError(
            f"{source}: positional_embedding has {tokens} rows; expected 1 + grid**2 (CLS + patches)"
        )
    mlp_key = f"{v}transformer.resblocks.0.mlp.c_fc.weight"
    mlp_width = state[mlp_key].shape[0] if mlp_key in state else 4 * width
    name = ((release_config or {}).get("vision_encoder") or {}).get("name")
    heads, pool_heads = KNOWN_HEADS.get(name, (width // 64, 8))
    if base is not None:
        heads, pool_heads = base.heads, base.pool_heads
    kw = {} if base is None else dataclasses.asdict(base)
    kw.update(
        image_size=grid * patch,
        patch_size=patch,
        width=width,
        layers=count_layers(state),
        heads=heads,
        pool_heads=pool_heads,
        mlp_ratio=mlp_width / width,
        output_dim=state[f"{v}proj"].shape[1],
    )
    return PEConfig(**kw).validate()


def _abstract_params(cfg: PEConfig) -> dict[str, tuple[int, ...]]:
    abstract = nnx.eval_shape(lambda: PEVisionTower(cfg, rngs=nnx.Rngs(0)))
    return {
        ".".join(str(p) for p in path): tuple(var.get_value().shape)
        for path, var in nnx.to_flat_state(nnx.state(abstract, nnx.Param))
    }


def tower_arrays_from_state(
    state: dict[str, np.ndarray], cfg: PEConfig, source: str = "vision_encoder"
) -> dict[str, np.ndarray]:
    """Our parameter path -> array; every key of the map must be present with its shape."""
    shapes = _abstract_params(cfg)
    out = rules_lib.to_ours(
        state, vision_rules(cfg.layers), shapes, source=source, prefix=PART_PREFIX
    )
    missing = set(shapes) - set(out)
    if missing:
        raise AssertionError(f"vision key map leaves parameters unset: {sorted(missing)}")
    return out


def build_tower(cfg: PEConfig, arrays: dict[str, np.ndarray]) -> PEVisionTower:
    """A PEVisionTower holding `arrays` (cast to cfg.param_dtype), without a random init."""
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: PEVisionTower(cfg, rngs=nnx.Rngs(0))))
    filled = []
    for path, var in nnx.to_flat_state(abstract):
        key = ".".join(str(p) for p in path)
        filled.append((path, var.replace(jnp.asarray(arrays[key], dtype=var.get_value().dtype))))
    return nnx.merge(graphdef, nnx.from_flat_state(filled))


def tower_state_dict(tower: PEVisionTower) -> dict[str, np.ndarray]:
    """The tower's parameters under the release's keys (relative to `vision_encoder.`)."""
    params = {
        ".".join(str(p) for p in path): np.asarray(jax.device_get(var.get_value()))
        for path, var in nnx.to_flat_state(nnx.state(tower, nnx.Param))
    }
    return rules_lib.to_release(params, vision_rules(tower.cfg.layers))


def load_vision_part(
    state: dict[str, np.ndarray], release_config: dict | None = None, base: PEConfig | None = None
) -> VisionEncoderPart:
    """The tower and carried keys of a `vision_encoder.` part (keys relative to it)."""
    cfg = pe_config_from_state(state, release_config, base)
    mapped = {r.release for r in vision_rules(cfg.layers)}
    stray = [k for k in state if k.startswith(VISUAL) and k not in mapped]
    if stray:
        raise KeyError(f"vision_encoder: unexpected key(s) {sorted(stray)[:10]}")
    tower = build_tower(cfg, tower_arrays_from_state(state, cfg))
    carried = {k: v for k, v in state.items() if k not in mapped}
    dtypes = {k: str(np.asarray(v).dtype) for k, v in state.items() if k in mapped}
    return VisionEncoderPart(tower=tower, carried=carried, dtypes=dtypes)


def export_vision_part(part: VisionEncoderPart | PEVisionTower) -> dict[str, np.ndarray]:
    """The part's tensors (relative to `vision_encoder.`): the tower's keys in the dtypes they
    were read in plus the carried keys unchanged. A bare PEVisionTower exports its own keys."""
    if isinstance(part, PEVisionTower):
        return tower_state_dict(part)
    out = dict(part.carried)
    for key, arr in tower_state_dict(part.tower).items():
        dtype = part.dtypes.get(key)
        out[key] = arr if dtype is None else cast(arr, dtype)
    return out


def _release_config_near(path) -> dict | None:
    p = as_path(path)
    config_file = (p if p.is_dir() else p.parent) / "config.json"
    if not config_file.is_file():
        return None
    try:
        raw = json.loads(config_file.read_text())
    except json.JSONDecodeError:
        return None
    return raw if isinstance(raw, dict) else None


def read_vision_part(path, base: PEConfig | None = None) -> VisionEncoderPart:
    """The `vision_encoder.` part of a release/export directory (or checkpoint file).

    Sizes come from the arrays; `base` (e.g. PEConfig.from_config(config.vision)) gives the
    numerics and head counts, and any size it names must agree with the file's.
    """
    state, file = read_state_dict(path)
    sub = {k[len(PART_PREFIX) :]: v for k, v in state.items() if k.startswith(PART_PREFIX)}
    if not sub:
        raise KeyError(f"{file}: holds no {PART_PREFIX}* keys (no vision encoder)")
    release = _release_config_near(path)
    cfg = pe_config_from_state(sub, release, base, source=file)
    if base is not None:
        for field in ("image_size", "patch_size", "width", "layers", "output_dim"):
            if getattr(base, field) != getattr(cfg, field):
                raise ValueError(
                    f"{file}: vision.{field}={getattr(base, field)} in the config, "
                    f"{getattr(cfg, field)} in the checkpoint"
                )
    return load_vision_part(sub, release, cfg)


def load_vision_tower(path, base: PEConfig | None = None) -> PEVisionTower:
    """The PEVisionTower of a directory or file holding vision_encoder.* (see read_vision_part)."""
    return read_vision_part(path, base).tower


def frame_encoder(tower: PEVisionTower, batch_size: int = 32):
    from samaudio_jax.vision.features import FrameEncoder

    return FrameEncoder(tower, batch_size=int(batch_size))


def frame_encoder_from_config(vision):
    """A FrameEncoder for config.vision: weights from vision.checkpoint, sizes and numerics
    from the section (they must agree with the file)."""
    if not vision.checkpoint:
        raise ValueError(
            "config.vision.checkpoint is empty: video prompts need PE-Core weights (a release "
            "directory or file holding vision_encoder.*)"
        )
    tower = load_vision_tower(vision.checkpoint, PEConfig.from_config(vision))
    return frame_encoder(tower, batch_size=int(vision.batch_size))

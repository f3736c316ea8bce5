"""The release's config.json <-> our config.model.

The release's config.json nests `transformer`, `audio_codec`, `text_encoder` and
`vision_encoder` sections under top-level `in_channels`, `video_feature_dim`, `num_anchors`
and `anchor_embedding_dim`. Fields missing from a file take the release's defaults
(RELEASE_DEFAULTS). Settings our network does not implement are errors naming the field.
"""

from __future__ import annotations

import copy
import json
import os

import ml_collections

from samaudio_jax.config_schema import model_defaults
from samaudio_jax.paths import as_path

RELEASE_DEFAULTS = {
    "in_channels": 768,
    "video_feature_dim": 1024,
    "num_anchors": 3,
    "anchor_embedding_dim": 128,
    "text_encoder": {"name": "t5-base", "max_length": 512, "pad_mode": "longest", "dim": 768},
    "audio_codec": {"codebook_dim": 128, "sample_rate": 48000},
    "transformer": {
        "dim": 2048,
        "n_heads": 16,
        "n_layers": 16,
        "dropout": 0.1,
        "norm_eps": 1e-5,
        "qk_norm": True,
        "fc_bias": False,
        "ffn_exp": 4,
        "ffn_dim_multiplier": 1,
        "multiple_of": 64,
        "non_linearity": "swiglu",
        "use_rope": True,
        "max_positions": 10000,
        "frequency_embedding_dim": 256,
        "timestep_non_linearity": "swiglu",
        "t_block_non_linearity": "silu",
        "t_block_bias": True,
        "context_dim": 2048,
        "context_non_linearity": "swiglu",
        "context_embedder_dropout": 0.0,
        "context_norm": False,
        "out_channels": 256,
        "in_channels": None,
        "no_cross_attention": False,
    },
}

# Our config.model field -> (section or None, release field).
FIELD_MAP = {
    "dim": ("transformer", "dim"),
    "num_layers": ("transformer", "n_layers"),
    "num_heads": ("transformer", "n_heads"),
    "out_channels": ("transformer", "out_channels"),
    "in_channels": (None, "in_channels"),
    "text_dim": ("text_encoder", "dim"),
    "video_dim": (None, "video_feature_dim"),
    "num_anchors": (None, "num_anchors"),
    "anchor_embedding_dim": (None, "anchor_embedding_dim"),
    "max_positions": ("transformer", "max_positions"),
    "frequency_embedding_dim": ("transformer", "frequency_embedding_dim"),
    "ffn_exp": ("transformer", "ffn_exp"),
    "multiple_of": ("transformer", "multiple_of"),
    "norm_eps": ("transformer", "norm_eps"),
    "qk_norm": ("transformer", "qk_norm"),
    "fc_bias": ("transformer", "fc_bias"),
    "t_block_bias": ("transformer", "t_block_bias"),
    "context_norm": ("transformer", "context_norm"),
}
# Fields that change no parameter: a requested config may differ from the file's.
NON_ARCHITECTURE = ("dropout",)

# Release settings we only implement one way: (section, field) -> required value.
FIXED = {
    ("transformer", "ffn_dim_multiplier"): 1,
    ("transformer", "non_linearity"): "swiglu",
    ("transformer", "use_rope"): True,
    ("transformer", "timestep_non_linearity"): "swiglu",
    ("transformer", "t_block_non_linearity"): "silu",
    ("transformer", "context_non_linearity"): "swiglu",
    ("transformer", "in_channels"): None,
    ("transformer", "no_cross_attention"): False,
    ("transformer", "fc_bias"): False,
}


def _merged(raw: dict) -> dict:
    merged = copy.deepcopy(RELEASE_DEFAULTS)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _get(release: dict, section: str | None, field: str):
    return release[field] if section is None else release[section][field]


def read_json_object(path, what: str) -> dict:
    """The JSON object in file `path`; ValueError naming the file when it is not valid JSON
    or not an object (`what` says what it should hold)."""
    path = as_path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def read_release_config(path: str | os.PathLike) -> dict:
    """Reads config.json (a file or a release directory) merged over the release's defaults."""
    path = as_path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"release config: no such file: {path}")
    return _merged(read_json_object(path, "the release config"))


def model_config_from_release(
    release: dict, base: ml_collections.ConfigDict | None = None, source: str = "config.json"
) -> ml_collections.ConfigDict:
    """Our config.model from a (merged) release config; other fields come from `base`."""
    release = _merged(release)
    for (section, field), required in FIXED.items():
        value = _get(release, section, field)
        if value != required:
            raise ValueError(
                f"{source}: {section}.{field}={value!r} is not supported (expected {required!r})"
            )
    tr = release["transformer"]
    if tr["context_dim"] != tr["dim"]:
        raise ValueError(
            f"{source}: transformer.context_dim={tr['context_dim']} must equal "
            f"transformer.dim={tr['dim']}"
        )
    m = copy.deepcopy(base) if base is not None else model_defaults()
    for ours, (section, field) in FIELD_MAP.items():
        m[ours] = type(m[ours])(_get(release, section, field))
    m.dropout = float(tr["dropout"]) if base is None else m.dropout
    m.latent_dim = m.out_channels // 2
    codebook = release["audio_codec"].get("codebook_dim", m.latent_dim)
    if codebook != m.latent_dim:
        raise ValueError(
            f"{source}: audio_codec.codebook_dim={codebook} disagrees with "
            f"transformer.out_channels={m.out_channels} (expected 2 * codebook_dim)"
        )
    return m


def check_model_config(
    requested: ml_collections.ConfigDict, release: dict, source: str = "config.json"
) -> None:
    """Raises naming the first architecture field where `requested` and the file disagree."""
    from_file = model_config_from_release(release, source=source)
    for field in (*FIELD_MAP, "latent_dim"):
        if requested[field] != from_file[field]:
            raise ValueError(
                f"model.{field}: the requested config has {requested[field]!r} but {source} "
                f"has {from_file[field]!r}"
            )


def release_config_from_model(m: ml_collections.ConfigDict) -> dict:
    """The release's config.json content for config.model `m` (other sections at defaults)."""
    release = copy.deepcopy(RELEASE_DEFAULTS)
    for ours, (section, field) in FIELD_MAP.items():
        value = m[ours]
        if section is None:
            release[field] = value
        else:
            release[section][field] = value
    release["transformer"]["context_dim"] = m.dim
    release["transformer"]["dropout"] = m.dropout
    release["audio_codec"]["codebook_dim"] = m.latent_dim
    return release

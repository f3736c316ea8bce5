"""Architecture of a T5 encoder: presets and parsing of a Hugging Face config.json.

Covers the original T5 (ReLU FFN: t5-small/base/large) and T5 v1.1 / FLAN-T5 / mT5
("gated-gelu": gelu_new(wi_0 x) * wi_1 x). Other model types are rejected.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SUPPORTED_MODEL_TYPES = ("t5", "mt5")
SUPPORTED_ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu")


@dataclasses.dataclass(frozen=True)
class T5EncoderConfig:
    vocab_size: int = 32128
    d_model: int = 768
    d_kv: int = 64
    d_ff: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"  # "relu" | "gated-gelu" | "<act>" | "gated-<act>"

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        """Name of the FFN activation; "gated-gelu" means the tanh approximation (gelu_new)."""
        if self.feed_forward_proj == "gated-gelu":
            return "gelu_new"
        return self.feed_forward_proj.split("-")[-1]

    def validate(self, where: str = "T5 config") -> T5EncoderConfig:
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(
                f"{where}: feed_forward_proj: expected 'relu', 'gated-gelu' or '[gated-]<act>', "
                f"got {self.feed_forward_proj!r}"
            )
        if self.activation not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"{where}: feed_forward_proj: activation {self.activation!r} is not one of "
                f"{SUPPORTED_ACTIVATIONS}"
            )
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{where}: {name}: expected >= 1, got {getattr(self, name)}")
        if self.relative_attention_num_buckets < 4:
            raise ValueError(f"{where}: relative_attention_num_buckets: expected >= 4")
        return self

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any], where: str = "config.json") -> T5EncoderConfig:
        """Reads the encoder fields of a Hugging Face T5Config dict; rejects other models."""
        model_type = raw.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"{where}: model_type: expected one of {SUPPORTED_MODEL_TYPES}, got {model_type!r}"
            )
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name in raw and raw[field.name] is not None:
                kwargs[field.name] = type(field.default)(raw[field.name])
        return cls(**kwargs).validate(where)


T5_PRESETS = {
    "t5-small": T5EncoderConfig(d_model=512, d_ff=2048, num_layers=6, num_heads=8),
    "t5-base": T5EncoderConfig(),
    "t5-large": T5EncoderConfig(d_model=1024, d_ff=4096, num_layers=24, num_heads=16),
    "t5-v1_1-base": T5EncoderConfig(d_ff=2048, feed_forward_proj="gated-gelu"),
}

"""Configs of the Judge and PE-A-Frame, read from the release's config.json dicts.

Field names follow the release files so a config.json maps one to one: the Judge's
`audio_codec` (DACVAE: encoder_dim, encoder_rates, latent_dim = the encoder's output width,
codebook_dim = the latent width), `transformer` / `finetune_transformer` (PE-AV transformer),
`text_model` (a ModernBERT config, old `global_rope_theta` / `local_rope_theta` keys or the
newer `rope_parameters`), `nth_text_layer`, `bottleneck_dim`; PE-A-Frame's `audio_model`
(`dac_vae_encoder` in transformers' DacConfig names, `audio_transformer`), `text_model`,
`output_dim`, `nth_text_layer`. Unknown keys of the Hugging Face sub-configs are ignored
(those dicts carry many generation-only fields); a wrong type is a ValueError naming the field.
"""

from __future__ import annotations

import dataclasses
import math


def _take(cls, data: dict | None, where: str, strict: bool = False, rename=None):
    """`cls(**known fields of data)`; ValueError naming `where.field` on a bad value."""
    data = dict(data or {})
    for old, new in (rename or {}).items():
        if old in data and new not in data:
            data[new] = data.pop(old)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if strict and unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}")
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            continue
        default = getattr(cls, name, None)
        try:
            if isinstance(default, bool):
                value = bool(value)
            elif isinstance(default, int) and value is not None:
                value = int(value)
            elif isinstance(default, float) and value is not None:
                value = float(value)
            elif isinstance(default, tuple):
                value = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{name}: bad value {value!r}") from None
        kwargs[name] = value
    return cls(**kwargs)


# perception_models' default text model (ModernBERT-large, 28 layers): PEAudioFrameConfig
# uses it when config.json gives no text_model.
PE_TEXT_MODEL = {
    "hidden_size": 1024,
    "intermediate_size": 2624,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "local_rope_theta": 10000.0,
    "norm_eps": 1e-5,
}


@dataclasses.dataclass(frozen=True)
class ModernBertConfig:
    """ModernBERT sizes. Defaults are transformers' ModernBertConfig defaults (what a
    release config.json's missing fields fall back to); PE_TEXT_MODEL is ModernBERT-large."""

    vocab_size: int = 50368
    hidden_size: int = 768
    intermediate_size: int = 1152
    num_hidden_layers: int = 22
    num_attention_heads: int = 12
    norm_eps: float = 1e-5
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    global_rope_theta: float = 160000.0
    local_rope_theta: float = 10000.0
    local_attention: int = 128
    global_attn_every_n_layers: int = 3
    max_position_embeddings: int = 8192
    pad_token_id: int = 50283
    hidden_activation: str = "gelu"

    @classmethod
    def from_dict(cls, data: dict | None, where: str = "text_model") -> ModernBertConfig:
        data = dict(data or {})
        rope = data.get("rope_parameters") or {}
        if "full_attention" in rope and "global_rope_theta" not in data:
            data["global_rope_theta"] = rope["full_attention"].get("rope_theta")
        if "sliding_attention" in rope and "local_rope_theta" not in data:
            data["local_rope_theta"] = rope["sliding_attention"].get("rope_theta")
        cfg = _take(cls, data, where)
        if cfg.hidden_activation not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"{where}.hidden_activation: unsupported {cfg.hidden_activation!r}")
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(f"{where}: hidden_size must be a multiple of num_attention_heads")
        return cfg

    def is_global(self, layer: int) -> bool:
        """Layers 0, n, 2n, ... attend globally; the others within local_attention // 2."""
        return layer % self.global_attn_every_n_layers == 0


@dataclasses.dataclass(frozen=True)
class PeTransformerConfig:
    """The PE-AV transformer (perception_models core/audio_visual_encoder TransformerConfig)."""

    hidden_size: int = 1024
    intermediate_size: int = 2752
    num_hidden_layers: int = 16
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 10000
    attention_bias: bool = False

    def __post_init__(self):
        if self.num_key_value_heads is None:  # the release's default: as many as query heads
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)

    @classmethod
    def from_dict(cls, data: dict | None, where: str) -> PeTransformerConfig:
        cfg = _take(cls, data, where)
        kv = cfg.num_key_value_heads
        if cfg.hidden_size % cfg.num_attention_heads or cfg.num_attention_heads % kv:
            raise ValueError(
                f"{where}: hidden_size {cfg.hidden_size} must divide into "
                f"num_attention_heads {cfg.num_attention_heads} (a multiple of kv heads {kv})"
            )
        return cfg

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rope_theta(self) -> float:
        # The release builds its rotary table with this base, whatever rope_theta says.
        return float(max(10_000, 2 * self.max_position_embeddings))


@dataclasses.dataclass(frozen=True)
class CodecEncoderConfig:
    """The DACVAE encoder half (release names): `latent_dim` is the encoder's output width
    (1024), `codebook_dim` the latent width (128) the transformers read."""

    encoder_dim: int = 64
    encoder_rates: tuple = (2, 8, 10, 12)
    latent_dim: int = 1024
    codebook_dim: int = 128
    sample_rate: int = 48_000

    @classmethod
    def from_release(cls, data: dict | None, where: str = "audio_codec") -> CodecEncoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        # The decoder and quantizer sizes the release also lists do not shape the encoder.
        ignored = {"decoder_dim", "decoder_rates", "n_codebooks", "codebook_size",
                   "quantizer_dropout", "mean", "std"}  # fmt: skip
        extra = sorted(set(data or {}) - known - ignored)
        if extra:
            raise ValueError(f"{where}: unknown field(s) {extra}")
        return _take(cls, {k: v for k, v in (data or {}).items() if k in known}, where)

    @classmethod
    def from_dac(cls, data: dict | None, where: str = "dac_vae_encoder") -> CodecEncoderConfig:
        """transformers' DacConfig names (PE-A-Frame): the encoder's output width is
        `hidden_size` and its VAE bottleneck's input `codebook_size` (perception_models);
        both must agree."""
        d = dict(data or {})
        width, bottleneck_in = d.get("hidden_size", 1024), d.get("codebook_size", 1024)
        if width != bottleneck_in:
            raise ValueError(
                f"{where}: hidden_size {width} (encoder output) and codebook_size "
                f"{bottleneck_in} (bottleneck input) must be equal"
            )
        return _take(
            cls,
            {
                "encoder_dim": d.get("encoder_hidden_size", 64),
                "encoder_rates": d.get("downsampling_ratios", (2, 8, 10, 12)),
                "latent_dim": width,
                "codebook_dim": d.get("codebook_dim", 128),
                "sample_rate": d.get("sampling_rate", 48_000),
            },
            where,
        )

    def to_dac(self) -> dict:
        """transformers' DacConfig names (the inverse of from_dac)."""
        return {
            "encoder_hidden_size": self.encoder_dim,
            "downsampling_ratios": list(self.encoder_rates),
            "hidden_size": self.latent_dim,
            "codebook_size": self.latent_dim,
            "codebook_dim": self.codebook_dim,
            "sampling_rate": self.sample_rate,
        }

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder_rates)


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    """SAM Audio Judge. `mask_padding`: the release passes its padding mask to both
    transformers under a keyword they ignore (and its codec sees the zero padding), so only
    the final mean is masked and padding changes a padded example's scores. False (default)
    reproduces that; True masks the codec's convolutions, the patch embedder and attention
    too, so a padded example's scores do not depend on its padding."""

    audio_codec: CodecEncoderConfig = CodecEncoderConfig()
    transformer: PeTransformerConfig = PeTransformerConfig()
    text_model: ModernBertConfig = ModernBertConfig()
    finetune_transformer: PeTransformerConfig = PeTransformerConfig()
    nth_text_layer: int | None = 22
    bottleneck_dim: int = 256
    mask_padding: bool = False
    codec_layout: str = "dacvae"  # "dac" when config.json names the codec "dac_vae_encoder"

    @classmethod
    def from_dict(cls, data: dict, where: str = "config.json") -> JudgeConfig:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object")
        known = {"audio_codec", "dac_vae_encoder", "transformer", "text_model",
                 "finetune_transformer", "nth_text_layer", "bottleneck_dim", "mask_padding"}  # fmt: skip
        extra = sorted(set(data) - known - {"model_type", "architectures", "transformers_version"})
        if extra:
            raise ValueError(f"{where}: unknown Judge field(s) {extra}")
        text = ModernBertConfig.from_dict(data.get("text_model"), f"{where}: text_model")
        nth = data.get("nth_text_layer", 22)
        _check_nth(nth, text, where)
        if "dac_vae_encoder" in data:
            if "audio_codec" in data:
                raise ValueError(f"{where}: give audio_codec or dac_vae_encoder, not both")
            codec = CodecEncoderConfig.from_dac(
                data["dac_vae_encoder"], f"{where}: dac_vae_encoder"
            )
            layout = "dac"
        else:
            codec = CodecEncoderConfig.from_release(
                data.get("audio_codec"), f"{where}: audio_codec"
            )
            layout = "dacvae"
        return cls(
            audio_codec=codec,
            codec_layout=layout,
            transformer=PeTransformerConfig.from_dict(data.get("transformer"), f"{where}: transformer"),
            text_model=text,
            finetune_transformer=PeTransformerConfig.from_dict(
                data.get("finetune_transformer"), f"{where}: finetune_transformer"
            ),
            nth_text_layer=None if nth is None else int(nth),
            bottleneck_dim=int(data.get("bottleneck_dim", 256)),
            mask_padding=bool(data.get("mask_padding", False)),
        )  # fmt: skip

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["audio_codec"]["encoder_rates"] = list(self.audio_codec.encoder_rates)
        if out.pop("codec_layout") == "dac":
            out["dac_vae_encoder"] = self.audio_codec.to_dac()
            del out["audio_codec"]
        return out


@dataclasses.dataclass(frozen=True)
class FrameConfig:
    """PE-A-Frame (perception_models PEAudioFrameConfig)."""

    codec: CodecEncoderConfig = CodecEncoderConfig()
    audio_transformer: PeTransformerConfig = PeTransformerConfig()
    text_model: ModernBertConfig = ModernBertConfig(**PE_TEXT_MODEL)
    output_dim: int = 1024
    nth_text_layer: int | None = 22

    @classmethod
    def from_dict(cls, data: dict, where: str = "config.json") -> FrameConfig:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object")
        audio = data.get("audio_model") or {}
        text = ModernBertConfig.from_dict(
            data.get("text_model") or PE_TEXT_MODEL, f"{where}: text_model"
        )
        nth = data.get("nth_text_layer", 22)
        _check_nth(nth, text, where)
        return cls(
            codec=CodecEncoderConfig.from_dac(
                audio.get("dac_vae_encoder"), f"{where}: audio_model.dac_vae_encoder"
            ),
            audio_transformer=PeTransformerConfig.from_dict(
                audio.get("audio_transformer"), f"{where}: audio_model.audio_transformer"
            ),
            text_model=text,
            output_dim=int(data.get("output_dim", 1024)),
            nth_text_layer=None if nth is None else int(nth),
        )

    def to_dict(self) -> dict:
        return {
            "audio_model": {
                "dac_vae_encoder": self.codec.to_dac(),
                "audio_transformer": dataclasses.asdict(self.audio_transformer),
            },
            "text_model": dataclasses.asdict(self.text_model),
            "output_dim": self.output_dim,
            "nth_text_layer": self.nth_text_layer,
        }


def _check_nth(nth, text: ModernBertConfig, where: str) -> None:
    if nth is not None and not (isinstance(nth, int) and 0 <= nth <= text.num_hidden_layers):
        raise ValueError(
            f"{where}: nth_text_layer {nth!r} must be in 0..{text.num_hidden_layers} "
            "(text_model.num_hidden_layers) or null"
        )

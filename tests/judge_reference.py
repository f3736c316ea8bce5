"""Tiny configs and transformers reference models for the Judge / PE-A-Frame tests.

Builds transformers' ModernBertModel and PeAudioFrameLevelModel with random weights at test
sizes and renames their state dicts to the release's layouts (perception_models / SAM Audio
names), so the tests go through the same key maps a release checkpoint does.
"""

from __future__ import annotations

import numpy as np
import torch

TEXT = dict(
    vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=4,
    num_attention_heads=4, local_attention=4, global_attn_every_n_layers=3,
    global_rope_theta=160000.0, local_rope_theta=10000.0, pad_token_id=0,
    max_position_embeddings=64,
)  # fmt: skip
PE = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
          max_position_embeddings=100)  # fmt: skip
DAC = dict(encoder_hidden_size=4, downsampling_ratios=[8], hidden_size=16, codebook_size=16,
           codebook_dim=8, sampling_rate=800)  # fmt: skip
HOP = 8


def hf_text_config():
    from transformers import ModernBertConfig

    cfg = dict(TEXT)
    g, loc = cfg.pop("global_rope_theta"), cfg.pop("local_rope_theta")
    cfg["rope_parameters"] = {
        "full_attention": {"rope_type": "default", "rope_theta": g},
        "sliding_attention": {"rope_type": "default", "rope_theta": loc},
    }
    return ModernBertConfig(**cfg, attn_implementation="eager")


def hf_audio_config():
    from transformers import PeAudioEncoderConfig

    pe = dict(PE)
    theta = max(10_000, 2 * pe["max_position_embeddings"])
    return PeAudioEncoderConfig(
        dac_config=dict(DAC),
        head_dim=pe["hidden_size"] // pe["num_attention_heads"],
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        attn_implementation="eager",
        **pe,
    )


def uninitialized(cls, config):
    """`cls(config)` without transformers' weight init (randomize() sets every weight)."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return cls(config)


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (norm weights near 1), so no weight hides behind an init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith(("norm.weight", "alpha", "groupnorm.weight")) or ".norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(noise * (0.3 / max(1, p.shape[-1]) ** 0.5 if p.ndim > 1 else 0.1))
    return module.eval()


def numpy_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def frame_release_state(hf_frame, seed: int = 0) -> dict[str, np.ndarray]:
    """PeAudioFrameLevelModel's weights under perception_models' PE-A-Frame names; the
    bottleneck's unused log-variance half and out_proj get random values."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in numpy_state(hf_frame).items():
        if k.startswith("text_model."):
            out[k] = v
        elif k.startswith("audio_encoder.embedder.dac_encoder."):
            out["audio_model.dac_vae_encoder.encoder." + k.split("dac_encoder.", 1)[1]] = v
        elif k == "audio_encoder.embedder.bottleneck.weight":
            extra = rng.standard_normal(v.shape).astype(np.float32) * 0.1
            out["audio_model.dac_vae_encoder.bottleneck.in_proj.weight"] = np.concatenate(
                [v, extra]
            )
        elif k == "audio_encoder.embedder.bottleneck.bias":
            out["audio_model.dac_vae_encoder.bottleneck.in_proj.bias"] = np.concatenate([v, v])
        elif k.startswith("audio_encoder.embedder.data_proj."):
            out["audio_model.data_proj." + k.rsplit(".", 1)[1]] = v
        elif k == "audio_encoder.patch_embedder.class_embedding":
            out["audio_model.audio_transformer.embeddings.cls_token"] = v
        elif k.startswith("audio_encoder.patch_embedder."):
            out["audio_model.audio_transformer.embeddings." + k.split("patch_embedder.", 1)[1]] = v
        elif k.startswith("audio_encoder."):
            out["audio_model.audio_transformer." + k.split("audio_encoder.", 1)[1]] = v
        elif k.startswith(("text_audio_head.", "audio_head.")):
            out[k.replace("text_audio_head.", "text_head.")] = v
        elif k == "text_audio_logit_scale":
            out["logit_scale"] = v
        elif k == "text_audio_logit_bias":
            out["logit_bias"] = v
        else:
            raise KeyError(k)
    c, d = DAC["codebook_dim"], DAC["codebook_size"]
    out["audio_model.dac_vae_encoder.bottleneck.out_proj.weight"] = (
        rng.standard_normal((d, c, 1)).astype(np.float32) * 0.1
    )
    out["audio_model.dac_vae_encoder.bottleneck.out_proj.bias"] = np.zeros(d, np.float32)
    return out


def frame_config_dict(nth_text_layer: int) -> dict:
    """The release config.json of the tiny PE-A-Frame."""
    return {
        "audio_model": {"dac_vae_encoder": dict(DAC), "audio_transformer": dict(PE)},
        "text_model": dict(TEXT),
        "output_dim": TEXT["hidden_size"],
        "nth_text_layer": nth_text_layer,
    }


def rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-12))


FINETUNE = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=100)  # fmt: skip
CODEC = dict(encoder_dim=4, encoder_rates=[8], latent_dim=16, codebook_dim=8, sample_rate=800)
NTH = 2


def judge_config_dict() -> dict:
    """The release config.json of the tiny Judge."""
    return {
        "audio_codec": dict(CODEC),
        "transformer": dict(PE),
        "text_model": dict(TEXT),
        "finetune_transformer": dict(FINETUNE),
        "nth_text_layer": NTH,
        "bottleneck_dim": 12,
    }


def hf_pe_encoder(pe: dict, seed: int):
    from transformers import PeAudioEncoder, PeAudioEncoderConfig

    cfg = PeAudioEncoderConfig(
        dac_config=dict(DAC),
        head_dim=pe["hidden_size"] // pe["num_attention_heads"],
        rope_parameters={"rope_type": "default", "rope_theta": max(10_000, 2 * pe["max_position_embeddings"])},
        attn_implementation="eager",
        **pe,
    )  # fmt: skip
    return randomize(uninitialized(PeAudioEncoder, cfg), seed)


def pe_transformer_forward(enc, x):
    """transformers' PeAudioEncoder from its patch embedder on, unmasked (as the release
    Judge runs its transformers): (B, T, H) -> (B, T, H)."""
    h, _ = enc.patch_embedder(x, padding_mask=None)
    pos = enc.rotary_emb(h, torch.arange(h.shape[1])[None])
    for layer in enc.layers:
        h = layer(h, attention_mask=None, position_embeddings=pos)
    return enc.output(enc.norm(h))[:, 1:]


def pe_release_names(enc, prefix: str) -> dict[str, np.ndarray]:
    """A PeAudioEncoder's transformer weights under the release's PE-AV names."""
    out = {}
    for k, v in numpy_state(enc).items():
        if k.startswith("embedder."):
            continue
        k = k.replace("patch_embedder.class_embedding", "embeddings.cls_token")
        k = k.replace("patch_embedder.", "embeddings.")
        out[prefix + k] = v
    return out


def dacvae_release_names(enc, prefix: str) -> dict[str, np.ndarray]:
    """transformers' plain DAC encoder + bottleneck as the release's weight-normed DACVAE
    encoder (`{prefix}encoder.block.*`, `{prefix}quantizer.in_proj/out_proj`): v = w,
    g = ||w||; in_proj's unused half and out_proj random."""
    from flax import nnx

    from samaudio_jax.judge.codec_encoder import CodecEncoder
    from samaudio_jax.judge.config import CodecEncoderConfig
    from samaudio_jax.keymaps.codec import encoder_rules
    from samaudio_jax.keymaps.judge import _plain_encoder_rules

    cfg = CodecEncoderConfig.from_release(CODEC)
    ours = nnx.eval_shape(lambda: CodecEncoder(cfg))
    plain = {r.ours: r.release for r in _plain_encoder_rules(ours.encoder, "dac_encoder", "x")}
    state = {
        k[len("embedder.") :]: v for k, v in numpy_state(enc).items() if k.startswith("embedder.")
    }
    out = {}
    for r in encoder_rules(ours.encoder, prefix + "encoder", "x"):
        if r.release.endswith("weight_g"):
            w = state[plain[r.ours[: -len("weight_g")] + "weight_v"]]
            out[r.release] = np.sqrt(np.sum(w * w, axis=(1, 2), keepdims=True))
        else:
            out[r.release] = state[plain[r.ours]]
    rng = np.random.default_rng(5)

    def wn(w):
        return np.sqrt(np.sum(w * w, axis=(1, 2), keepdims=True)), w

    w = np.concatenate(
        [
            state["bottleneck.weight"],
            rng.standard_normal(state["bottleneck.weight"].shape).astype(np.float32) * 0.1,
        ]
    )
    b = np.concatenate([state["bottleneck.bias"], state["bottleneck.bias"]])
    g, v = wn(w)
    out.update({f"{prefix}quantizer.in_proj.weight_g": g, f"{prefix}quantizer.in_proj.weight_v": v,
                f"{prefix}quantizer.in_proj.bias": b})  # fmt: skip
    g, v = wn(
        rng.standard_normal((CODEC["latent_dim"], CODEC["codebook_dim"], 1)).astype(np.float32)
    )
    out.update({f"{prefix}quantizer.out_proj.weight_g": g, f"{prefix}quantizer.out_proj.weight_v": v,
                f"{prefix}quantizer.out_proj.bias": np.zeros(CODEC["latent_dim"], np.float32)})  # fmt: skip
    return out


def composed_judge(ref, mean, std, ids, mask, mix, sep, padding_mask, nth=NTH, hop=HOP):
    """The release's Judge forward pass written with transformers' modules (`ref`: text_model,
    audio, finetune, and torch projections by their release names)."""
    with torch.no_grad():
        text = ref["text_model"](input_ids=ids, attention_mask=mask, output_hidden_states=True)
        text = ref["text_proj1"](text.hidden_states[nth][:, 0])
        emb = ref["audio"].embedder
        wav = torch.cat([mix, sep])[:, None]
        feats = emb.bottleneck(emb.dac_encoder(wav)).transpose(1, 2)
        states = pe_transformer_forward(ref["audio"], emb.data_proj(feats))
        mix_s, sep_s = states.chunk(2)
        audio = ref["cat_audio_proj"](torch.cat([sep_s, mix_s], dim=2))
        text = ref["layer_norm"](ref["text_proj2"](text))[:, None].expand_as(audio)
        joint = ref["proj_audio_and_text"](torch.cat([audio, text], dim=2))
        out = pe_transformer_forward(ref["finetune"], ref["finetune_data_proj"](joint))
        per_frame = ref["head"](out)
        fm = padding_mask[:, ::hop].float()[..., None]
        pooled = (per_frame * fm).sum(1) / fm.sum(1)
        return (pooled * std + mean).numpy()


WORDS = "a the dog bark barks barking car engine speech man woman music guitar loud soft".split()


def write_tokenizer(directory) -> None:
    """A small WordLevel tokenizer.json with ModernBERT's [CLS] ... [SEP] framing (ids fit
    the tiny text model's vocabulary; pad id 0 as TEXT says)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(directory / "tokenizer.json"))


def write_judge_dir(directory, seed: int = 0, **cfg_overrides):
    """A complete tiny release-layout Judge directory with random weights; -> the model."""
    import dataclasses

    from samaudio_jax.judge.config import JudgeConfig
    from samaudio_jax.judge.load import build_judge
    from samaudio_jax.judge.load import write_judge_dir as write

    cfg = dataclasses.replace(JudgeConfig.from_dict(judge_config_dict()), **cfg_overrides)
    model = build_judge(cfg, seed)
    write(model, directory)
    write_tokenizer(directory)
    return model

"""The release's `audio_codec.*` state-dict names <-> the NNX DacVaeCodec's variables.

Key names are given with the `audio_codec.` prefix stripped. The release nests the
DACVAE under `model.` (its wrapper holds `self.model = DACVAE(...)`), so keys read
`model.encoder.block.0.weight_g`, ..., 317 in all for the release's config. Import also
accepts keys without the leading `model.`; export always writes the release's form.

The map, per release name (i = block index, j = residual unit):
  model.encoder.block.0                     encoder.stem
  model.encoder.block.{i+1}.block.{0,1,2}   encoder.blocks[i].res_units[j]
      residual unit .block.{0,1,2,3}        snake1, conv1, snake2, conv2
  model.encoder.block.{i+1}.block.{3,4}     encoder.blocks[i].snake, .down
  model.encoder.block.{n+1}, .{n+2}         encoder.snake, encoder.proj
  model.quantizer.{in_proj,out_proj}        in_proj, out_proj
  model.decoder.model.0                     decoder.stem
  model.decoder.model.{i+1}.block.0 / .1    decoder.blocks[i].snake / .up
      .block.{4,5,8}                        .res_units[0, 1, 2]
      .block.3 / .6                         .wm_raise_conv / .wm_raise_unit (.block.{1,3})
      .block.7 / .11                        .wm_lower_unit (.block.{1,3}) / .wm_lower_conv
  model.decoder.wm_model.encoder_block.pre.{0,1,3}, post.0.lstm, post.2
                                            snake, to_wave, wave_in, lstm, post_conv
  model.decoder.wm_model.msg_processor.msg_processor.weight
  model.decoder.wm_model.decoder_block.pre.0, pre.1.lstm, post.1
                                            pre_conv, lstm, post_conv
"""

from __future__ import annotations

import io

import jax
import numpy as np

from samaudio_jax.codec import dacvae_layers as L
from samaudio_jax.paths import as_path, check_reachable

PREFIX = "model."


def _conv(prefix, layer):
    if isinstance(layer, (L.WNConv1d, L.WNConvTranspose1d)):
        names = ("weight_g", "weight_v", "bias")
    else:
        names = ("weight", "bias")
    return [(f"{prefix}.{n}", getattr(layer, n)) for n in names]


def _snake(prefix, snake):
    return [(f"{prefix}.alpha", snake.alpha)]


def _res_unit(prefix, unit):
    return (
        _snake(f"{prefix}.block.0", unit.snake1)
        + _conv(f"{prefix}.block.1", unit.conv1)
        + _snake(f"{prefix}.block.2", unit.snake2)
        + _conv(f"{prefix}.block.3", unit.conv2)
    )


def _elu_unit(prefix, unit):
    return _conv(f"{prefix}.block.1", unit.conv1) + _conv(f"{prefix}.block.3", unit.conv2)


def _lstm(prefix, lstm):
    out = []
    for k in range(len(lstm.weight_ih)):
        out += [
            (f"{prefix}.weight_ih_l{k}", lstm.weight_ih[k]),
            (f"{prefix}.weight_hh_l{k}", lstm.weight_hh[k]),
            (f"{prefix}.bias_ih_l{k}", lstm.bias_ih[k]),
            (f"{prefix}.bias_hh_l{k}", lstm.bias_hh[k]),
        ]
    return out


def codec_key_map(codec) -> list[tuple[str, object]]:
    """(release key without `audio_codec.`, CodecWeight variable) for every weight."""
    enc, dec = codec.encoder, codec.decoder
    pairs = _conv("model.encoder.block.0", enc.stem)
    for i, block in enumerate(enc.blocks):
        p = f"model.encoder.block.{i + 1}"
        for j, unit in enumerate(block.res_units):
            pairs += _res_unit(f"{p}.block.{j}", unit)
        pairs += _snake(f"{p}.block.3", block.snake) + _conv(f"{p}.block.4", block.down)
    n = len(enc.blocks)
    pairs += _snake(f"model.encoder.block.{n + 1}", enc.snake)
    pairs += _conv(f"model.encoder.block.{n + 2}", enc.proj)
    pairs += _conv("model.quantizer.in_proj", codec.in_proj)
    pairs += _conv("model.quantizer.out_proj", codec.out_proj)
    pairs += _conv("model.decoder.model.0", dec.stem)
    for i, block in enumerate(dec.blocks):
        p = f"model.decoder.model.{i + 1}.block"
        pairs += _snake(f"{p}.0", block.snake) + _conv(f"{p}.1", block.up)
        pairs += _conv(f"{p}.3", block.wm_raise_conv)
        pairs += _res_unit(f"{p}.4", block.res_units[0]) + _res_unit(f"{p}.5", block.res_units[1])
        pairs += _elu_unit(f"{p}.6", block.wm_raise_unit) + _elu_unit(f"{p}.7", block.wm_lower_unit)
        pairs += _res_unit(f"{p}.8", block.res_units[2])
        pairs += _conv(f"{p}.11", block.wm_lower_conv)
    wm = dec.wm_model
    p = "model.decoder.wm_model"
    eb, db = wm.encoder_block, wm.decoder_block
    pairs += _snake(f"{p}.encoder_block.pre.0", eb.snake)
    pairs += _conv(f"{p}.encoder_block.pre.1", eb.to_wave)
    pairs += _conv(f"{p}.encoder_block.pre.3", eb.wave_in)
    pairs += _lstm(f"{p}.encoder_block.post.0.lstm", eb.lstm)
    pairs += _conv(f"{p}.encoder_block.post.2", eb.post_conv)
    pairs += [(f"{p}.msg_processor.msg_processor.weight", wm.msg_processor.weight)]
    pairs += _conv(f"{p}.decoder_block.pre.0", db.pre_conv)
    pairs += _lstm(f"{p}.decoder_block.pre.1.lstm", db.lstm)
    pairs += _conv(f"{p}.decoder_block.post.1", db.post_conv)
    return pairs


def _to_numpy(value, key):
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise ValueError(f"audio_codec.{key}: expected floating weights, got dtype {arr.dtype}")
    return arr


def import_codec_state(codec, state_dict) -> None:
    """Copy a release `audio_codec.*` state dict (prefix stripped; numpy arrays or torch
    tensors) into `codec` in place. Raises ValueError listing missing / unexpected keys or
    the first shape mismatch. Values are stored unchanged (bit-exact re-export)."""
    keys = set(state_dict)
    if keys and not any(k.startswith(PREFIX) for k in keys):
        state_dict = {PREFIX + k: v for k, v in state_dict.items()}
    pairs = codec_key_map(codec)
    want = {k for k, _ in pairs}
    missing, extra = sorted(want - set(state_dict)), sorted(set(state_dict) - want)
    if missing or extra:
        raise ValueError(
            f"audio_codec state dict does not match the codec config: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})"
        )
    for key, var in pairs:
        arr = _to_numpy(state_dict[key], key)
        if arr.shape != tuple(var.shape):
            raise ValueError(
                f"audio_codec.{key}: shape {arr.shape} does not match the codec's "
                f"{tuple(var.shape)} (check codec sizes in the config)"
            )
        var.set_value(jax.device_put(arr))


def export_codec_state(codec) -> dict[str, np.ndarray]:
    """The codec's weights under the release's names (without `audio_codec.`), numpy."""
    return {key: np.asarray(var.get_value()) for key, var in codec_key_map(codec)}


def load_codec_checkpoint(codec, path: str) -> None:
    """Load `audio_codec.*` from a release directory (checkpoint.pt) or a .pt file."""
    check_reachable(path)  # an unreachable bucket is named, not taken for a missing file
    p = as_path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    path = str(p)
    if not p.is_file():
        raise ValueError(f"codec.checkpoint: no such file {path!r}")
    import torch

    sd = torch.load(io.BytesIO(p.read_bytes()), map_location="cpu", weights_only=True)
    sub = {k[len("audio_codec.") :]: v for k, v in sd.items() if k.startswith("audio_codec.")}
    if not sub:
        raise ValueError(f"codec.checkpoint: {path!r} holds no audio_codec.* keys")
    import_codec_state(codec, sub)

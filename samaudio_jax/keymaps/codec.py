"""The DACVAE codec: the release's `audio_codec.*` keys <-> DacVaeCodec's variable paths.

Keys are given with the `audio_codec.` prefix stripped. The release nests the DACVAE under
`model.` (its wrapper holds `self.model = DACVAE(...)`), so keys read
`model.encoder.block.0.weight_g`, ..., 317 in all for the release's config. Every transform
is the identity (both sides keep torch's layouts).

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

The block counts come from the codec object (walked by attribute; nothing is imported).
"""

from __future__ import annotations

from samaudio_jax.keymaps.rules import KeyRule

PREFIX = "model."  # the release wrapper's attribute


def _conv(release: str, ours: str, layer) -> list[KeyRule]:
    names = ("weight_g", "weight_v", "bias") if hasattr(layer, "weight_g") else ("weight", "bias")
    return [KeyRule(f"{release}.{n}", f"{ours}.{n}") for n in names]


def _snake(release: str, ours: str) -> list[KeyRule]:
    return [KeyRule(f"{release}.alpha", f"{ours}.alpha")]


def _res_unit(release: str, ours: str, unit) -> list[KeyRule]:
    return (
        _snake(f"{release}.block.0", f"{ours}.snake1")
        + _conv(f"{release}.block.1", f"{ours}.conv1", unit.conv1)
        + _snake(f"{release}.block.2", f"{ours}.snake2")
        + _conv(f"{release}.block.3", f"{ours}.conv2", unit.conv2)
    )


def _elu_unit(release: str, ours: str, unit) -> list[KeyRule]:
    return _conv(f"{release}.block.1", f"{ours}.conv1", unit.conv1) + _conv(
        f"{release}.block.3", f"{ours}.conv2", unit.conv2
    )


def _lstm(release: str, ours: str, lstm) -> list[KeyRule]:
    out = []
    for k in range(len(lstm.weight_ih)):
        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            out.append(KeyRule(f"{release}.{w}_l{k}", f"{ours}.{w}.{k}"))
    return out


def encoder_rules(enc, release: str = "model.encoder", ours: str = "encoder") -> list[KeyRule]:
    """The encoder half (a dacvae.Encoder): `{release}.block.*` <-> `{ours}.*`."""
    r = _conv(f"{release}.block.0", f"{ours}.stem", enc.stem)
    for i, block in enumerate(enc.blocks):
        p, o = f"{release}.block.{i + 1}", f"{ours}.blocks.{i}"
        for j, unit in enumerate(block.res_units):
            r += _res_unit(f"{p}.block.{j}", f"{o}.res_units.{j}", unit)
        r += _snake(f"{p}.block.3", f"{o}.snake") + _conv(f"{p}.block.4", f"{o}.down", block.down)
    n = len(enc.blocks)
    r += _snake(f"{release}.block.{n + 1}", f"{ours}.snake")
    r += _conv(f"{release}.block.{n + 2}", f"{ours}.proj", enc.proj)
    return r


def codec_rules(codec) -> list[KeyRule]:
    """One rule per weight of `codec` (a DacVaeCodec): release key without `audio_codec.`."""
    dec = codec.decoder
    r = encoder_rules(codec.encoder)
    r += _conv("model.quantizer.in_proj", "in_proj", codec.in_proj)
    r += _conv("model.quantizer.out_proj", "out_proj", codec.out_proj)
    r += _conv("model.decoder.model.0", "decoder.stem", dec.stem)
    for i, block in enumerate(dec.blocks):
        p, o = f"model.decoder.model.{i + 1}.block", f"decoder.blocks.{i}"
        r += _snake(f"{p}.0", f"{o}.snake") + _conv(f"{p}.1", f"{o}.up", block.up)
        r += _conv(f"{p}.3", f"{o}.wm_raise_conv", block.wm_raise_conv)
        r += _res_unit(f"{p}.4", f"{o}.res_units.0", block.res_units[0])
        r += _res_unit(f"{p}.5", f"{o}.res_units.1", block.res_units[1])
        r += _elu_unit(f"{p}.6", f"{o}.wm_raise_unit", block.wm_raise_unit)
        r += _elu_unit(f"{p}.7", f"{o}.wm_lower_unit", block.wm_lower_unit)
        r += _res_unit(f"{p}.8", f"{o}.res_units.2", block.res_units[2])
        r += _conv(f"{p}.11", f"{o}.wm_lower_conv", block.wm_lower_conv)
    wm = dec.wm_model
    p, o = "model.decoder.wm_model", "decoder.wm_model"
    eb, db = wm.encoder_block, wm.decoder_block
    r += _snake(f"{p}.encoder_block.pre.0", f"{o}.encoder_block.snake")
    r += _conv(f"{p}.encoder_block.pre.1", f"{o}.encoder_block.to_wave", eb.to_wave)
    r += _conv(f"{p}.encoder_block.pre.3", f"{o}.encoder_block.wave_in", eb.wave_in)
    r += _lstm(f"{p}.encoder_block.post.0.lstm", f"{o}.encoder_block.lstm", eb.lstm)
    r += _conv(f"{p}.encoder_block.post.2", f"{o}.encoder_block.post_conv", eb.post_conv)
    r.append(KeyRule(f"{p}.msg_processor.msg_processor.weight", f"{o}.msg_processor.weight"))
    r += _conv(f"{p}.decoder_block.pre.0", f"{o}.decoder_block.pre_conv", db.pre_conv)
    r += _lstm(f"{p}.decoder_block.pre.1.lstm", f"{o}.decoder_block.lstm", db.lstm)
    r += _conv(f"{p}.decoder_block.post.1", f"{o}.decoder_block.post_conv", db.post_conv)
    return r

"""The T5 encoder: Hugging Face's tensor names <-> our T5Network's parameter paths.

torch Linear weights are [out, in]; ours are [in, out] with the heads split out of q/k/v
([d_model, heads, d_kv]) and into o ([heads, d_kv, d_model]). Only `encoder.*` and the shared
token embedding are mapped, so a full T5ForConditionalGeneration directory works.
"""

from __future__ import annotations

from samaudio_jax.keymaps.rules import IDENTITY, LINEAR, SPLIT_IN, SPLIT_OUT, KeyRule, expand


def t5_rules(num_layers: int, gated: bool) -> list[KeyRule]:
    """One rule per encoder parameter of a T5 with `num_layers` blocks (gated: wi_0/wi_1)."""
    attn = "encoder.block.{i}.layer.0.SelfAttention"
    ffn = "encoder.block.{i}.layer.1.DenseReluDense"
    rules = [
        KeyRule("shared.weight", "embedding", IDENTITY, aliases=("encoder.embed_tokens.weight",)),
        KeyRule(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            "relative_attention_bias",
        ),
        KeyRule("encoder.final_layer_norm.weight", "final_norm.weight"),
        KeyRule("encoder.block.{i}.layer.0.layer_norm.weight", "blocks.{i}.attn_norm.weight"),
        KeyRule("encoder.block.{i}.layer.1.layer_norm.weight", "blocks.{i}.ffn_norm.weight"),
        *(KeyRule(f"{attn}.{n}.weight", f"blocks.{{i}}.{n}", SPLIT_OUT) for n in ("q", "k", "v")),
        KeyRule(f"{attn}.o.weight", "blocks.{i}.o", SPLIT_IN),
        *(
            KeyRule(f"{ffn}.{n}.weight", f"blocks.{{i}}.{n}", LINEAR)
            for n in (("wi_0", "wi_1") if gated else ("wi",))
        ),
        KeyRule(f"{ffn}.wo.weight", "blocks.{i}.wo", LINEAR),
    ]
    return expand(rules, num_layers)

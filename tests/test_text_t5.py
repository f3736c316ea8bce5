"""The NNX T5 encoder against transformers' T5EncoderModel (torch), and its importer."""

import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel
from transformers.models.t5.modeling_t5 import T5Attention

from samaudio_jax.config_schema import default_config
from samaudio_jax.text import build_text_encoder
from samaudio_jax.text.t5 import relative_position_buckets
from samaudio_jax.text.t5_config import T5EncoderConfig
from samaudio_jax.text.t5_import import load_t5_network, load_t5_text_encoder

WORDS = "a the dog cat barks meows loudly softly rain on roof man speaking car engine".split()


def _tiny_torch_t5(feed_forward_proj="relu", buckets=32, max_distance=128, seed=0):
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=len(WORDS) + 3,
        d_model=32,
        d_kv=8,
        d_ff=48,
        num_layers=3,
        num_heads=4,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=max_distance,
        feed_forward_proj=feed_forward_proj,
        dropout_rate=0.0,
        attn_implementation="eager",
    )
    model = T5EncoderModel(cfg).eval()
    with (
        torch.no_grad()
    ):  # norm weights start at 1: perturb them so that a port ignoring them fails
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def _relative_error(ours, ref):
    return float(np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max())


def _random_batch(rng, vocab, lengths, total):
    ids = rng.integers(0, vocab, size=(len(lengths), total)).astype(np.int64)
    mask = np.arange(total)[None, :] < np.asarray(lengths)[:, None]
    ids[~mask] = 0
    return ids, mask


def test_relative_position_buckets_match_transformers_for_every_distance():
    for buckets, max_distance in [(32, 128), (16, 20), (8, 16)]:
        ours = relative_position_buckets(600, 600, num_buckets=buckets, max_distance=max_distance)
        rel = torch.arange(600)[None, :] - torch.arange(600)[:, None]
        ref = T5Attention._relative_position_bucket(
            rel, bidirectional=True, num_buckets=buckets, max_distance=max_distance
        )
        np.testing.assert_array_equal(ours, ref.numpy())


@pytest.mark.parametrize("ffn,buckets,max_distance", [("relu", 32, 128), ("gated-gelu", 16, 20)])
def test_network_matches_torch_t5_encoder_with_padding(tmp_path, ffn, buckets, max_distance):
    model = _tiny_torch_t5(ffn, buckets, max_distance)
    model.save_pretrained(tmp_path)
    ours = load_t5_network(str(tmp_path))
    ids, mask = _random_batch(np.random.default_rng(1), model.config.vocab_size, [40, 7, 23], 40)
    with torch.no_grad():
        ref = model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask.astype(np.int64))
        ).last_hidden_state.numpy()
    out = ours(jnp.asarray(ids, jnp.int32), jnp.asarray(mask))
    assert out.dtype == jnp.float32 and out.shape == ref.shape
    assert _relative_error(out, ref) <= 1e-5


def test_pytorch_bin_weights_load_like_safetensors(tmp_path):
    model = _tiny_torch_t5("gated-gelu")
    model.save_pretrained(tmp_path / "st")
    os.makedirs(tmp_path / "bin")
    model.config.to_json_file(str(tmp_path / "bin" / "config.json"))
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    a = nnx.to_pure_dict(nnx.state(load_t5_network(str(tmp_path / "st"))))
    b = nnx.to_pure_dict(nnx.state(load_t5_network(str(tmp_path / "bin"))))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _hf_tokenizer():
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def _t5_dir(tmp_path, ffn="relu"):
    model = _tiny_torch_t5(ffn)
    model.save_pretrained(tmp_path)
    hf_tok = _hf_tokenizer()
    hf_tok.save_pretrained(tmp_path)
    return model, hf_tok


PROMPTS = ["a dog barks loudly", "", "rain on the roof and a car engine", "the zebra"]


def test_strings_to_features_match_torch_end_to_end(tmp_path):
    model, hf_tok = _t5_dir(tmp_path)
    cfg = default_config().text
    cfg.kind, cfg.t5_dir = "t5", str(tmp_path)
    enc = build_text_encoder(cfg, rngs=nnx.Rngs(0))
    assert enc.dim == 32 and not enc.trainable
    ids, mask = enc.tokenize(PROMPTS)
    ref_tok = hf_tok(PROMPTS, padding="longest", truncation=True, max_length=512)
    np.testing.assert_array_equal(ids, np.asarray(ref_tok["input_ids"]))
    np.testing.assert_array_equal(mask, np.asarray(ref_tok["attention_mask"], bool))
    assert mask[1].sum() == 1  # "" is the single token </s>
    with torch.no_grad():
        ref = model(
            input_ids=torch.tensor(ref_tok["input_ids"]),
            attention_mask=torch.tensor(ref_tok["attention_mask"]),
        ).last_hidden_state.numpy()
    feats, fmask = enc.encode(PROMPTS)
    feats = np.asarray(feats)
    assert _relative_error(feats[fmask], ref[fmask]) <= 1e-5
    assert np.all(feats[~fmask] == 0.0)


def test_frozen_encoder_exposes_no_params_and_passes_no_gradient(tmp_path):
    _t5_dir(tmp_path)
    enc = load_t5_text_encoder(str(tmp_path))
    assert len(jax.tree_util.tree_leaves(nnx.state(enc, nnx.Param))) == 0
    ids, mask = enc.tokenize(PROMPTS)
    graphdef, state = nnx.split(enc)
    grads = jax.grad(lambda st: nnx.merge(graphdef, st)(ids, mask).sum())(state)
    leaves = jax.tree_util.tree_leaves(grads)
    assert len(leaves) > 0 and all(float(jnp.abs(g).max()) == 0.0 for g in leaves)


def test_bucket_length_pads_to_a_multiple(tmp_path):
    _t5_dir(tmp_path)
    enc = load_t5_text_encoder(str(tmp_path), bucket_length=8)
    ids, mask = enc.tokenize(["a dog", "rain on the roof and a car engine the cat"])
    assert ids.shape == (2, 16) and mask.sum(1).tolist() == [3, 11]


def test_overlong_prompt_is_truncated_with_a_warning(tmp_path):
    _, hf_tok = _t5_dir(tmp_path)
    enc = load_t5_text_encoder(str(tmp_path), max_length=6)
    long = "a dog barks loudly on the roof in the rain"
    with pytest.warns(UserWarning, match=r"texts\[1\].*truncated"):
        ids, mask = enc.tokenize(["a cat", long])
    ref = hf_tok([long], truncation=True, max_length=6)["input_ids"][0]
    assert ids.shape == (2, 6) and ids[1].tolist() == ref and ids[1, -1] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.tokenize(["a cat"])  # short prompts do not warn


def test_directory_without_weights_or_tokenizer_is_rejected(tmp_path):
    model = _tiny_torch_t5()
    model.config.to_json_file(str(tmp_path / "config.json"))
    with pytest.raises(FileNotFoundError, match="no T5 weights"):
        load_t5_text_encoder(str(tmp_path))
    model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_t5_text_encoder(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_t5_text_encoder(str(tmp_path / "missing"))


def test_unsupported_model_type_or_activation_is_rejected(tmp_path):
    _t5_dir(tmp_path)
    path = tmp_path / "config.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type.*'bert'"):
        load_t5_text_encoder(str(tmp_path))
    with pytest.raises(ValueError, match="feed_forward_proj"):
        T5EncoderConfig(feed_forward_proj="gated-swish").validate()


def test_bfloat16_compute_stays_close_to_float32(tmp_path):
    _t5_dir(tmp_path, "gated-gelu")
    ids = jnp.asarray([[3, 4, 5, 1, 0], [6, 1, 0, 0, 0]], jnp.int32)
    mask = ids != 0
    f32 = load_t5_network(str(tmp_path))(ids, mask)
    bf16 = load_t5_network(str(tmp_path), dtype="bfloat16")(ids, mask)
    assert bf16.dtype == jnp.float32
    assert 0.0 < _relative_error(bf16, np.asarray(f32)) <= 5e-2


def test_t5_kind_without_a_directory_names_the_field():
    cfg = default_config().text
    cfg.kind, cfg.t5_dir = "t5", ""
    with pytest.raises(ValueError, match="text.t5_dir"):
        build_text_encoder(cfg, rngs=nnx.Rngs(0))

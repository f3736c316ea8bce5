"""The whole Judge on random weights equals a composition of transformers' references
(ModernBertModel read at nth_text_layer, PeAudioEncoder's DAC encoder and transformer) and
torch projections written out below, on a padded batch; the release-layout state dict
imports with every key used and exports bit for bit."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from samaudio_jax.judge.config import JudgeConfig
from samaudio_jax.judge.judge import JudgeModel
from samaudio_jax.judge.load import export_judge_state, import_judge_state
from samaudio_jax.judge.weights import shell
from tests import judge_reference as R

transformers = pytest.importorskip("transformers")
TOL = 1e-4


def _linear(din, dout, bias, g):
    lin = torch.nn.Linear(din, dout, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(dout, din, generator=g) * din**-0.5)
        if bias:
            lin.bias.copy_(torch.randn(dout, generator=g) * 0.1)
    return lin


@pytest.fixture(scope="module")
def reference():
    g = torch.Generator().manual_seed(7)
    cfg = R.judge_config_dict()
    h, bn, ft, text_h = (
        R.PE["hidden_size"],
        cfg["bottleneck_dim"],
        R.FINETUNE["hidden_size"],
        R.TEXT["hidden_size"],
    )
    ref = torch.nn.ModuleDict(
        dict(
            text_model=R.randomize(
                R.uninitialized(transformers.ModernBertModel, R.hf_text_config()), 1
            ),
            audio=R.hf_pe_encoder(R.PE, 11),  # DAC encoder + data_proj + transformer
            finetune=R.hf_pe_encoder(R.FINETUNE, 12),  # its transformer only
            cat_audio_proj=_linear(2 * h, bn, True, g),
            text_proj1=_linear(text_h, h, False, g),
            text_proj2=_linear(h, bn, True, g),
            layer_norm=torch.nn.LayerNorm(bn),
            proj_audio_and_text=_linear(2 * bn, bn, True, g),
            finetune_data_proj=_linear(bn, ft, True, g),
            head=_linear(ft, 4, False, g),
        )
    ).eval()
    with torch.no_grad():
        ref["layer_norm"].weight.copy_(1 + 0.1 * torch.randn(bn, generator=g))
        ref["layer_norm"].bias.copy_(0.1 * torch.randn(bn, generator=g))
    mean, std = torch.randn(4, generator=g), 1 + torch.rand(4, generator=g)
    state = {f"text_model.{k}": v for k, v in R.numpy_state(ref["text_model"]).items()}
    state.update(R.dacvae_release_names(ref["audio"], "audio_codec."))
    state.update(R.pe_release_names(ref["audio"], "transformer."))
    state.update(R.pe_release_names(ref["finetune"], "finetune_transformer."))
    state["data_proj.weight"] = ref["audio"].embedder.data_proj.weight.detach().numpy()
    state["data_proj.bias"] = ref["audio"].embedder.data_proj.bias.detach().numpy()
    for name in ("cat_audio_proj", "text_proj1", "text_proj2", "layer_norm", "proj_audio_and_text",
                 "finetune_data_proj", "head"):  # fmt: skip
        state.update({f"{name}.{k}": v for k, v in R.numpy_state(ref[name]).items()})
    state["mean"], state["std"] = mean.numpy(), std.numpy()
    return ref, mean, std, state


def _batch():
    rng = np.random.default_rng(1)
    n, valid = R.HOP * 12, R.HOP * 7
    mix = rng.standard_normal((2, n)).astype(np.float32) * 0.5
    sep = mix * rng.uniform(0.2, 1.0, (2, 1)).astype(np.float32)
    mix[1, valid:] = sep[1, valid:] = 0.0
    pad = np.ones((2, n), bool)
    pad[1, valid:] = False
    ids = rng.integers(1, R.TEXT["vocab_size"], (2, 9))
    tmask = np.ones((2, 9), np.int64)
    tmask[0, 5:] = 0
    return ids, tmask, mix, sep, pad


def _judge(state, **overrides):
    cfg = dataclasses.replace(JudgeConfig.from_dict(R.judge_config_dict()), **overrides)
    model = shell(lambda: JudgeModel(cfg, rngs=nnx.Rngs(0)))
    import_judge_state(model, state, "release judge")
    return model


@nnx.jit
def _scores(model, ids, tmask, mix, sep, pad):
    return model(ids, tmask, mix, sep, pad)


def test_judge_equals_reference_composition(reference):
    ref, mean, std, state = reference
    ids, tmask, mix, sep, pad = _batch()
    want = R.composed_judge(
        ref, mean, std, *(torch.from_numpy(a) for a in (ids, tmask, mix, sep, pad))
    )
    got = _scores(_judge(state), *(jnp.asarray(a) for a in (ids, tmask, mix, sep, pad)))
    assert got.shape == (2, 4)
    assert R.rel_err(got, want) <= TOL


def test_mask_padding_makes_scores_independent_of_padding(reference):
    *_, state = reference
    ids, tmask, mix, sep, pad = _batch()
    noisy_mix, noisy_sep = mix.copy(), sep.copy()  # item 1's padding filled with noise
    noise = np.random.default_rng(2).standard_normal(noisy_mix[1, R.HOP * 7 :].shape)
    noisy_mix[1, R.HOP * 7 :] = noise
    noisy_sep[1, R.HOP * 7 :] = -noise
    clean = [jnp.asarray(a) for a in (ids, tmask, mix, sep, pad)]
    noisy = [jnp.asarray(a) for a in (ids, tmask, noisy_mix, noisy_sep, pad)]
    masked = _judge(state, mask_padding=True)  # one compilation, two calls
    assert R.rel_err(_scores(masked, *noisy)[1], _scores(masked, *clean)[1]) <= TOL
    release = _judge(state)  # the release's forward: its codec and transformers see padding
    assert R.rel_err(_scores(release, *noisy)[1], _scores(release, *clean)[1]) > 1e-3


def test_import_uses_every_key_and_export_is_bit_exact(reference):
    *_, state = reference
    model = _judge(state)
    back = export_judge_state(model)
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    with pytest.raises(KeyError, match="unexpected key.*'extra.weight'"):
        _judge({**state, "extra.weight": np.zeros(2, np.float32)})
    with pytest.raises(KeyError, match="missing key 'head.weight'"):
        _judge({k: v for k, v in state.items() if k != "head.weight"})

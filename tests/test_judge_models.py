"""The Judge's building blocks against transformers' independent implementations, random
weights, float32, padded batches: ModernBERT (every hidden state), the PE-Audio encoder
(DAC encoder included: the project's DACVAE encoder is that network) and PE-A-Frame's
frame-level logits."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from samaudio_jax.judge.config import FrameConfig, ModernBertConfig
from samaudio_jax.judge.frame import FrameModel
from samaudio_jax.judge.load import export_frame_state, import_frame_state
from samaudio_jax.judge.modernbert import ModernBert
from samaudio_jax.judge.weights import import_state, shell
from samaudio_jax.keymaps.judge import modernbert_rules
from tests import judge_reference as R

transformers = pytest.importorskip("transformers")
TOL = 1e-4


def _text_batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, R.TEXT["vocab_size"], (2, 11), generator=g)
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, 6:] = 0  # padded, and longer than the local window (4)
    return ids, mask


def test_modernbert_matches_transformers_at_every_layer():
    ref = R.randomize(R.uninitialized(transformers.ModernBertModel, R.hf_text_config()), 1)
    ids, mask = _text_batch()
    with torch.no_grad():
        out = ref(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    cfg = ModernBertConfig.from_dict(R.TEXT)
    ours = shell(lambda: ModernBert(cfg, rngs=nnx.Rngs(0)))
    import_state(ours, R.numpy_state(ref), modernbert_rules(cfg, "", ""), "ModernBertModel")
    jids, jmask = jnp.asarray(ids.numpy()), jnp.asarray(mask.numpy())

    @nnx.jit
    def run(m, ids, mask):  # one compilation for every state compared
        return m(ids, mask), [m.hidden_state(ids, mask, n) for n in (1, 3)]

    final, states = run(ours, jids, jmask)
    assert R.rel_err(final, out.last_hidden_state.numpy()) <= TOL
    for n, got in zip((1, 3), states):  # hidden_states[n]: no final norm
        assert R.rel_err(got, out.hidden_states[n].numpy()) <= TOL, n


@pytest.fixture(scope="module")
def frame_pair():
    from transformers import PeAudioConfig, PeAudioFrameLevelModel

    cfg = PeAudioConfig(
        text_config=R.hf_text_config().to_dict(), audio_config=R.hf_audio_config().to_dict()
    )
    ref = R.randomize(R.uninitialized(PeAudioFrameLevelModel, cfg), 2)
    ref.config.text_config._attn_implementation = "eager"
    ref.config.audio_config._attn_implementation = "eager"
    # transformers reads the text model's last (normed) state: nth_text_layer None here
    fcfg = FrameConfig.from_dict(R.frame_config_dict(None))
    ours = shell(lambda: FrameModel(fcfg, rngs=nnx.Rngs(0)))
    state = R.frame_release_state(ref)
    import_frame_state(ours, state, "PeAudioFrameLevelModel")
    return ref, ours, state


def _audio_batch():
    rng = np.random.default_rng(0)
    n, valid = R.HOP * 12, R.HOP * 7
    wav = rng.standard_normal((2, n)).astype(np.float32) * 0.5
    wav[1, valid:] = 0.0
    pad = np.ones((2, n), bool)
    pad[1, valid:] = False
    return wav, pad


def test_pe_audio_encoder_and_frame_logits_match_transformers(frame_pair):
    ref, ours, state = frame_pair
    wav, pad = _audio_batch()
    ids, mask = _text_batch()
    with torch.no_grad():
        enc = ref.audio_encoder(input_values=torch.from_numpy(wav)[:, None],
                                padding_mask=torch.from_numpy(pad))  # fmt: skip
        out = ref(input_ids=ids, attention_mask=mask, input_values=torch.from_numpy(wav)[:, None],
                  padding_mask=torch.from_numpy(pad))  # fmt: skip

    @nnx.jit
    def run(m, ids, mask, wav, frame_mask):  # one compilation for both outputs
        features = m.encode(wav)
        return m.audio_states(features, frame_mask), m(ids, mask, features, frame_mask)

    states, got = run(ours, jnp.asarray(ids.numpy()), jnp.asarray(mask.numpy()),
                      jnp.asarray(wav), jnp.asarray(pad[:, :: R.HOP]))  # fmt: skip
    # the PE-Audio encoder (DAC encoder, patch embedder, transformer)
    assert states.shape == tuple(enc.last_hidden_state.shape)
    assert R.rel_err(states, enc.last_hidden_state.numpy()) <= TOL
    # frame-level logits: transformers gives every (audio, text) pair; ours each item's own
    pairwise = out.logits_audio_text.numpy()
    assert R.rel_err(got, np.stack([pairwise[0, 0], pairwise[1, 1]])) <= TOL


def test_frame_export_is_exact(frame_pair):
    _, ours, state = frame_pair
    back = export_frame_state(ours)
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k

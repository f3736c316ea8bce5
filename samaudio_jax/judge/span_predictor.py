"""`SpanPredictor`: a loaded PE-A-Frame and its tokenizer, turning (audio, description) into
the release's automatic "+" spans.

    predictor = SpanPredictor.load("path/to/pe-a-frame")
    spans = predictor.predict([wave], ["a dog barking"], sample_rate=48_000)
    # [[("+", 1.24, 2.36), ...]]

Each waveform is resampled to the model's codec rate and encoded by the model's own DACVAE
encoder (the release passes SAM Audio's codec features instead: the same encoder, so the
separation codec does not matter here); frames whose sigmoid logit exceeds `threshold`
(the release's 0.3) form the spans. Items run one at a time (one compilation per length).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.judge.config import FrameConfig
from samaudio_jax.judge.frame import THRESHOLD, FrameModel, spans_from_logits
from samaudio_jax.judge.load import CONFIG_FILE, load_frame, read_config_json
from samaudio_jax.judge.processor import AudioPreparer, TextTokenizer, text_limit
from samaudio_jax.paths import PathLike


@nnx.jit
def _logits(model, input_ids, attention_mask, wav):
    features = model.encode(wav)
    return model(input_ids, attention_mask, features, None)


class SpanPredictor:
    def __init__(self, model: FrameModel, tokenizer: TextTokenizer, threshold: float = THRESHOLD):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold: expected a probability in (0, 1), got {threshold}")
        self.model, self.tokenizer, self.threshold = model, tokenizer, float(threshold)
        c = model.cfg.codec
        self.audio = AudioPreparer(c.sample_rate, c.hop_length)

    @classmethod
    def load(cls, directory: PathLike, threshold: float = THRESHOLD) -> SpanPredictor:
        cfg = FrameConfig.from_dict(read_config_json(directory), f"{directory}/{CONFIG_FILE}")
        tok = TextTokenizer.from_dir(
            directory, text_limit(cfg.text_model), cfg.text_model.pad_token_id
        )
        return cls(load_frame(directory), tok, threshold)

    def frame_logits(self, wave: np.ndarray, description: str, sample_rate: int, where: str):
        """One item's (T,) logits at the model's hop, and its valid frame count."""
        wav = self.audio.load(wave, sample_rate, where)
        frames = -(-wav.shape[0] // self.audio.hop_length)
        values, _ = self.audio.batch([wav])
        ids, mask = self.tokenizer([description], where=f"{where}: description")
        logits = _logits(self.model, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(values))
        return np.asarray(logits[0]), frames

    def predict(
        self, waves: Sequence[np.ndarray], descriptions: Sequence[str], sample_rate: int
    ) -> list[list[tuple[str, float, float]]]:
        if len(waves) != len(descriptions):
            raise ValueError(
                f"descriptions: expected one per waveform ({len(waves)}), got {len(descriptions)}"
            )
        out = []
        for i, (wave, text) in enumerate(zip(waves, descriptions)):
            logits, frames = self.frame_logits(wave, text, sample_rate, f"audios[{i}]")
            c = self.model.cfg.codec
            spans = spans_from_logits(logits, frames, c.hop_length, c.sample_rate, self.threshold)
            duration = len(wave) / sample_rate
            out.append([("+", s, min(e, duration)) for s, e in spans if s < duration])
        return out

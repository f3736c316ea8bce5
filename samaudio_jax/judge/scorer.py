"""`JudgeScorer`: a loaded Judge and its processor, scoring batches of separations.

    judge = JudgeScorer.load("path/to/sam-audio-judge")   # config.json, weights, tokenizer
    scores = judge.score(mixtures, separated, descriptions, sample_rate=48_000)
    scores["overall"]  # (B,) numpy; also "recall", "precision", "faithfulness"

Inputs are split into batches of `max_batch`; each batch is padded to its longest item (as
the release's processor does) and run by one jitted forward pass (one compilation per
distinct padded shape).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from samaudio_jax.judge.judge import SCORES, JudgeModel
from samaudio_jax.judge.load import load_judge
from samaudio_jax.judge.processor import JudgeProcessor, TextTokenizer, text_limit
from samaudio_jax.paths import PathLike


@nnx.jit
def _forward(model, input_ids, attention_mask, input_values, separated_values, padding_mask):
    return model(input_ids, attention_mask, input_values, separated_values, padding_mask)


class JudgeScorer:
    def __init__(self, model: JudgeModel, processor: JudgeProcessor, max_batch: int = 8):
        if max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1, got {max_batch}")
        self.model, self.processor, self.max_batch = model, processor, int(max_batch)

    @classmethod
    def load(cls, directory: PathLike, max_batch: int = 8) -> JudgeScorer:
        """The model directory's config.json, weights and tokenizer.json (the tokenizer is
        checked first: a directory without one fails before the weights are read)."""
        from samaudio_jax.judge.config import JudgeConfig
        from samaudio_jax.judge.load import CONFIG_FILE, read_config_json

        cfg = JudgeConfig.from_dict(read_config_json(directory), f"{directory}/{CONFIG_FILE}")
        tokenizer = TextTokenizer.from_dir(
            directory, text_limit(cfg.text_model), cfg.text_model.pad_token_id
        )
        return cls.from_model(load_judge(directory), tokenizer, max_batch)

    @classmethod
    def from_model(cls, model: JudgeModel, tokenizer: TextTokenizer, max_batch: int = 8):
        c = model.cfg.audio_codec
        return cls(model, JudgeProcessor(tokenizer, c.sample_rate, c.hop_length), max_batch)

    @property
    def sample_rate(self) -> int:
        return self.model.cfg.audio_codec.sample_rate

    def score(
        self,
        mixtures: Sequence[np.ndarray],
        separated: Sequence[np.ndarray],
        descriptions: Sequence[str],
        sample_rate: int,
    ) -> dict[str, np.ndarray]:
        """Mono (or (channels, N)) waveforms at `sample_rate` -> {score name: (B,)}."""
        out = []
        for start in range(0, len(mixtures), self.max_batch):
            sl = slice(start, start + self.max_batch)
            batch = self.processor(descriptions[sl], mixtures[sl], separated[sl], sample_rate)
            out.append(np.asarray(_forward(self.model, *(jnp.asarray(batch[k]) for k in (
                "input_ids", "attention_mask", "input_values", "separated_values",
                "padding_mask")))))  # fmt: skip
        if not out:
            raise ValueError("mixtures: expected at least one")
        scores = np.concatenate(out)
        return {name: scores[:, i] for i, name in enumerate(SCORES)}

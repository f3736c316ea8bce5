"""The ideal-ratio-mask ceiling in the codec's domain: a target and an interferer in
different DCT bins are recovered almost exactly, one sharing the target's bins is not; the
summary and table report the ceiling per category next to the model's score."""

from __future__ import annotations

import numpy as np

from samaudio_jax.codec.frames import FrameDCTCodec
from samaudio_jax.eval import evaluate as ev


def _mixture(freq_other: float, category: str, seed: int) -> ev.Mixture:
    t = np.arange(4096) / 8000
    target = (0.1 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    rng = np.random.default_rng(seed)
    if freq_other:
        other = 0.1 * np.sin(2 * np.pi * freq_other * t + rng.uniform(0, 6))
    else:
        other = 0.1 * rng.normal(size=t.shape)
    mix = (target + other).astype(np.float32)
    return ev.Mixture(mix, target, category, category, f"{category}{seed}")


class MixtureBack:
    """Returns the mixture (SI-SDRi 0); has the codec the ceiling is measured in."""

    codec = FrameDCTCodec(8000, 128, latent_scale=np.linspace(0.5, 2, 128))

    def separate(self, audios, descriptions, key=None, max_batch=8):
        return type("R", (), {"target": list(audios)})()


def test_irm_ceiling_per_category():
    mixtures = [_mixture(3000.0, "tones", s) for s in range(3)]
    mixtures += [_mixture(0.0, "noise", s) for s in range(3)]
    estimates = ev.irm_estimates(MixtureBack.codec, mixtures[:1])
    scores = ev.score([mixtures[0].target], estimates, [mixtures[0].mixture])
    assert scores["si_sdri"][0] > 15  # disjoint bins: the mask separates them
    summary = ev.evaluate(MixtureBack(), mixtures, crop={"segment_seconds": 0.512})
    tones, noise = summary["per_category"]["tones"], summary["per_category"]["noise"]
    assert tones["irm_si_sdri_median"] > 15
    assert 0 < noise["irm_si_sdri_median"] < tones["irm_si_sdri_median"]
    assert abs(summary["overall"]["si_sdri_median"]) < 1e-6 and summary["overall"]["of_irm"] == 0
    assert summary["items"][0]["irm_si_sdri"] > 15
    table = ev.format_table({k: v for k, v in summary.items() if k != "crop_policy"})
    assert "IRM SI-SDRi med" in table and "% of IRM" in table

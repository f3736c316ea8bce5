"""Golden outputs of `separate()`: the cases, and the script that writes them.

The cases cover what `separate` does on its way from inputs to results: a padded batch of
short items of different lengths (one with "+"/"-" spans, one with video features), ranked
candidates, and long items separated in chunks and cross-faded, all with fixed seeds on the
tiny config's random weights (model seed 3). tests/test_separate_golden.py runs them and
compares with tests/data/separate_golden.npz, written before separate() was split into
stages, so a refactor that changes any result shows.

Write anew (only when a result is meant to change, and say why in the commit):
  PYTHONPATH=. python tests/separate_golden.py
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # as tests/conftest.py: the CPU, whatever else is installed
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "separate_golden.npz")
OPTS = dict(solver="euler", steps=2, cache_dir=None)
FIELDS = ("target", "residual", "padded_masks", "anchor_alignments", "scores", "chosen")


def separator():
    from configs.tiny import get_config
    from samaudio_jax.sample import loading

    config = get_config()
    config.model.padding_aware_groupnorm = True
    return loading.build_separator(config, seed=3)


def cases():
    """name -> (audios, descriptions, spans, video_features, keyword arguments)."""
    rng = np.random.default_rng(11)

    def clip(n):
        return (rng.normal(size=n) * 0.3).astype(np.float32)

    short = [clip(n) for n in (700, 1100, 1500)]
    video = rng.normal(size=(48, 69)).astype(np.float32)  # 1100 samples / hop 16 -> 69 frames
    return {
        "batch": (
            short,
            ["a dog", "rain on a roof", "a cat"],
            [[("+", 0.01, 0.05), ("-", 0.06, 0.08)], None, [("+", 0.1, 0.15)]],
            [None, video, None],
            dict(key=jax.random.key(7), max_batch=4),
        ),
        "candidates": (
            short[:2],
            ["a dog", "a bird"],
            [[("+", 0.0, 0.04)], [("+", 0.05, 0.1), ("+", 0.11, 0.12)]],
            None,
            dict(key=jax.random.key(5), candidates=3),
        ),
        "long": (
            [clip(5000), short[0], clip(3000)],
            ["rain", "a dog", "wind"],
            [[("+", 0.2, 0.4)], None, None],
            None,
            dict(key=jax.random.key(9), chunk_seconds=0.236, overlap_seconds=0.05, max_batch=2),
        ),
    }


def run_case(sep, case):
    from samaudio_jax.sample.separate import separate

    audios, descriptions, spans, video, kw = case
    return separate(
        sep.model, sep.codec, sep.text_encoder, audios, descriptions, spans, video,
        **{**OPTS, **kw},
    )  # fmt: skip


def flatten(name: str, result) -> dict[str, np.ndarray]:
    """One case's result as named arrays: `{case}/{field}/{item}`."""
    out = {}
    for field in FIELDS:
        for i, value in enumerate(getattr(result, field)):
            if value is not None:
                out[f"{name}/{field}/{i}"] = np.asarray(value)
    return out


def main() -> None:
    sep = separator()
    arrays = {}
    for name, case in cases().items():
        arrays.update(flatten(name, run_case(sep, case)))
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {len(arrays)} arrays to {GOLDEN}")


if __name__ == "__main__":
    main()

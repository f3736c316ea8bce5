"""Automatic spans for `separate(..., predict_spans=predictor)`: inputs given without spans
get the "+" spans a PE-A-Frame `SpanPredictor` (samaudio_jax.judge.span_predictor) finds for
their description, as the release's `separate(..., predict_spans=True)` does when no anchors
are given. Inputs with spans keep them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fill_spans(
    predictor,
    waves: Sequence[np.ndarray],
    sample_rate: int,
    descriptions: Sequence[str],
    spans: Sequence,
) -> list:
    """`spans` with every None / empty entry replaced by the predictor's "+" spans."""
    todo = [i for i, s in enumerate(spans) if not s]
    if predictor is None or not todo:
        return list(spans)
    found = predictor.predict(
        [waves[i] for i in todo], [descriptions[i] for i in todo], sample_rate
    )
    out = list(spans)
    for i, predicted in zip(todo, found):
        out[i] = predicted
    return out

"""SeparateOptions: every knob of one `separate` call, checked and resolved against the
model in one place (`resolve`), frozen so that no stage can change what another saw.

A new option is one field here (with its default and a line of doc), a check in `_check`
if its values are limited, and the stage that reads it; `separate(..., name=value)` and
`Separator.separate` pass it through unchanged. `from_config` reads the defaults a
checkpoint's config sets (config.sample, model.prediction, train.sigma_min); a field the
config does not name keeps the default given here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax
import numpy as np

from samaudio_jax.sample import consistency, rankers, solvers


@dataclasses.dataclass(frozen=True)
class SeparateOptions:
    """`steps` / `step_size` set the fixed-step grid (step_size wins; the release uses
    midpoint with step_size 2/32); adaptive solvers ("tsit5", "dopri5") use rtol / atol.
    `padding_aware` None = the model's config.model.padding_aware_groupnorm; `prediction`
    None = the model's (`velocity` for the release; `clean` converts the x1 estimate to a
    velocity); `ranker` None = SoundActivityRanker. Inputs longer than `chunk_seconds`
    (None: never) are chunked with `overlap_seconds` cross-fades and `progress(done, total)`
    is called as chunks finish. `cache_dir`: the persistent compilation cache for the call
    (compile_cache.py; "default", a folder, or None / "none" = off). `schedule` spaces the
    `steps` grid (solvers.time_grid: uniform | late | early). `mixture_consistency` makes
    each (target, residual) consistent with its mixture after decoding (sample/consistency.py:
    none | project | ratio | wiener). `predict_spans`: a judge.span_predictor.SpanPredictor
    (PE-A-Frame) that gives "+" spans to inputs without (sample/span_prediction.py)."""

    solver: str = "midpoint"
    steps: int | None = 16
    step_size: float | None = None
    candidates: int = 1
    ranker: rankers.Ranker | None = None
    padding_aware: bool | None = None
    prediction: str | None = None
    sigma_min: float = 0.0
    rtol: float = 1e-4
    atol: float = 1e-4
    mesh: jax.sharding.Mesh | None = None
    max_batch: int = 8
    chunk_seconds: float | None = 30.0
    overlap_seconds: float = 2.0
    progress: Callable[[int, int], None] | None = None
    cache_dir: str | os.PathLike | None = "default"
    schedule: str = "uniform"
    mixture_consistency: str = "none"
    predict_spans: object | None = None

    @classmethod
    def from_config(cls, config) -> SeparateOptions:
        """The sampling defaults of an experiment config; absent fields keep the defaults
        above (a release's config.json carries no `sample` section)."""
        s = config.get("sample", {})
        names = (
            "solver",
            "steps",
            "schedule",
            "candidates",
            "chunk_seconds",
            "overlap_seconds",
            "max_batch",
            "mixture_consistency",
        )
        values = {name: s[name] for name in names if name in s}
        cache = s.get("compilation_cache_dir", "")
        if cache:  # "" = the default folder
            values["cache_dir"] = None if cache == "none" else cache
        if "prediction" in config.get("model", {}):
            values["prediction"] = config.model.prediction
        if "sigma_min" in config.get("train", {}):
            values["sigma_min"] = config.train.sigma_min
        return cls(**values)

    def replace(self, **changes) -> SeparateOptions:
        """A copy with `changes`; an unknown name is refused naming it."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(
                f"separate: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **changes)

    def resolve(self, model) -> SeparateOptions:
        """Checked, with the model's defaults and the default ranker filled in."""
        self._check()
        model_aware = bool(_model_flag(model, "padding_aware_groupnorm", False))
        padding_aware = model_aware if self.padding_aware is None else bool(self.padding_aware)
        if padding_aware and not model_aware:
            raise ValueError(
                "padding_aware=True needs a model built with "
                "config.model.padding_aware_groupnorm=True (its GroupNorm must skip padded frames)"
            )
        prediction = self.prediction or _model_flag(model, "prediction", "velocity")
        if prediction not in ("velocity", "clean"):
            raise ValueError(f"prediction: expected 'velocity' or 'clean', got {prediction!r}")
        return dataclasses.replace(
            self,
            padding_aware=padding_aware,
            prediction=prediction,
            ranker=self.ranker or rankers.SoundActivityRanker(),
        )

    def _check(self) -> None:
        solvers.check_solver(self.solver)
        if self.candidates < 1:
            raise ValueError(f"candidates: expected >= 1, got {self.candidates}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1, got {self.max_batch}")
        consistency.check_mode(self.mixture_consistency, "mixture_consistency")
        self.grid()  # a fixed-step solver needs steps or step_size; a known schedule

    def grid(self) -> np.ndarray:
        """The fixed-step time grid; unused (two zeros) for adaptive solvers."""
        if self.solver not in solvers.FIXED_STEP_SOLVERS:
            return np.zeros(2, np.float32)
        if self.step_size is not None:
            return solvers.step_size_grid(self.step_size)
        if self.steps is not None:
            return solvers.time_grid(self.steps, self.schedule)
        raise ValueError(f"solver {self.solver!r} needs `steps` or `step_size`")

    def jit_options(self) -> dict:
        """The options the jitted separation is specialised on (its static arguments)."""
        return dict(
            solver=self.solver,
            candidates=self.candidates,
            padding_aware=self.padding_aware,
            prediction=self.prediction,
            sigma_min=float(self.sigma_min),
            rtol=float(self.rtol),
            atol=float(self.atol),
        )

    def chunk_samples(self, sample_rate: int) -> int | None:
        """Inputs longer than this many samples are separated in chunks (None: never)."""
        if self.chunk_seconds is None:
            return None
        return int(round(self.chunk_seconds * sample_rate))


def _model_flag(model, name: str, default):
    transformer = getattr(model, "transformer", None)
    return getattr(transformer, name, getattr(model, name, default))

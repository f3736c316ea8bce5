"""Held-out evaluation: deterministic mixtures from a test split, separated with the
separator's own sampler settings, scored with SI-SDR, SI-SDRi and SDR per category.

A mixture is one test clip (the target, prompted by its description) plus one clip with
a different description at an SNR drawn from config.data.snr_db, both scaled to
config.data.target_rms_db first. The same seed gives the same mixtures.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from samaudio_jax.eval.metrics import sdr, si_sdr, si_sdr_improvement
from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import as_path

EVAL_SEED = 1234


@dataclasses.dataclass
class Mixture:
    mixture: np.ndarray
    target: np.ndarray
    description: str
    category: str
    id: str


def _rms_scaled(x: np.ndarray, rms_db: float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    rms = np.sqrt(np.mean(x**2)) + 1e-8
    return (x * (10 ** (rms_db / 20) / rms)).astype(np.float32)


def heldout_mixtures(data_dir, data_config, num: int, seed: int = EVAL_SEED) -> list[Mixture]:
    """`num` mixtures from data_dir's test split (deterministic from `seed`)."""
    from samaudio_jax.data.pipeline import open_split

    cfg = data_config.copy_and_resolve_references()
    cfg.dir = str(data_dir)
    cfg.tfds_name = ""
    source = open_split(cfg, "test")
    if len(source) < 2:
        raise ValueError(f"--data: {data_dir} test split holds {len(source)} clips; need >= 2")
    records = [source[i] for i in range(len(source))]
    by_description: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_description.setdefault(str(rec["description"]), []).append(i)
    if len(by_description) < 2:
        raise ValueError(f"--data: {data_dir} test split has one description; need two")
    rng = np.random.default_rng(seed)
    low, high = (float(v) for v in data_config.snr_db)
    rms_db = float(data_config.target_rms_db)
    order = rng.permutation(len(records))
    out = []
    for n in range(num):
        target_rec = records[order[n % len(order)]]
        description = str(target_rec["description"])
        others = [i for d, idx in by_description.items() if d != description for i in idx]
        other = records[others[rng.integers(len(others))]]
        target = _rms_scaled(target_rec["audio"], rms_db)
        residual = _rms_scaled(other["audio"], rms_db) * 10 ** (-rng.uniform(low, high) / 20)
        length = min(len(target), len(residual))
        target, residual = target[:length], residual[:length]
        out.append(
            Mixture(
                mixture=(target + residual).astype(np.float32),
                target=target,
                description=description,
                category=str(target_rec.get("category", "")) or description,
                id=str(target_rec.get("id", n)),
            )
        )
    return out


def score(targets, estimates, mixtures) -> dict[str, np.ndarray]:
    """Per-item SI-SDR, SI-SDRi and SDR (dB) of estimates against targets."""
    rows = {"si_sdr": [], "si_sdri": [], "sdr": []}
    for ref, est, mix in zip(targets, estimates, mixtures):
        n = min(len(ref), len(est))
        ref, est, mix = ref[:n], np.asarray(est)[:n], mix[:n]
        rows["si_sdr"].append(float(si_sdr(ref, est)))
        rows["si_sdri"].append(float(si_sdr_improvement(ref, est, mix)))
        rows["sdr"].append(float(sdr(ref, est)))
    return {k: np.asarray(v) for k, v in rows.items()}


def summarise(per_item: dict[str, np.ndarray], categories: list[str]) -> dict:
    """{"overall": {...}, "per_category": {cat: {...}}} with count, median and mean."""

    def stats(mask):
        out = {"count": int(mask.sum())}
        for k, v in per_item.items():
            out[f"{k}_median"] = float(np.median(v[mask]))
            out[f"{k}_mean"] = float(np.mean(v[mask]))
        return out

    cats = np.asarray(categories)
    return {
        "overall": stats(np.ones(len(cats), bool)),
        "per_category": {c: stats(cats == c) for c in sorted(set(categories))},
    }


def evaluate(separator, mixtures: list[Mixture], *, seed: int = 0, batch: int = 16) -> dict:
    """Separates every mixture with the separator's sampler; returns summary + per item."""
    import jax

    estimates = []
    for first in range(0, len(mixtures), batch):
        group = mixtures[first : first + batch]
        result = separator.separate(
            [m.mixture for m in group],
            [m.description for m in group],
            key=jax.random.fold_in(jax.random.key(seed), first),
            max_batch=batch,
        )
        estimates.extend(result.target)
    per_item = score([m.target for m in mixtures], estimates, [m.mixture for m in mixtures])
    summary = summarise(per_item, [m.category for m in mixtures])
    summary["items"] = [
        {"id": m.id, "category": m.category, **{k: float(v[i]) for k, v in per_item.items()}}
        for i, m in enumerate(mixtures)
    ]
    return summary


def format_table(summary: dict) -> str:
    header = f"{'category':<14} {'n':>4} {'SI-SDRi med':>11} {'mean':>7} {'SI-SDR med':>10} {'SDR med':>8}"
    lines = [header, "-" * len(header)]
    rows = list(summary["per_category"].items()) + [("overall", summary["overall"])]
    for name, s in rows:
        lines.append(
            f"{name:<14} {s['count']:>4} {s['si_sdri_median']:>11.2f} {s['si_sdri_mean']:>7.2f} "
            f"{s['si_sdr_median']:>10.2f} {s['sdr_median']:>8.2f}"
        )
    return "\n".join(lines)


def write_json(path, summary: dict) -> None:
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(summary, indent=2))


def load_for_eval(checkpoint, aux_dir=None, t5_dir=None, step=None):
    """A separator from any source samaudio_jax.load reads: a training workdir (checkpoint
    `step`, default the latest; EMA when present), a release or export directory, or a Hub
    id. (`aux_dir` is unused: kept for callers of the former signature.)"""
    from samaudio_jax.sample.loading import load

    return load(checkpoint, t5_dir=t5_dir, step=step)

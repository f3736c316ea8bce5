"""Held-out evaluation: deterministic mixtures from a test split, separated with the
separator's own sampler settings, scored with SI-SDR, SI-SDRi and SDR per category, next to
the ideal-ratio-mask ceiling in the codec's latent domain on the same mixtures.

A mixture is one test clip (the target, prompted by its description) plus one clip with
a different description at an SNR drawn from config.data.snr_db, both scaled to
config.data.target_rms_db first. The same seed gives the same mixtures.

Crop policy (`crop_policy`, stated in every summary): a clip longer than
data.segment_seconds is cut to one segment, at an offset drawn among those holding at least
data.min_active_fraction of active sound (data/crops.py: the record's spans, else its
measured activity), for the target and for the other clip alike, so a short sound in a
long silent file is scored where it sounds. Clips no longer than a segment are used whole.

IRM ceiling: the mixture's latents times the ideal ratio mask sqrt(S^2 / (S^2 + N^2)) (S, N
the target's and the rest's latents from the separator's codec), decoded: what a perfect
mask in the model's representation reaches; "% of IRM" is the model's median SI-SDRi over
the ceiling's.
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
    active_fraction: float = 1.0  # of the target crop (data/crops.py)


def _rms_scaled(x: np.ndarray, rms_db: float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    rms = np.sqrt(np.mean(x**2)) + 1e-8
    return (x * (10 ** (rms_db / 20) / rms)).astype(np.float32)


def crop_policy(data_config) -> dict:
    """How held-out clips are cut (written into every eval summary)."""
    return {
        "segment_seconds": float(data_config.segment_seconds),
        "min_active_fraction": float(data_config.get("min_active_fraction", 0.0)),
        "activity": "manifest spans, else frames within "
        f"{float(data_config.activity_threshold_db):g} dB of the loudest",
        "applies_to": "target and other source of clips longer than one segment",
    }


def _crop(record: dict, data_config, rng) -> tuple[np.ndarray, float]:
    """(audio cut to one segment by the crop policy, its active fraction)."""
    from samaudio_jax.data.crops import active_crop_offset, active_fraction, record_activity

    audio = np.asarray(record["audio"])
    rate = int(data_config.sample_rate)
    length = min(len(audio), int(round(float(data_config.segment_seconds) * rate)))
    fraction = float(data_config.get("min_active_fraction", 0.0))
    spans = record_activity(
        audio, rate, record.get("spans"), float(data_config.activity_threshold_db)
    )
    offset = active_crop_offset(
        len(audio), length, rng, spans=spans, sample_rate=rate, min_fraction=fraction
    )
    return audio[offset : offset + length], active_fraction(spans, offset, length, len(audio), rate)


def heldout_mixtures(data_dir, data_config, num: int, seed: int = EVAL_SEED) -> list[Mixture]:
    """`num` mixtures from data_dir's test split (deterministic from `seed`), cut by the
    crop policy (`crop_policy`)."""
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
        gain = 10 ** (-rng.uniform(low, high) / 20)
        target_audio, active = _crop(target_rec, data_config, rng)
        other_audio, _ = _crop(other, data_config, rng)
        target = _rms_scaled(target_audio, rms_db)
        residual = _rms_scaled(other_audio, rms_db) * gain
        length = min(len(target), len(residual))
        target, residual = target[:length], residual[:length]
        out.append(
            Mixture(
                mixture=(target + residual).astype(np.float32),
                target=target,
                description=description,
                category=str(target_rec.get("category", "")) or description,
                id=str(target_rec.get("id", n)),
                active_fraction=active,
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


def irm_estimates(codec, mixtures: list[Mixture]) -> list[np.ndarray]:
    """Each mixture's target through the ideal ratio mask in `codec`'s latent domain."""
    import jax.numpy as jnp

    out = []
    for m in mixtures:
        wavs = jnp.asarray(np.stack([m.mixture, m.target, m.mixture - m.target]))
        x, s, n = np.asarray(codec.encode(wavs), np.float64)
        mask = np.sqrt(s**2 / (s**2 + n**2 + 1e-20))
        est = codec.decode(jnp.asarray((mask * x)[None], jnp.float32))
        out.append(np.asarray(est)[0, : len(m.mixture)])
    return out


def separate_mixtures(separator, mixtures: list[Mixture], *, seed: int, batch: int, **options):
    """Target estimates of `mixtures`, separated `batch` at a time; group g's key is
    fold_in(key(seed), first index of g), so a mixture's estimate depends only on its group.
    `options` go to separator.separate (solver, steps, ...)."""
    import jax

    estimates = []
    for first in range(0, len(mixtures), batch):
        group = mixtures[first : first + batch]
        result = separator.separate(
            [m.mixture for m in group],
            [m.description for m in group],
            key=jax.random.fold_in(jax.random.key(seed), first),
            max_batch=batch,
            **options,
        )
        estimates.extend(result.target)
    return estimates


def evaluate(
    separator,
    mixtures: list[Mixture],
    *,
    seed: int = 0,
    batch: int = 16,
    crop: dict | None = None,
    judge=None,
) -> dict:
    """Separates every mixture with the separator's sampler; returns summary + per item,
    with the IRM ceiling (irm_si_sdri) when the separator has a codec, and `crop` (the
    crop policy the mixtures were cut with) as summary["crop_policy"]. `judge` (a
    judge.scorer.JudgeScorer) adds the SAJ scores saj_overall / saj_recall / saj_precision /
    saj_faithfulness of each estimate against its mixture and description."""
    estimates = separate_mixtures(separator, mixtures, seed=seed, batch=batch)
    targets, mixes = [m.target for m in mixtures], [m.mixture for m in mixtures]
    per_item = score(targets, estimates, mixes)
    codec = getattr(separator, "codec", None)
    if codec is not None:
        per_item["irm_si_sdri"] = score(targets, irm_estimates(codec, mixtures), mixes)["si_sdri"]
    if judge is not None:
        per_item.update(judge_scores(judge, mixtures, estimates, _sample_rate(separator)))
    per_item["active_fraction"] = np.asarray([m.active_fraction for m in mixtures])
    summary = summarise(per_item, [m.category for m in mixtures])
    for stats in [summary["overall"], *summary["per_category"].values()]:
        if "irm_si_sdri_median" in stats:
            stats["of_irm"] = stats["si_sdri_median"] / max(stats["irm_si_sdri_median"], 1e-9)
    summary["overall"]["active_fraction_min"] = float(np.min(per_item["active_fraction"]))
    if crop is not None:
        summary["crop_policy"] = crop
    summary["items"] = [
        {"id": m.id, "category": m.category, **{k: float(v[i]) for k, v in per_item.items()}}
        for i, m in enumerate(mixtures)
    ]
    return summary


def _sample_rate(separator) -> int:
    codec = getattr(separator, "codec", None)
    if codec is not None:
        return int(codec.sample_rate)
    return int(separator.config.data.sample_rate)


def judge_scores(judge, mixtures: list[Mixture], estimates, sample_rate: int) -> dict:
    """Per-item SAJ scores ("saj_" + the Judge's score names) of each estimate."""
    n = [min(len(m.mixture), len(e)) for m, e in zip(mixtures, estimates)]
    scores = judge.score(
        [m.mixture[:k] for m, k in zip(mixtures, n)],
        [np.asarray(e)[:k] for e, k in zip(estimates, n)],
        [m.description for m in mixtures],
        sample_rate,
    )
    return {f"saj_{name}": np.asarray(v, np.float64) for name, v in scores.items()}


SAJ_COLUMNS = (("saj_overall", "SAJ overall"), ("saj_recall", "recall"),
               ("saj_precision", "precision"), ("saj_faithfulness", "faithful"))  # fmt: skip


def format_table(summary: dict) -> str:
    irm = "irm_si_sdri_median" in summary["overall"]
    saj = "saj_overall_median" in summary["overall"]
    header = f"{'category':<14} {'n':>4} {'SI-SDRi med':>11} {'mean':>7} {'SI-SDR med':>10} {'SDR med':>8}"
    if irm:
        header += f" {'IRM SI-SDRi med':>15} {'% of IRM':>8}"
    if saj:
        header += "".join(f" {title:>11}" for _, title in SAJ_COLUMNS)
    lines = [header, "-" * len(header)]
    rows = list(summary["per_category"].items()) + [("overall", summary["overall"])]
    for name, s in rows:
        line = (
            f"{name:<14} {s['count']:>4} {s['si_sdri_median']:>11.2f} {s['si_sdri_mean']:>7.2f} "
            f"{s['si_sdr_median']:>10.2f} {s['sdr_median']:>8.2f}"
        )
        if irm:
            line += f" {s['irm_si_sdri_median']:>15.2f} {100 * s['of_irm']:>7.0f}%"
        if saj:
            line += "".join(f" {s[key + '_median']:>11.3f}" for key, _ in SAJ_COLUMNS)
        lines.append(line)
    if saj:
        lines.append("SAJ: SAM Audio Judge scores, medians (higher is better)")
    policy = summary.get("crop_policy")
    if policy:
        lines.append(
            f"crops: {policy['segment_seconds']:g} s segments holding >= "
            f"{100 * policy['min_active_fraction']:.0f}% active target ({policy['activity']}; "
            f"{policy['applies_to']}); least active target crop "
            f"{100 * summary['overall']['active_fraction_min']:.0f}%"
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

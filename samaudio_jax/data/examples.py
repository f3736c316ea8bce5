"""Examples of the Grain pipeline (pipeline.py): MakeExample (a waveform record cropped and
mixed with other sources) and MakeLatentExample (a stored latent mix of an encode-shards
dataset, cropped by whole latent frames), with the prompt fields both draw the same way
(`prompt_fields`), and the check that a dataset's video features fit the config.

`config` is a pipeline.PipelineConfig.
"""

from __future__ import annotations

import math

import grain
import numpy as np

from samaudio_jax.data.crops import crop_candidates, draw_offset, record_activity
from samaudio_jax.data.manifest import CATEGORY_IDS
from samaudio_jax.data.mixing import activity_spans, mix_sources, shift_spans, span_prompt


def prompt_fields(record, positive, duration, cfg, rng, snrs, others: int, index: int):
    """(fields, description): the prompt and bookkeeping fields every example has (spans,
    category, description, description_length, snr_db, num_sources, index); the span
    prompt is drawn from `rng`."""
    spans = span_prompt(positive, duration, cfg.max_spans, cfg.negative_span_prob, rng)
    # Prompt dropout happens in the train step (train.cond_dropout and its per-prompt rates).
    description = record.get("description", "")
    text = description.encode("utf-8")[: cfg.description_bytes]
    desc = np.zeros(cfg.description_bytes, np.uint8)
    desc[: len(text)] = np.frombuffer(text, np.uint8)
    snr_out = np.zeros(max(cfg.max_sources, 1), np.float32)
    snrs = np.asarray(snrs, np.float32)[: len(snr_out)]
    snr_out[: len(snrs)] = snrs
    fields = {
        "spans": spans,
        "category": np.int32(CATEGORY_IDS.get(record.get("category", "unknown"), 0)),
        "description": desc,
        "description_length": np.int32(len(text)),
        "snr_db": snr_out,
        "num_sources": np.int32(others),
        "index": np.int64(index),
    }
    return fields, description


class DatasetMismatchError(ValueError):
    """The dataset does not fit the config (video feature width, latent rate)."""


def check_video_features(source, config) -> None:
    """For a dataset with video features: their width must equal model.video_dim and their
    frame hop the codec's hop at data.sample_rate. No-op for audio-only datasets."""
    dim = getattr(source, "video_dim", None)
    if dim is None:
        return
    from samaudio_jax.data.video_features import latent_hop_samples

    where = getattr(source, "directory", source)
    if int(dim) != int(config.model.video_dim):
        raise DatasetMismatchError(
            f"{where}: video features are {dim} wide (index.json video.dim) but "
            f"config.model.video_dim is {config.model.video_dim}; they must match"
        )
    hop = latent_hop_samples(config)
    if int(source.video_hop_length) != hop:
        raise DatasetMismatchError(
            f"{where}: video features are one per {source.video_hop_length} samples "
            f"(index.json video.hop_length) but the codec's latent frames are {hop} samples "
            f"(codec.hop_length at data.sample_rate)"
        )


class MakeExample(grain.transforms.RandomMap):
    """Record index -> one mixed example (a dict of per-example numpy arrays)."""

    def __init__(self, source, config):
        self.source = source
        self.config = config
        records = source.records
        self.num_records = len(records)
        self.num_samples = np.array([r["num_samples"] for r in records], np.int64)
        self.groups: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            if r.get("group"):
                self.groups.setdefault(r["group"], []).append(i)
        self.group_of = [r.get("group", "") for r in records]
        self.description_of = [r.get("description", "") for r in records]
        self.video_dim = getattr(source, "video_dim", None)
        self.video_hop = getattr(source, "video_hop_length", None)
        self._candidates: dict[int, object] = {}  # record index -> allowed crop offsets

    def _others(self, index: int, count: int, rng: np.random.Generator) -> tuple[list, bool]:
        group = self.group_of[index]
        members = [i for i in self.groups.get(group, []) if i != index] if group else []
        if members:
            picked = rng.permutation(members)[:count]
            return [int(i) for i in picked], True
        chosen: list[int] = []
        for _ in range(count * 16):
            if len(chosen) == count or self.num_records < 2:
                break
            j = int(rng.integers(self.num_records))
            if j == index or j in chosen or (group and self.group_of[j] == group):
                continue
            if self.config.distinct_descriptions and (
                self.description_of[j] == self.description_of[index]
            ):
                continue
            chosen.append(j)
        return chosen, False

    def _crop(self, audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        if len(audio) <= length:
            return audio
        start = int(rng.integers(len(audio) - length + 1))
        return audio[start : start + length]

    def mix_at(self, index: int, audio: np.ndarray, offset: int, length: int, rng):
        """The target audio[offset : offset + length] mixed with 1..k other sources at
        random SNRs: (mixture, target, residual, snr_db, other record indices). The one
        place the mixing rules live (encode-shards draws its stored mixes here too)."""
        cfg = self.config
        target = audio[offset : offset + length]
        count = int(rng.integers(cfg.min_sources, cfg.max_sources + 1))
        other_ids, aligned = self._others(index, count, rng)
        others = []
        for j in other_ids:
            other = self.source[j]["audio"]
            others.append(
                other[offset : offset + length] if aligned else self._crop(other, length, rng)
            )
        snrs = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], size=len(others))
        mixture, target, residual = mix_sources(target, others, snrs, cfg.target_rms_db)
        return mixture, target, residual, snrs, other_ids

    def random_map(self, index, rng: np.random.Generator) -> dict:
        cfg = self.config
        index = int(index)
        n, rate = cfg.segment_samples, cfg.sample_rate
        record = self.source[index]
        audio = record["audio"]
        length = min(n, len(audio))
        # Whole latent frames with video, so the video features crop at the same place.
        step = 1 if self.video_dim is None else self.video_hop
        offset = draw_offset(self._crop_candidates(index, record, length, step), rng, step)
        mixture, target, residual, snrs, others = self.mix_at(index, audio, offset, length, rng)

        duration = length / rate
        if record.get("spans"):
            positive = shift_spans(record["spans"], offset / rate, duration)
        else:
            positive = activity_spans(target, rate, threshold_db=cfg.activity_threshold_db)
        fields, _ = prompt_fields(record, positive, duration, cfg, rng, snrs, len(others), index)

        def padded(x):
            out = np.zeros(n, np.float32)
            out[:length] = x
            return out

        valid = np.zeros(n, bool)
        valid[:length] = True
        example = {
            "mixture": padded(mixture),
            "target": padded(target),
            "residual": padded(residual),
            "valid": valid,
            **fields,
        }
        if self.video_dim is not None:
            example["video"], example["has_video"] = self._video(record, index, offset, length)
        return example

    def _crop_candidates(self, index: int, record: dict, length: int, step: int):
        """The record's allowed crop offsets (data/crops.py), computed once per record: the
        activity mask and its running sum are not rebuilt for every example."""
        if index not in self._candidates:
            cfg, audio = self.config, record["audio"]
            spans = None
            if cfg.min_active_fraction > 0 and len(audio) > length:
                spans = record_activity(
                    audio, cfg.sample_rate, record.get("spans"), cfg.activity_threshold_db
                )
            self._candidates[index] = crop_candidates(
                len(audio),
                length,
                spans=spans,
                sample_rate=cfg.sample_rate,
                min_fraction=cfg.min_active_fraction,
                step=step,
            )
        return self._candidates[index]

    def _video(self, record: dict, index: int, offset: int, length: int):
        """(Dv, F) float32 features of the segment [offset, offset + length), zero padded."""
        hop, dim = self.video_hop, self.video_dim
        out = np.zeros((dim, math.ceil(self.config.segment_samples / hop)), np.float32)
        feats = record.get("video")
        if feats is None or len(feats) == 0:
            return out, np.bool_(False)
        if feats.ndim != 2 or feats.shape[1] != dim:
            raise ValueError(f"record {index}: video features {feats.shape}, expected (T, {dim})")
        first = offset // hop
        crop = feats[first : first + math.ceil(length / hop)]
        out[:, : crop.shape[0]] = crop.T
        return out, np.bool_(True)


class MakeLatentExample(grain.transforms.RandomMap):
    """Item index -> one example cut from a latent dataset (data.latent_shards): one of the
    record's K stored mixtures (drawn per draw; with data.latent_mixes == "all" the item
    index names record * K + mix, so every mix is an item), a random crop of whole latent
    frames, span and text prompts as MakeExample makes them, and with a text table the
    description's T5 features. Keys: mixture_latent, target_latent, residual_latent (F, C)
    in the storage dtype, valid (F,) at the frame rate, spans, category, description,
    description_length, snr_db, num_sources, index, mix, and text_features (L, D) /
    text_mask (L,) with a table, video / has_video with features."""

    def __init__(self, source, config, text_table=None):
        self.source = source
        self.config = config
        self.text_table = text_table
        self.hop = int(source.hop_length)
        self.mixes = int(source.mixes)
        self.video_dim = getattr(source, "video_dim", None)
        self.frames = math.ceil(config.segment_samples / self.hop)
        if self.video_dim is not None and int(source.video_hop_length) != self.hop:
            raise DatasetMismatchError(
                f"{source.directory}: video features every {source.video_hop_length} samples, "
                f"latent frames every {self.hop}"
            )

    def random_map(self, index, rng: np.random.Generator) -> dict:
        cfg = self.config
        index = int(index)
        if cfg.latent_mixes == "all":
            index, mix = divmod(index, self.mixes)
        else:
            mix = int(rng.integers(self.mixes))
        record = self.source[index]
        lat = record["latents"][mix]  # (3, frames, C)
        total = lat.shape[1]
        length = min(self.frames, total)
        offset = int(rng.integers(total - length + 1))
        rate = cfg.sample_rate
        start_s = offset * self.hop / rate
        duration = min(length * self.hop, record["num_samples"] - offset * self.hop) / rate
        info = record["mixes"][mix]
        positive = shift_spans(record.get("spans") or info["activity"], start_s, duration)
        others = len(info["others"])
        fields, description = prompt_fields(
            record, positive, duration, cfg, rng, info["snr_db"], others, index
        )

        def cropped(x):
            out = np.zeros((self.frames, x.shape[-1]), x.dtype)
            out[:length] = x[offset : offset + length]
            return out

        valid = np.zeros(self.frames, bool)
        valid[:length] = True
        example = {
            "mixture_latent": cropped(lat[0]),
            "target_latent": cropped(lat[1]),
            "residual_latent": cropped(lat[2]),
            "valid": valid,
            **fields,
            "mix": np.int32(mix),
        }
        if self.text_table is not None:
            row = 0 if not description else int(record["text_index"])
            example["text_features"], example["text_mask"] = self.text_table.features(row)
        if self.video_dim is not None:
            out = np.zeros((self.video_dim, self.frames), np.float32)
            feats = record.get("video")
            has = feats is not None and len(feats) > 0
            if has:
                crop = feats[offset : offset + length]
                out[:, : crop.shape[0]] = crop.T
            example["video"], example["has_video"] = out, np.bool_(has)
        return example

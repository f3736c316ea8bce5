"""The frames codec's per-bin latent scale, measured by `train` when the config asks for it.

`config.codec.latent_scale = "auto"` means: measure the per-bin RMS of the codec's DCT
coefficients on training mixtures ("auto_global": one RMS over all bins, the same for
every bin, so the loss keeps the signal's spectral weighting) (the data pipeline's own mixtures, so the scale matches
what the model sees) and keep it beside the checkpoints as WORKDIR/latent_scale.npy. The
config that training runs with (and saves in every checkpoint) then names that file, so
`separate`, `eval` and `export` build the same codec; export carries the scale inside the
exported weights (checkpoint/release_dir.py, key audio_codec.latent_scale).

A second run (resume) finds the file and reads it instead of measuring again, so the scale
never changes under a run. Every process measures the same mixtures (the whole training
split, a fixed seed) and writes the same bytes atomically, so no process waits for another.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from samaudio_jax.paths import as_path

AUTO = "auto"
AUTO_GLOBAL = "auto_global"
SCALE_FILE = "latent_scale.npy"
# Batches of training mixtures measured (x train.global_batch_size mixtures); the seed
# offset keeps these mixtures apart from the first training batches.
MEASURE_BATCHES = 16
SEED_OFFSET = 7


def wants_measurement(config) -> bool:
    return config.codec.kind == "frames" and str(config.codec.latent_scale) in (AUTO, AUTO_GLOBAL)


def measure_on_training_split(config, batches: int = MEASURE_BATCHES):
    """Per-bin RMS (hop_length,) of the frames codec over `batches` training batches."""
    from samaudio_jax.codec import frames
    from samaudio_jax.data import pipeline

    if not config.data.dir and not config.data.tfds_name:
        raise ValueError(
            "codec.latent_scale='auto' measures the scale on the training split: set "
            "data.dir (make-shards output) or give a scale file"
        )
    pipe = dataclasses.replace(pipeline.PipelineConfig.from_config(config.data), worker_count=0)
    ds = pipeline.make_dataset(
        pipeline.open_split(config.data, "train"),
        pipe,
        batch_size=int(config.train.global_batch_size),
        seed=int(config.seed) + SEED_OFFSET,
    )
    it = iter(ds)
    mixtures = [next(it)["mixture"] for _ in range(batches)]
    scale = frames.measure_latent_scale(mixtures, int(config.codec.hop_length))
    if str(config.codec.latent_scale) == AUTO_GLOBAL:
        scale = np.full_like(scale, np.sqrt(np.mean(np.square(scale, dtype=np.float64))))
    return scale


def resolve_latent_scale(config, workdir, print_fn=print):
    """`config` itself when no measurement is asked for; otherwise a copy whose
    codec.latent_scale names WORKDIR/latent_scale.npy, measured now if it is not there."""
    if not wants_measurement(config):
        return config
    from samaudio_jax.codec import frames

    path = as_path(workdir) / SCALE_FILE
    if path.is_file():
        frames.load_latent_scale(str(path), int(config.codec.hop_length))  # checks its shape
        print_fn(f"latent scale: {path} (measured before)")
    else:
        scale = measure_on_training_split(config)
        frames.save_latent_scale(str(path), scale)
        mixtures = MEASURE_BATCHES * int(config.train.global_batch_size)
        print_fn(f"latent scale: measured on {mixtures} training mixtures -> {path}")
    resolved = config.copy_and_resolve_references()
    resolved.codec.latent_scale = str(path)
    return resolved

"""Separator: a loaded checkpoint that separates. `load` reads any checkpoint source (a
training workdir, a release or export directory, a Hub id: checkpoint/load.py) into one;
`save` writes one in the release layout (checkpoint/release_dir.py), which `load` reads back
bit-exact; build_separator makes one with fresh weights.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections

from samaudio_jax.checkpoint.bundle import Bundle, build_modules, bundle_fields
from samaudio_jax.checkpoint.load import load_bundle
from samaudio_jax.checkpoint.release_dir import write_release_dir


@dataclasses.dataclass
class Separator(Bundle):
    """config, flow network (`model`), codec, text encoder, PE-Core part (`vision_part`), and
    the sampling methods. `vision` is the FrameEncoder, built on the first video prompt."""

    vision: object | None = None  # vision.features.FrameEncoder

    def frame_encoder(self):
        """The FrameEncoder of the checkpoint's PE-Core tower, else of config.vision.checkpoint."""
        if self.vision is None:
            from samaudio_jax.vision import factory

            if self.vision_part is not None:
                batch = int(self.config.vision.batch_size)
                self.vision = factory.frame_encoder(self.vision_part.tower, batch)
            else:
                self.vision = factory.frame_encoder_from_config(self.config.vision)
        return self.vision

    def _check_parts(self):
        if self.codec is None:
            raise ValueError(
                f"{self.source or 'this checkpoint'}: holds no codec weights (no audio_codec.*) "
                "and config.codec.checkpoint is empty: set --config.codec.checkpoint=RELEASE_DIR"
            )
        if self.text_encoder is None and self.config.text.t5_dir:  # named after loading
            from flax import nnx

            from samaudio_jax.text.factory import build_text_encoder

            with nnx.use_eager_sharding(False):
                self.text_encoder = build_text_encoder(self.config.text, rngs=nnx.Rngs(0))
        if self.text_encoder is None:
            raise ValueError(
                f"{self.source or 'this checkpoint'}: its text encoder is the release's T5, whose "
                "weights it does not hold: pass t5_dir= (or --t5_dir / --config.text.t5_dir)"
            )

    def separate(
        self,
        audios,
        descriptions,
        spans=None,
        video_features=None,
        *,
        key=None,
        videos=None,
        masks=None,
        **kw,
    ):
        """`sample.separate` with the config's sampling defaults
        (SeparateOptions.from_config: solver, steps, candidates, chunking, prediction, ...);
        keyword arguments override them.

        Visual prompts: `video_features` ((Dv, T_i) per input, None = no video), or `videos`
        (paths or vision.video.Video, None per input = no video) with optional `masks`
        (non-zero = hidden), encoded by the PE-Core tower at the latent rate.
        """
        from samaudio_jax.sample.options import SeparateOptions
        from samaudio_jax.sample.separate import separate

        self._check_parts()
        if videos is not None:
            if video_features is not None:
                raise ValueError("video_features and videos: give one of them, not both")
            video_features, audios = self.video_features(audios, videos, masks)
        key = jax.random.key(self.config.seed) if key is None else key
        return separate(
            self.model,
            self.codec,
            self.text_encoder,
            audios,
            descriptions,
            spans,
            video_features,
            key=key,
            options=SeparateOptions.from_config(self.config),
            **kw,
        )

    def video_features(self, audios, videos, masks=None):
        """(video_features, loaded audios): per input (Dv, T_i) features of its (masked) video
        at the latent rate of the input's length, or None where videos[i] is None."""
        import math

        from samaudio_jax.sample import audio_io
        from samaudio_jax.vision.features import per_input_video_features

        rate, hop = self.codec.sample_rate, self.codec.hop_length
        waves = [audio_io.load_audio(a, rate, where=f"audios[{i}]") for i, a in enumerate(audios)]
        if len(videos) != len(waves):
            raise ValueError(f"videos: expected one per input ({len(waves)}), got {len(videos)}")
        frames = [math.ceil(len(w) / hop) for w in waves]
        masks = None if masks is None else list(masks)
        feats = per_input_video_features(
            self.frame_encoder(), list(videos), frames, masks, hop_length=hop, sample_rate=rate
        )
        return feats, waves


def from_bundle(bundle: Bundle) -> Separator:
    return Separator(**bundle_fields(bundle))


def build_separator(config: ml_collections.ConfigDict, seed: int = 0) -> Separator:
    """A separator with freshly initialised (random) weights."""
    model, codec, text = build_modules(config, seed)
    return Separator(config=config, model=model, codec=codec, text_encoder=text)


def load(
    source: str | os.PathLike,
    *,
    step: int | None = None,
    revision: str | None = None,
    t5_dir: str | None = None,
) -> Separator:
    """A Separator from a training workdir (newest checkpoint, or `step`; EMA weights when
    saved), a release or export directory, or a Hugging Face Hub id (at `revision`), local
    or behind a URL. Every part the source holds is loaded (flow, codec, text, vision)."""
    return from_bundle(load_bundle(source, step=step, revision=revision, t5_dir=t5_dir))


def save(separator: Bundle, out_dir, formats=("pt", "safetensors")) -> list[str]:
    """Writes the release layout (config.json, checkpoint.pt, model.safetensors) that `load`
    reads back bit-exact. The release's own weights keep their licence when saved here."""
    return write_release_dir(separator, out_dir, formats)

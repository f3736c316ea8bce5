"""The persistence layer's one entry point: any checkpoint source -> a Bundle.

Sources, recognised in this order:
- a training workdir (WORKDIR/checkpoints/<step>): the newest step, or `step`;
- a release-layout directory (config.json + checkpoint.pt or model.safetensors): the
  release itself, an `export` output, a `separate`-ready directory;
- a Hugging Face Hub id ("facebook/sam-audio-large"), at `revision`: its snapshot in the
  local Hub cache (downloaded when missing, unless HF_HUB_OFFLINE=1), read as a release dir.
Local paths and URLs (gs://, s3://) work alike. samaudio_jax.load wraps the Bundle into a
Separator (sample/loading.py).
"""

from __future__ import annotations

from samaudio_jax.checkpoint import hub, release_dir, workdir
from samaudio_jax.checkpoint.bundle import Bundle
from samaudio_jax.paths import as_path, check_reachable, is_url


def source_kind(source) -> str:
    """ "workdir", "release" (release/export dir) or "hub"; ValueError naming the source."""
    text = str(source)
    if not is_url(text) and hub.looks_like_hub_id(text):
        return "hub"
    check_reachable(text)
    path = as_path(text)
    if workdir.is_workdir(path):
        return "workdir"
    if release_dir.is_release_dir(path):
        return "release"
    if not path.exists():
        raise ValueError(f"checkpoint source: no such directory: {path}")
    if (path / release_dir.CONFIG_FILE).is_file():
        raise ValueError(
            f"checkpoint source: {path} has config.json but neither checkpoint.pt nor "
            "model.safetensors"
        )
    if any((path / f).is_file() for f in release_dir.FORMATS.values()):
        raise ValueError(
            f"checkpoint source: {path / release_dir.CONFIG_FILE}: missing (a release "
            "directory holds config.json beside its checkpoint.pt / model.safetensors)"
        )
    raise ValueError(
        f"checkpoint source: {path} is neither a training workdir (checkpoints/), a release or "
        "export directory (config.json + checkpoint.pt or model.safetensors), nor a Hub id"
    )


def load_bundle(
    source,
    *,
    step: int | None = None,
    revision: str | None = None,
    t5_dir: str | None = None,
) -> Bundle:
    """Every part `source` holds (see the module docstring). `step` selects a workdir's
    checkpoint; `revision` a Hub revision; `t5_dir` names the T5 directory for a source whose
    text encoder is the release's T5 (whose weights the release does not carry)."""
    kind = source_kind(source)
    if step is not None and kind != "workdir":
        raise ValueError(f"step: {source} is a {kind} source; only a training workdir has steps")
    if revision is not None and kind != "hub":
        raise ValueError(f"revision: {source} is a local {kind} source, not a Hub id")
    if kind == "workdir":
        return workdir.read_workdir(source, step, t5_dir=t5_dir)
    directory = hub.snapshot(str(source), revision) if kind == "hub" else source
    bundle = release_dir.read_release_dir(directory, t5_dir=t5_dir)
    if kind == "hub":
        bundle.source = str(source) + (f"@{revision}" if revision else "")
    return bundle

"""Manifests of audio files to shard: JSONL or CSV rows, validated into ManifestEntry.

Fields (one row per file):
- path (required): audio file; relative paths resolve against the manifest's directory.
- description (required): free text, a lowercase noun/verb phrase ("a dog barking");
  stripped and lowercased here.
- category (optional): one of CATEGORIES[1:]; empty = "unknown".
- group (optional): source group, e.g. the stems of one song; members mix time-aligned.
- spans (optional): where the sound is active, in seconds of the file. JSONL: a list of
  [start, end] pairs; CSV: "start:end;start:end" or the same JSON list.
- sample_rate (optional): the rate the file is declared to have; a file whose real rate
  differs is rejected.
- id (optional): a name for the example; defaults to the path.
- video (optional): a video of the target sound's source, for visual prompts; make-shards
  runs the PE-Core tower over its frames at the latent rate (needs config.vision.enabled).
- mask (optional, only with video): a mask video with the same frames; non-zero pixels
  are hidden from the tower (masked = frame * (mask == 0)).
- video_features (optional, instead of video): a .npy file holding the per-latent-frame
  features (T, Dv) already computed, e.g. by `samaudio-jax video-features`, with
  T = ceil(num_samples / hop) at the data sample rate.
Relative paths of every file field resolve against the manifest's directory.

A manifest, and the files its rows name, may be local or behind a URL (gs://...; through
paths.as_path): a relative path in a manifest at gs://b/m.jsonl names gs://b/<path>; an
absolute local path or a URL is taken as it is.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable

from samaudio_jax.paths import Path, as_path, is_url

CATEGORIES = ("unknown", "speech", "music", "instrument", "sfx", "noise")
CATEGORY_IDS = {name: i for i, name in enumerate(CATEGORIES)}
REQUIRED_FIELDS = ("path", "description")
VIDEO_FIELDS = ("video", "mask", "video_features")


class ManifestError(ValueError):
    """A manifest row is malformed; the message names the manifest, row and field."""


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    path: str
    description: str
    category: str = "unknown"
    group: str = ""
    spans: tuple[tuple[float, float], ...] = ()
    sample_rate: int | None = None
    id: str = ""
    video: str = ""
    mask: str = ""
    video_features: str = ""
    where: str = dataclasses.field(default="", compare=False)  # "manifest M line N"

    @property
    def has_video(self) -> bool:
        return bool(self.video or self.video_features)


def _parse_spans(value, where: str) -> tuple[tuple[float, float], ...]:
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: spans is not a valid JSON list ({e.msg})") from None
        else:
            value = [part.split(":") for part in text.split(";") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ManifestError(
            f"{where}: spans must be a list of [start, end] pairs in seconds, got {value!r}"
        )
    spans = []
    for k, pair in enumerate(value):
        try:
            if isinstance(pair, (str, bytes)) or any(isinstance(x, bool) for x in pair):
                raise TypeError  # "12" would unpack as two digits; true is not a time
            start, end = (float(x) for x in pair)
        except (TypeError, ValueError, OverflowError):
            raise ManifestError(
                f"{where}: spans[{k}] must be [start, end] seconds, got {pair!r}"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            raise ManifestError(f"{where}: spans[{k}] must have 0 <= start < end, got {pair!r}")
        spans.append((start, end))
    return tuple(spans)


def _parse_sample_rate(value, where: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        rate = float(value)  # CSV gives text; "8000" and "8000.0" are both fine
    except (TypeError, ValueError, OverflowError):
        raise ManifestError(
            f"{where}: sample_rate must be a positive integer (Hz), got {value!r}"
        ) from None
    if not math.isfinite(rate) or rate != int(rate) or rate <= 0:
        raise ManifestError(f"{where}: sample_rate must be a positive integer (Hz), got {value!r}")
    return int(rate)


def _text(row: dict, name: str, where: str, *, numbers: bool = False) -> str:
    """A text field's value ("" when absent); ids and groups may also be JSON integers."""
    value = row.get(name)
    if value is None:
        return ""
    allowed = (str, int) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ManifestError(f"{where}: {name} must be text, got {value!r}")
    return str(value).strip()


def _resolve(value, base_dir: Path | None) -> str:
    path = str(value).strip()
    if path and base_dir is not None and not (is_url(path) or path.startswith("/")):
        path = str(base_dir / path)
    return path


def _video_fields(row: dict, where: str, base_dir: Path | None) -> dict:
    out = {}
    for name in VIDEO_FIELDS:
        value = row.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ManifestError(f"{where}: {name} must be a file path, got {value!r}")
        out[name] = _resolve(value, base_dir)
    if out["mask"] and not out["video"]:
        raise ManifestError(f"{where}: mask is given without video (a mask applies to a video)")
    if out["video"] and out["video_features"]:
        raise ManifestError(
            f"{where}: give either video (features computed by make-shards) or "
            "video_features (a precomputed .npy), not both"
        )
    if out["video_features"] and not out["video_features"].endswith(".npy"):
        raise ManifestError(
            f"{where}: video_features must be a .npy file of shape (T, Dv), "
            f"got {out['video_features']!r}"
        )
    return out


def entry_from_row(row: dict, where: str, base_dir: Path | None = None) -> ManifestEntry:
    """Validates one row (a dict of field -> value); `where` names it in errors."""
    for name in REQUIRED_FIELDS:
        if not _text(row, name, where):
            raise ManifestError(f"{where}: missing required field {name!r}")
    path = _resolve(row["path"], base_dir)
    category = _text(row, "category", where).lower() or "unknown"
    if category not in CATEGORY_IDS:
        raise ManifestError(f"{where}: category {category!r} is not one of {list(CATEGORIES)}")
    rate = _parse_sample_rate(row.get("sample_rate"), where)
    return ManifestEntry(
        path=path,
        description=" ".join(str(row["description"]).split()).lower(),
        category=category,
        group=_text(row, "group", where, numbers=True),
        spans=_parse_spans(row.get("spans"), where),
        sample_rate=rate,
        id=_text(row, "id", where, numbers=True) or path,
        **_video_fields(row, where, base_dir),
        where=where,
    )


def json_lines(path):
    """(line number, value) for each non-blank line of a JSON-lines file: the line's JSON
    value, or the JSONDecodeError it raised (each reader words its own error)."""
    with as_path(path).open("r", encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield line, json.loads(text)
            except json.JSONDecodeError as e:
                yield line, e


def read_manifest(
    path: str | Path, on_error: Callable[[ManifestError], None] | None = None
) -> list[ManifestEntry]:
    """Reads a .jsonl/.json-lines or .csv manifest; raises ManifestError naming the row, or,
    with `on_error`, calls it with each bad row's error and leaves that row out (errors of
    the whole file, e.g. a missing file or CSV header, still raise)."""
    path = as_path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path}: no such file")
    base = path.parent
    entries = []

    def add(row: dict, where: str) -> None:
        try:
            entries.append(entry_from_row(row, where, base))
        except ManifestError as e:
            if on_error is None:
                raise
            on_error(e)

    if path.suffix.lower() == ".csv":
        # csv wants the text undecoded of newlines (newline=""); epath's open takes no such
        # argument, so the bytes are decoded here.
        with io.StringIO(path.read_bytes().decode("utf-8"), newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise ManifestError(f"manifest {path}: empty CSV (no header)")
            missing = [n for n in REQUIRED_FIELDS if n not in reader.fieldnames]
            if missing:
                raise ManifestError(f"manifest {path}: CSV header lacks field(s) {missing}")
            for line, row in enumerate(reader, start=2):
                add(row, f"manifest {path} line {line}")
    else:
        for line, row in json_lines(path):
            where = f"manifest {path} line {line}"
            if isinstance(row, json.JSONDecodeError):
                row = ManifestError(f"{where}: not valid JSON ({row.msg})")
            elif not isinstance(row, dict):
                row = ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
            if isinstance(row, ManifestError):
                if on_error is None:
                    raise row
                on_error(row)
                continue
            add(row, where)
    return entries

"""`samaudio-jax separate`: separate a described sound from audio files with a trained model.

One input:
  samaudio-jax separate --checkpoint DIR --input mix.wav --description "dog barking" \
      [--span +:1.0:2.5 ...] [--steps 16 --solver midpoint] --out OUT
writes OUT/target.wav, OUT/residual.wav and OUT/spectrograms.png (mixture, target, residual).
Batch mode: --input FOLDER (every audio file in it, one description for all) or
--manifest FILE.jsonl (one JSON object a line: {"input": path, "description": text,
"spans": [["+", 1.0, 2.5], ...], "video": optional, "mask": optional, "name": optional
output folder name}); results go to OUT/<name or file stem>/. A name must be one plain
folder name (a "/", "\\", "..", an absolute path or a control character is refused, naming
the row, before anything runs), so nothing is written outside OUT. Two rows (or two files of
a folder, e.g. a.wav and a.flac) wanting the same folder, compared without case, never
overwrite each other: the later one gets NAME-2, NAME-3, ... (the first free), and a line
on stderr says so. --config.sample.x=y overrides sampling fields of the loaded config.
Visual prompt: --video FILE [--mask FILE] (mask: non-zero pixels hidden) with a single --input
file, or "video"/"mask" in manifest rows; PE-Core weights come from config.vision.checkpoint
(--config.vision.checkpoint=DIR).
"""

from __future__ import annotations

import json
import math
import os
import sys

from samaudio_jax.data.manifest import json_lines
from samaudio_jax.eval.plots import save_spectrograms
from samaudio_jax.paths import Path, as_path, is_url

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training workdir, a release/export directory or a Hub id",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="an audio file, or a folder of audio files")
    source.add_argument("--manifest", help="JSON lines: input, description, spans, name")
    parser.add_argument("--description", default=None, help="what to separate (text prompt)")
    parser.add_argument(
        "--span",
        action="append",
        default=[],
        metavar="SIGN:START:END",
        help="time span prompt in seconds, e.g. +:1.0:2.5 (target active) or -:0:1 (repeatable)",
    )
    parser.add_argument("--video", default=None, help="video prompt for a single --input file")
    parser.add_argument("--mask", default=None, help="mask video for --video (non-zero = hidden)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--solver", default=None, help="ODE solver (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="solver steps (default: config)")
    parser.add_argument("--candidates", type=int, default=None, help="candidates to rank")
    parser.add_argument(
        "--judge", default=None, help="rank candidates with this SAM Audio Judge dir"
    )
    parser.add_argument(
        "--predict_spans", default=None, help="PE-A-Frame dir: '+' spans for inputs given none"
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--batch_size", type=int, default=None, help="inputs per jitted call")
    parser.add_argument("--no_plot", action="store_true", help="skip the spectrogram PNG")
    parser.add_argument(
        "--cache_dir",
        default=None,
        help="JAX persistent compilation cache folder (default ~/.cache/samaudio_jax/xla or "
        "$SAMAUDIO_JAX_CACHE_DIR; 'none' = off)",
    )


def parse_span(text: str) -> tuple[str, float, float]:
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("+", "-"):
        raise ValueError(
            f"--span {text!r}: expected SIGN:START:END with SIGN + or -, e.g. +:1.0:2.5"
        )
    try:
        return parts[0], float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"--span {text!r}: START and END must be numbers (seconds)") from None


def read_manifest(path: Path) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"--manifest: no such file: {path}")
    jobs = []
    for n, row in json_lines(path):
        where = f"{path}:{n}"
        if isinstance(row, json.JSONDecodeError):
            raise ValueError(f"{where}: not valid JSON ({row})")
        if not isinstance(row, dict) or "input" not in row or "description" not in row:
            raise ValueError(f"{where}: expected an object with 'input' and 'description'")
        for field in ("input", "description"):
            if not isinstance(row[field], str) or not row[field].strip():
                raise ValueError(f"{where}: '{field}' must be non-empty text, got {row[field]!r}")
        audio = _relative(path, row["input"], f"{where}: 'input'")
        spans = _manifest_spans(row.get("spans"), where)
        video, mask = (_relative(path, row.get(k), f"{where}: '{k}'") for k in ("video", "mask"))
        if mask is not None and video is None:
            raise ValueError(f"{where}: 'mask' needs a 'video'")
        name = row.get("name")
        jobs.append(
            dict(
                input=audio,
                description=row["description"],
                spans=spans,
                name=_default_name(audio) if name in (None, "") else output_name(name, where),
                video=video,
                mask=mask,
                where=where,
            )
        )
    if not jobs:
        raise ValueError(f"--manifest: {path} lists no inputs")
    return jobs


def _manifest_spans(value, where: str) -> list[tuple[str, float, float]]:
    """A row's "spans": [["+" or "-", start_s, end_s], ...], checked before any work starts
    (the check against the audio's length comes when it is loaded)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'spans' must be a list of [sign, start, end], got {value!r}")
    spans = []
    for k, span in enumerate(value):
        if (
            not isinstance(span, list)
            or len(span) != 3
            or span[0] not in ("+", "-")
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in span[1:])
        ):
            raise ValueError(
                f"{where}: spans[{k}] must be [sign, start, end] with sign '+' or '-' and "
                f"times in seconds, got {span!r}"
            )
        sign, start, end = span[0], float(span[1]), float(span[2])
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or start >= end:
            raise ValueError(f"{where}: spans[{k}] must have 0 <= start < end, got {span!r}")
        spans.append((sign, start, end))
    return spans


def output_name(value, where: str) -> str:
    """A manifest row's "name": one plain folder name, so that outputs stay under --out.

    Separators, "." / "..", absolute paths and control characters are refused (not
    rewritten): a name the user chose and we changed could not be found again."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: 'name' must be text, got {value!r}")
    name = value.strip()
    if (
        name in ("", ".", "..")
        or any(sep in name for sep in ("/", "\\"))
        or any(ord(c) < 32 for c in name)
    ):
        raise ValueError(
            f"{where}: 'name' {value!r} must be a plain folder name inside --out "
            "(no '/', '\\', '..', absolute path or control character)"
        )
    return name


def _default_name(audio: Path) -> str:
    # A file stem never holds a separator, but "..wav" has the stem ".".
    return audio.stem if audio.stem not in ("", ".", "..") else "input"


def unique_names(jobs: list[dict], log=lambda msg: print(msg, file=sys.stderr)) -> None:
    """Gives every job its own output folder: a name already taken (compared without case,
    as macOS and Windows file systems do) becomes NAME-2, NAME-3, ... (first free, never a
    name that another row asks for), in input order, and each change is logged."""
    wanted = {j["name"].casefold() for j in jobs if j["name"] is not None}
    taken: dict[str, str] = {}
    for j in jobs:
        name = j["name"]
        if name is None:
            continue
        if name.casefold() in taken:
            k = 2
            while f"{name}-{k}".casefold() in taken or f"{name}-{k}".casefold() in wanted:
                k += 1
            new = f"{name}-{k}"
            log(
                f"separate: {j['where']}: output name {name!r} is already used by "
                f"{taken[name.casefold()]}; writing to {new!r} instead"
            )
            j["name"] = name = new
        taken[name.casefold()] = j["where"]


def _relative(manifest: Path, value, where: str) -> Path | None:
    """A row's path: URLs and absolute paths as they are, others beside the manifest."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a file path, got {value!r}")
    return as_path(value) if is_url(value) or os.path.isabs(value) else manifest.parent / value


def collect_jobs(args) -> list[dict]:
    spans = [parse_span(s) for s in args.span]
    video = getattr(args, "video", None)
    mask = getattr(args, "mask", None)
    if mask and not video:
        raise ValueError("--mask: needs --video")
    if args.manifest:
        if video:
            raise ValueError("--video: not with --manifest (give 'video' in its rows)")
        jobs = read_manifest(as_path(args.manifest))
        unique_names(jobs)
        return jobs
    if args.description is None:
        raise ValueError("--description: required with --input (what to separate)")
    source = as_path(args.input)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise ValueError(f"--input: folder {source} holds no audio files ({AUDIO_SUFFIXES})")
        if video:
            raise ValueError("--video: only with a single --input file (or manifest rows)")
        jobs = [
            dict(
                input=f,
                description=args.description,
                spans=spans,
                name=_default_name(f),
                video=None,
                where=f"--input {f}",
            )
            for f in files
        ]
        unique_names(jobs)
        return jobs
    if not source.is_file():
        raise ValueError(f"--input: no such file or folder: {source}")
    for flag, value in (("--video", video), ("--mask", mask)):
        if value and not as_path(value).is_file():
            raise ValueError(f"{flag}: no such file: {value}")
    return [
        dict(
            input=source,
            description=args.description,
            spans=spans,
            name=None,
            video=video and as_path(video),
            mask=mask and as_path(mask),
        )
    ]


def run(args, overrides) -> int:
    try:
        return _run(args, overrides)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2


def _judge_options(args) -> dict:
    """--judge (a Judge ranker) and --predict_spans (a PE-A-Frame span predictor), loaded."""
    from samaudio_jax.judge.span_predictor import SpanPredictor
    from samaudio_jax.sample.rankers import JudgeRanker

    try:
        options = {}
        if args.judge is not None:
            options["ranker"] = JudgeRanker.load(args.judge)
        if args.predict_spans is not None:
            options["predict_spans"] = SpanPredictor.load(args.predict_spans)
        return options
    except (FileNotFoundError, KeyError) as err:
        raise ValueError(err.args[0] if isinstance(err, KeyError) else str(err)) from None


def _run(args, overrides) -> int:
    jobs = collect_jobs(args)
    judge_options = _judge_options(args)  # before the separator: a bad dir fails at once

    import jax
    from tqdm import tqdm

    from samaudio_jax.cli.config_loader import apply_overrides
    from samaudio_jax.sample import audio_io, loading, solvers

    if args.solver is not None:
        solvers.check_solver(args.solver, where="--solver")
    separator = loading.load(args.checkpoint)
    apply_overrides(separator.config, overrides)
    options = {}
    if args.solver is not None:
        options["solver"] = args.solver
    if args.steps is not None:
        options["steps"] = args.steps
    if args.candidates is not None:
        options["candidates"] = args.candidates
    if args.cache_dir is not None:
        options["cache_dir"] = args.cache_dir
    options.update(judge_options)
    rate = separator.codec.sample_rate
    out = as_path(args.out)
    key = jax.random.key(args.seed)
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="chunks", unit="chunk", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            bar = None

    batch_size = args.batch_size or int(separator.config.sample.max_batch)
    if batch_size < 1:
        raise ValueError(f"--batch_size: expected >= 1, got {batch_size}")
    items = tqdm(range(0, len(jobs), batch_size), desc="batches", disable=len(jobs) <= 1)
    for first in items:
        group = jobs[first : first + batch_size]
        mixtures = [
            audio_io.load_audio(j["input"], rate, where=f"--input ({j['input']})") for j in group
        ]
        videos = masks = None
        if any(j.get("video") for j in group):  # encoded by the checkpoint's PE-Core tower
            videos, masks = [j.get("video") for j in group], [j.get("mask") for j in group]
        result = separator.separate(
            mixtures,
            [j["description"] for j in group],
            [j["spans"] for j in group],
            videos=videos,
            masks=masks,
            key=jax.random.fold_in(key, first),
            max_batch=batch_size,
            progress=progress,
            **options,
        )
        for j, mixture, target, residual in zip(group, mixtures, result.target, result.residual):
            folder = out if j["name"] is None else out / j["name"]
            folder.mkdir(parents=True, exist_ok=True)
            audio_io.write_wav(folder / "target.wav", target, rate)
            audio_io.write_wav(folder / "residual.wav", residual, rate)
            if not args.no_plot:
                save_spectrograms(folder / "spectrograms.png", mixture, target, residual, rate)
            print(f"wrote {folder}/target.wav, residual.wav", flush=True)
    return 0

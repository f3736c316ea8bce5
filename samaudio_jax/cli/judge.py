"""`samaudio-jax judge`: SAM Audio Judge scores (overall, recall, precision, faithfulness) of
separated audio against its mixture and description.

  samaudio-jax judge --checkpoint DIR --mixture mix.wav --separated target.wav \\
      --description "a dog barking"
  samaudio-jax judge --checkpoint DIR --manifest items.jsonl [--json scores.json]

DIR is a release-layout Judge directory (config.json, model.safetensors or checkpoint.pt,
tokenizer.json). Manifest rows are JSON objects with "mixture", "separated", "description"
and an optional "name"; relative paths are read from the manifest's folder. Audio at any
rate is resampled to the Judge's. Bad input ends with one line naming it; warnings (a
truncated description, silent audio) are one line each.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

from samaudio_jax.judge.judge import SCORES


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="release-layout Judge directory")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mixture", help="the input mixture (audio file)")
    source.add_argument("--manifest", help="JSON lines: mixture, separated, description, name")
    parser.add_argument("--separated", default=None, help="the separated audio for --mixture")
    parser.add_argument("--description", default=None, help="the text prompt for --mixture")
    parser.add_argument("--max_batch", type=int, default=8, help="items per jitted call")
    parser.add_argument("--json", default=None, help="also write the scores here")


def _rows(args) -> list[dict]:
    from samaudio_jax.paths import as_path, is_url

    if args.mixture is not None:
        if args.separated is None or args.description is None:
            raise ValueError("--mixture needs --separated and --description")
        return [{"mixture": args.mixture, "separated": args.separated,
                 "description": args.description, "name": str(args.mixture)}]  # fmt: skip
    if args.separated is not None or args.description is not None:
        raise ValueError("--separated / --description go with --mixture, not --manifest")
    path = as_path(args.manifest)
    if not path.is_file():
        raise ValueError(f"--manifest: no such file: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object")
        for key in ("mixture", "separated", "description"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise ValueError(f"{where}: missing or empty {key!r}")
        for key in ("mixture", "separated"):
            if not (os.path.isabs(row[key]) or is_url(row[key])):
                row[key] = str(path.parent / row[key])
        row.setdefault("name", f"{path.name}:{n}")
        rows.append(row)
    if not rows:
        raise ValueError(f"--manifest: {path} holds no rows")
    return rows


def _one_line_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr, flush=True)

    warnings.showwarning = show


def run(args, overrides) -> int:
    _one_line_warnings()
    try:
        if overrides:
            raise ValueError(f"judge takes no --config overrides, got {' '.join(overrides)}")
        if args.max_batch < 1:
            raise ValueError(f"--max_batch: expected >= 1, got {args.max_batch}")
        rows = _rows(args)
        from samaudio_jax.judge.scorer import JudgeScorer
        from samaudio_jax.sample.audio_io import load_audio

        scorer = JudgeScorer.load(args.checkpoint, max_batch=args.max_batch)
        rate = scorer.sample_rate  # read here to name each row in an error
        mixes = [load_audio(r["mixture"], rate, f"{r['name']}: mixture") for r in rows]
        seps = [load_audio(r["separated"], rate, f"{r['name']}: separated") for r in rows]
        scores = scorer.score(mixes, seps, [r["description"] for r in rows], rate)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyError as err:  # a checkpoint key; str(KeyError) would add quotes
        print(f"error: {err.args[0]}", file=sys.stderr, flush=True)
        return 2
    width = max(8, *(len(r["name"]) for r in rows))
    print(f"{'item':<{width}} " + " ".join(f"{s:>12}" for s in SCORES))
    results = []
    for i, r in enumerate(rows):
        values = {s: float(scores[s][i]) for s in SCORES}
        print(f"{r['name']:<{width}} " + " ".join(f"{values[s]:>12.4f}" for s in SCORES))
        results.append({"name": r["name"], "description": r["description"], **values})
    if args.json:
        from samaudio_jax.io_atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0

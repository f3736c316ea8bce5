"""The real-sound recipe, measured: corpus -> `demo --manifest` -> curve on held-out files.

    python bench/real_recipe.py --workdir /tmp/rr [--corpus /tmp/real_corpus]
        [--config configs/demo_real.py] [--curve_every 250] [--eval_mixtures 100]
        [--config.x.y=value ...]

Builds the corpus with bench/real_corpus.py when --corpus has no train.jsonl, runs the whole
demo job on it (shards, latent scale, train, eval with the IRM ceiling, separation, export)
keeping a checkpoint every --curve_every steps, then evaluates each kept checkpoint on the
same held-out mixtures and prints the curve: step, wall seconds since the start (from the
checkpoint's time stamp: includes shards, scale and compile), SI-SDRi median per category
and overall, and the IRM ceiling. Results also go to WORKDIR/curve.json. Run it alone on
the machine for timings that mean something (docs/real_sounds.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--corpus", default="/tmp/real_corpus")
    p.add_argument("--config", default=str(REPO / "configs/demo_real.py"))
    p.add_argument("--curve_every", type=int, default=250)
    p.add_argument("--eval_mixtures", type=int, default=100)
    p.add_argument("--data", default="", help="train/ and test/ shards already made (skips shards)")
    args, overrides = p.parse_known_args(argv)

    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.demo import run_demo
    from samaudio_jax.eval import evaluate as ev
    from samaudio_jax.sample.loading import load as load_source

    corpus = pathlib.Path(args.corpus)
    if not (corpus / "train.jsonl").is_file():
        spec = importlib.util.spec_from_file_location("real_corpus", REPO / "bench/real_corpus.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print("corpus:", module.build(str(corpus)), flush=True)
    config = load_config(
        args.config,
        overrides
        + [
            f"--config.train.checkpoint_every={args.curve_every}",
            "--config.train.keep_checkpoints=100",
        ],
    )
    work = pathlib.Path(args.workdir)
    t0 = time.time()
    load = os.getloadavg()
    state = run_demo(
        config,
        work,
        eval_mixtures=args.eval_mixtures,
        manifests=None if args.data else (str(corpus / "train.jsonl"), str(corpus / "test.jsonl")),
        data_dir=args.data or None,
    )
    job_s = time.time() - t0
    steps = sorted(int(d.name) for d in (work / "checkpoints").iterdir() if d.name.isdigit())
    mixtures = ev.heldout_mixtures(args.data or work / "data", config.data, args.eval_mixtures)
    rows = []
    for step in steps:
        separator = load_source(work, step=step)
        summary = ev.evaluate(separator, mixtures, crop=ev.crop_policy(config.data))
        wall = os.stat(work / "checkpoints" / str(step)).st_mtime - t0
        rows.append({"step": step, "wall_s": wall, "summary": summary})
    cats = sorted(rows[-1]["summary"]["per_category"])
    head = f"{'step':>6} {'wall s':>7} " + " ".join(f"{c[:10]:>10}" for c in cats)
    head += f" {'overall':>8} {'IRM':>6} {'% IRM':>6}"
    print(head)
    for r in rows:
        s = r["summary"]
        line = f"{r['step']:>6} {r['wall_s']:>7.0f} " + " ".join(
            f"{s['per_category'][c]['si_sdri_median']:>10.2f}" for c in cats
        )
        o = s["overall"]
        line += f" {o['si_sdri_median']:>8.2f} {o['irm_si_sdri_median']:>6.2f} {100 * o['of_irm']:>5.0f}%"
        print(line)
    print(ev.format_table(rows[-1]["summary"]))
    print(f"whole job {job_s:.0f} s wall; load average at start {load}, at end {os.getloadavg()}")
    out = {
        "job_s": job_s,
        "load_start": load,
        "load_end": os.getloadavg(),
        "train": state.get("train"),
        "curve": [
            {
                "step": r["step"],
                "wall_s": r["wall_s"],
                **{k: r["summary"][k] for k in ("overall", "per_category")},
            }
            for r in rows
        ],
    }
    (work / "curve.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

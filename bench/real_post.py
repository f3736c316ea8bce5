"""Eval-only experiments on a trained workdir: sampler settings and mixture-consistency
post-processing, on the same held-out mixtures as `eval` / bench/real_recipe.py.

    python bench/real_post.py --workdir /tmp/rr_final [--step 2000] [--eval_mixtures 100]
        [--variants midpoint:4,euler:1,midpoint:8] [--data DIR]

For each sampler variant (solver:steps) the checkpoint separates every mixture once; each
post-processing mode (samaudio_jax/sample/consistency.py) is then applied to the same
target / residual estimates. Prints SI-SDRi medians per category and overall and the IRM
ceiling, and writes WORKDIR/post.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--data", default="")
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--eval_mixtures", type=int, default=100)
    p.add_argument("--variants", default="midpoint:4,euler:1,midpoint:8")
    p.add_argument("--modes", default="none,project,ratio,wiener")
    p.add_argument("--out", default="post.json")
    args = p.parse_args(argv)

    import jax

    from samaudio_jax.eval import evaluate as ev
    from samaudio_jax.sample import consistency
    from samaudio_jax.sample.loading import load as load_source

    work = pathlib.Path(args.workdir)
    sep = load_source(work, step=args.step)
    cfg = sep.config
    data = args.data or str(work / "data")
    mixtures = ev.heldout_mixtures(data, cfg.data, args.eval_mixtures)
    cats = [m.category for m in mixtures]
    targets = [m.target for m in mixtures]
    mixes = [m.mixture for m in mixtures]
    irm = ev.score(targets, ev.irm_estimates(sep.codec, mixtures), mixes)["si_sdri"]
    rows = []
    print(f"load average {os.getloadavg()}", flush=True)
    for variant in args.variants.split(","):
        solver, steps = variant.split(":")
        t0 = time.time()
        tgt, res = [], []
        for first in range(0, len(mixtures), 16):
            group = mixtures[first : first + 16]
            r = sep.separate(
                [m.mixture for m in group],
                [m.description for m in group],
                key=jax.random.fold_in(jax.random.key(0), first),
                max_batch=16,
                solver=solver,
                steps=int(steps),
                mixture_consistency="none",  # the modes below start from the raw estimates
            )
            tgt.extend(r.target)
            res.extend(r.residual)
        sep_s = time.time() - t0
        for mode in args.modes.split(","):
            est = [
                consistency.apply(mode, m.mixture, t, r, sep.codec)[0]
                for m, t, r in zip(mixtures, tgt, res)
            ]
            per = ev.score(targets, est, mixes)
            per["irm_si_sdri"] = irm
            s = ev.summarise(per, cats)
            row = {"variant": variant, "mode": mode, "separate_s": sep_s, "summary": s}
            rows.append(row)
            line = " ".join(
                f"{c[:6]}={s['per_category'][c]['si_sdri_median']:6.2f}"
                for c in sorted(s["per_category"])
            )
            o = s["overall"]
            print(
                f"{variant:>12} {mode:>12}  {line}  overall={o['si_sdri_median']:6.2f} "
                f"mean={o['si_sdri_mean']:6.2f} IRM={o['irm_si_sdri_median']:6.2f} "
                f"({100 * o['si_sdri_median'] / o['irm_si_sdri_median']:.0f}%) sep {sep_s:.0f}s",
                flush=True,
            )
    print(f"load average {os.getloadavg()}")
    (work / args.out).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

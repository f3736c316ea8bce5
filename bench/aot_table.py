"""The AOT table of docs/aot_memory.md: compile the real train step for TPU topologies on this
host (libtpu, no TPU) and record per-chip memory, XLA's cost analysis, and the loop-aware
FLOPs / bytes per chip (parallel/aot.loop_aware_cost), each cell in its own process.

    PYTHONPATH=. nice -n 10 python bench/aot_table.py --out /tmp/flops \
        --cell small:v5p:4x4x4:latents --cell small:v5p:4x4x4:waveforms ...
    PYTHONPATH=. python bench/aot_table.py --out /tmp/flops --table   # markdown rows

"flow matmuls, analytic" is analytic_flow_flops: the flow network's forward + backward
matmuls counted by hand, the yardstick for "the latent program's FLOPs are the flow's own".

A cell is config:topology:inputs (topology contains one colon). Each cell writes
<out>/<cell>.json (memory, XLA's raw cost, the loop-aware cost, compile seconds, load
average before and after) and <out>/<cell>.hlo.txt.gz (the compiled program, so its cost
can be recounted without compiling again: --table).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

REPO = Path(__file__).resolve().parents[1]


def _name(cell: str) -> str:
    return cell.replace(":", "_")


def compile_cell(cell: str, out: Path) -> None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from samaudio_jax.cli.compile import compile_for_topology
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.parallel import aot

    name, family, shape, inputs = cell.split(":")
    topology = f"{family}:{shape}"
    config = load_config(str(REPO / "configs" / f"{name}.py"), [])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    compiled, setup = compile_for_topology(config, topology, 32, inputs)
    seconds = time.perf_counter() - t0
    mem = aot.memory_report(compiled)
    raw_flops, raw_bytes = aot.cost(compiled)
    text = compiled.as_text()
    with gzip.open(out / f"{_name(cell)}.hlo.txt.gz", "wt") as f:
        f.write(text)
    record = {
        "cell": cell,
        "chips": int(setup.mesh.devices.size),
        "memory": mem.__dict__ | {"total": mem.total},
        "xla_flops": raw_flops,
        "xla_bytes": raw_bytes,
        "compile_s": seconds,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out / f"{_name(cell)}.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


def analytic_flow_flops(config, chips: int, text_length: int = 32) -> float:
    """Per-chip FLOPs of the flow network's forward + backward from its matmuls alone
    (2 m n k each; a backward is two matmuls per forward matmul, so 3x the forward), plus the
    attention-score matmuls that remat `dots_no_batch` / `full` recompute in the backward.
    Elementwise work, norms, softmax and AdamW are left out (a few percent at most)."""
    from samaudio_jax.model.layers import ffn_hidden_dim

    m = config.model
    b = int(config.train.global_batch_size)
    t = -(
        -int(round(config.data.segment_seconds * config.data.sample_rate))
        // int(config.codec.hop_length)
    )
    d, f, s = (
        int(m.dim),
        ffn_hidden_dim(int(m.dim), int(m.ffn_exp), int(m.multiple_of)),
        text_length,
    )
    frames, memory = b * t, b * s
    per_layer = 2 * frames * (6 * d * d + 3 * d * f) + 2 * memory * 2 * d * d
    scores = 2 * (2 * b * t * t * d) + 2 * (2 * b * t * s * d)
    outside = 2 * frames * (int(m.in_channels) * d + int(m.video_dim) * d + 6 * d * d)
    outside += 2 * frames * d * int(m.out_channels) + 2 * memory * (int(m.text_dim) * d + 3 * d * d)
    forward = int(m.num_layers) * (per_layer + scores) + outside
    recompute = int(m.num_layers) * scores if m.remat_policy != "none" else 0
    return (3 * forward + recompute) / chips


def table(out: Path) -> None:
    """Markdown rows from the cells in `out`, FLOPs and bytes recounted loop-aware from the
    stored HLO."""
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.parallel import aot, hlo_cost

    print(
        "| config | topology (chips) | inputs | per-chip memory (temporaries) | FLOPs/chip "
        "[XLA alone] | / flow's matmuls | bytes/chip [XLA alone] | predicted step >= "
        "(compute / HBM) | predicted MFU (flow's share) | compiled in (load) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    order = {"tiny": 0, "small": 1, "base": 2, "large": 3}
    records = [json.loads(path.read_text()) for path in out.glob("*.json")]
    records.sort(key=lambda r: (order.get(r["cell"].split(":")[0], 9), r["chips"], r["cell"]))
    for r in records:
        name, family, shape, inputs = r["cell"].split(":")
        with gzip.open(out / f"{_name(r['cell'])}.hlo.txt.gz", "rt") as f:
            c = hlo_cost.loop_aware_cost(f.read(), r["xla_flops"], r["xla_bytes"])
        config = load_config(str(REPO / "configs" / f"{name}.py"), [])
        flow = analytic_flow_flops(config, r["chips"])
        rl = aot.roofline(family, c.flops, c.bytes_accessed)
        m = r["memory"]
        trips = sorted({x.trip_count for x in c.loops}, key=lambda n: n or 0)
        unknown = f" ({len(c.unknown)} loops of unknown trip count)" if c.unknown else ""
        print(
            f"| {name} | {family}:{shape} ({r['chips']}) | {inputs} | "
            f"{aot.gib(m['total']):.2f} GiB ({aot.gib(m['temporaries']):.2f}) | "
            f"{c.flops:.3e} [{c.xla_flops:.3e}]{unknown} | {c.flops / flow:.2f}x | "
            f"{c.bytes_accessed:.3e} [{c.xla_bytes:.3e}] | "
            f"{rl.step_s * 1e3:.1f} ms ({rl.compute_s * 1e3:.1f} / {rl.memory_s * 1e3:.1f}) | "
            f"{100 * rl.mfu():.0f}% ({100 * rl.mfu(flow):.0f}%) | "
            f"{r['compile_s']:.0f} s ({r['load_before']:.1f} / {r['load_after']:.1f}) |"
        )
        notes.append(f"{r['cell']}: loops of {trips} trips, flow matmuls {flow:.3e}, {r['date']}")
    print()
    print("\n".join(notes))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--cell", action="append", default=[])
    p.add_argument("--table", action="store_true", help="print markdown rows of --out's cells")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child process: compile this cell
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.table:
        table(out)
        return 0
    if args.one:
        compile_cell(args.one, out)
        return 0
    for cell in args.cell:
        if (out / f"{_name(cell)}.json").exists():
            print(f"{cell}: done already")
            continue
        print(f"{cell}: compiling ({time.strftime('%H:%M:%S')})", flush=True)
        r = subprocess.run([sys.executable, __file__, "--out", str(out), "--one", cell])
        if r.returncode:
            print(f"{cell}: failed (exit {r.returncode})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

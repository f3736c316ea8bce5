"""The AOT table of docs/aot_memory.md: compile the real train step for TPU topologies on this
host (libtpu, no TPU) and record per-chip memory, XLA's cost analysis, and the loop-aware
FLOPs / bytes per chip (parallel/aot.loop_aware_cost), each cell in its own process.

    PYTHONPATH=. nice -n 10 python bench/aot_table.py --out /tmp/flops \
        --cell small:v5p:4x4x4:latents --cell small:v5p:4x4x4:waveforms ...
    PYTHONPATH=. python bench/aot_table.py --out /tmp/flops --table   # markdown rows

A cell is config:topology:inputs (topology contains one colon). Each cell writes
<out>/<cell>.json (memory, XLA's raw cost, the loop-aware cost, compile seconds, load
average before and after) and <out>/<cell>.hlo.txt.gz (the compiled program, so its cost
can be recounted without compiling again: --recount).
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--cell", action="append", default=[])
    p.add_argument("--one", help=argparse.SUPPRESS)  # child process: compile this cell
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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

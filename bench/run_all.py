"""Runs every benchmark of the project and prints one summary table at the end.

Each benchmark prints its own table (ours against a reference measured in the same run);
this script runs them one after another, keeps their output, and closes with one table of
the ratio lines each printed, with its wall time and exit status.

    PYTHONPATH=. python bench/run_all.py [--quick] [--only codec text ...]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent
# name -> (arguments for a full run, arguments for --quick)
BENCHMARKS = {
    "data_pipeline": ([], ["--runs", "1", "--batches", "2"]),
    "flow_forward": ([], ["--runs", "2"]),
    "text": ([], ["--runs", "2", "--layers", "4"]),
    "train_step": ([], ["--configs", "tiny", "--runs", "2"]),
    "separate": ([], ["--configs", "tiny", "--repeats", "2"]),
    "codec": ([], ["--seconds", "2", "--repeats", "1"]),
    "vision": ([], ["--runs", "2"]),
}
RATIO = re.compile(r"ratio|speed-up|\d+(\.\d+)?x\b|/", re.IGNORECASE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    summary = []
    for name in args.only or BENCHMARKS:
        full, quick = BENCHMARKS[name]
        command = [sys.executable, str(BENCH / f"{name}.py"), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        print(proc.stdout, end="")
        if proc.returncode:
            print(proc.stderr[-2000:], end="")
        lines = [ln.strip() for ln in proc.stdout.splitlines() if RATIO.search(ln)]
        summary.append((name, seconds, proc.returncode, lines[-3:]))
    print("\n| benchmark | wall s | status | figures (ours vs reference) |\n|---|---|---|---|")
    for name, seconds, code, lines in summary:
        figures = "<br>".join(lines) if lines else "(see output above)"
        print(f"| {name} | {seconds:.0f} | {'ok' if code == 0 else f'exit {code}'} | {figures} |")
    return max((code for _, _, code, _ in summary), default=0)


if __name__ == "__main__":
    sys.exit(main())

"""The NFE/quality map: held-out SI-SDRi against the number of network evaluations (NFE) per
separation, for each ODE solver and time grid, with the time each setting takes.

Every row separates the same held-out mixtures (evaluate.heldout_mixtures, as `eval`) with
`Separator.separate` (so `sample.separate`) at one setting: a fixed-step solver (euler,
midpoint, heun, rk4) at the step count giving each requested NFE, on a uniform or a bent
time grid (solvers.time_grid), or an adaptive solver (tsit5, dopri5) at a tolerance.

Scores and times come from plain separate() calls, so a row's estimates are exactly those a
user gets with the same settings (tests check this). NFE: a fixed-step row makes steps x
evaluations-per-step; an adaptive row's NFE is counted in an extra, untimed run with the
flow network wrapped in `CountingFlow`, whose call reports to the host (jax.debug.callback)
each time the compiled program runs it (rejected steps and the initial step-size probe
included): evaluations per separate() call (one padded batch), averaged over the batches.

Time: seconds of wall clock per mixture over the row's whole run, compilation excluded (a
setting whose program is new runs once untimed first). Scores: SI-SDRi median, mean and
per-category median (evaluate.score / summarise).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time

from samaudio_jax.eval import evaluate as ev
from samaudio_jax.io_atomic import atomic_write_bytes, atomic_write_text
from samaudio_jax.paths import as_path

FIXED = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}  # evaluations per step
ADAPTIVE = ("tsit5", "dopri5")
DEFAULT_SOLVERS = ("euler", "midpoint", "heun", "rk4", "tsit5", "dopri5")
DEFAULT_NFES = (1, 2, 4, 8, 16, 32)
DEFAULT_SCHEDULES = ("uniform", "late")
DEFAULT_TOLERANCES = (1e-2, 1e-3, 1e-4)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row: a fixed-step solver at `steps` on `schedule`, or an adaptive one at `tol`."""

    solver: str
    steps: int | None = None
    schedule: str = "uniform"
    tol: float | None = None

    @property
    def nominal_nfe(self) -> int | None:
        return None if self.steps is None else self.steps * FIXED[self.solver]

    @property
    def label(self) -> str:
        if self.tol is not None:
            return f"{self.solver} tol={self.tol:g}"
        return f"{self.solver} x{self.steps} ({self.schedule})"

    def separate_kwargs(self) -> dict:
        """The separate() keyword arguments of this setting."""
        if self.tol is not None:
            return dict(solver=self.solver, rtol=self.tol, atol=self.tol)
        return dict(solver=self.solver, steps=self.steps, step_size=None, schedule=self.schedule)

    def program_key(self) -> tuple:
        """Settings with equal keys run one compiled program (the grid is an argument)."""
        return (self.solver, self.steps, self.tol)


def plan(
    solvers=DEFAULT_SOLVERS,
    nfes=DEFAULT_NFES,
    schedules=DEFAULT_SCHEDULES,
    tolerances=DEFAULT_TOLERANCES,
) -> list[Setting]:
    """Fixed-step solvers at every NFE they can reach exactly (NFE divisible by their
    evaluations per step) on every schedule, then adaptive solvers at every tolerance."""
    from samaudio_jax.sample.solvers import SCHEDULES, check_solver

    for name in solvers:
        check_solver(name, "--solvers")
    for name in schedules:
        if name not in SCHEDULES:
            raise ValueError(f"--schedules: unknown {name!r}; choose from {', '.join(SCHEDULES)}")
    for n in nfes:
        if int(n) != n or n < 1:
            raise ValueError(f"--nfe: expected positive integers, got {n!r}")
    for tol in tolerances:
        if not (tol > 0 and math.isfinite(tol)):
            raise ValueError(f"--tolerances: expected positive numbers, got {tol!r}")
    rows = []
    for name in solvers:
        if name in FIXED:
            for schedule in schedules:
                for n in sorted(set(int(n) for n in nfes)):
                    if n % FIXED[name] == 0:
                        rows.append(Setting(name, steps=n // FIXED[name], schedule=schedule))
    for name in solvers:
        if name in ADAPTIVE:
            rows += [Setting(name, tol=float(t)) for t in tolerances]
    if not rows:
        raise ValueError("nothing to run: no solver reaches any of the requested NFE")
    return rows


# ------------------------------------------------------------------ evaluation counting

_COUNT = {"n": 0}
_COUNT_LOCK = threading.Lock()


def _tick() -> None:
    with _COUNT_LOCK:
        _COUNT["n"] += 1


def counting_model(model):
    """`model` wrapped so each evaluation inside a compiled program is counted on the host."""
    from flax import nnx

    class CountingFlow(nnx.Module):
        """Calls the wrapped flow network; one host tick per call (per batch evaluation)."""

        def __init__(self, inner):
            self.inner = inner
            transformer = getattr(inner, "transformer", None)
            # separate() reads the model's switches from here (sample/separate._model_flag).
            self.padding_aware_groupnorm = bool(
                getattr(transformer, "padding_aware_groupnorm", False)
            )

        def __call__(self, *args, **kwargs):
            import jax

            out = self.inner(*args, **kwargs)
            # A side-effecting callback: XLA keeps it and runs it once per execution of
            # this call (inside scans and while loops too).
            jax.debug.callback(_tick)
            return out

    return CountingFlow(model)


def _evaluations() -> int:
    import jax

    jax.effects_barrier()
    with _COUNT_LOCK:
        return _COUNT["n"]


# ------------------------------------------------------------------------------- sweep


def _separate_all(separator, mixtures, kwargs, seed: int, batch: int):
    """Target estimates of every mixture, grouped as evaluate.evaluate groups them, and the
    number of separate calls."""
    estimates = ev.separate_mixtures(separator, mixtures, seed=seed, batch=batch, **kwargs)
    return estimates, math.ceil(len(mixtures) / batch)


def _shape_groups(mixtures, batch: int) -> list[list]:
    """The first group of each (size, longest input) among the run's groups: separating
    these compiles every program the timed run needs."""
    seen, out = set(), []
    for first in range(0, len(mixtures), batch):
        group = mixtures[first : first + batch]
        shape = (len(group), max(len(m.mixture) for m in group))
        if shape not in seen:
            seen.add(shape)
            out.append(group)
    return out


def run_sweep(
    separator,
    mixtures: list[ev.Mixture],
    settings: list[Setting],
    *,
    seed: int = 0,
    batch: int = 16,
    print_fn=print,
) -> dict:
    """Every setting's scores, NFE and time on `mixtures`; returns the JSON-ready summary."""
    counted = None
    targets = [m.target for m in mixtures]
    mixes = [m.mixture for m in mixtures]
    categories = [m.category for m in mixtures]
    compiled: set = set()
    rows = []
    for setting in settings:
        kwargs = setting.separate_kwargs()
        if setting.program_key() not in compiled:  # compile untimed: one group per shape
            for group in _shape_groups(mixtures, batch):
                _separate_all(separator, group, kwargs, seed, batch)
            compiled.add(setting.program_key())
        start = time.perf_counter()
        estimates, calls = _separate_all(separator, mixtures, kwargs, seed, batch)
        seconds = time.perf_counter() - start
        if setting.tol is None:
            nfe = float(setting.nominal_nfe)
        else:
            if counted is None:
                counted = dataclasses.replace(separator, model=counting_model(separator.model))
            before = _evaluations()
            _separate_all(counted, mixtures, kwargs, seed, batch)
            nfe = (_evaluations() - before) / calls
        per_item = ev.score(targets, estimates, mixes)
        summary = ev.summarise(per_item, categories)
        row = {
            "solver": setting.solver,
            "schedule": setting.schedule if setting.tol is None else None,
            "steps": setting.steps,
            "tol": setting.tol,
            "nominal_nfe": setting.nominal_nfe,
            "nfe": nfe,
            "seconds_per_mixture": seconds / len(mixtures),
            "si_sdri_median": summary["overall"]["si_sdri_median"],
            "si_sdri_mean": summary["overall"]["si_sdri_mean"],
            "si_sdri": [float(v) for v in per_item["si_sdri"]],  # per mixture, in order
            "per_category": {
                c: {"count": s["count"], "si_sdri_median": s["si_sdri_median"]}
                for c, s in summary["per_category"].items()
            },
        }
        rows.append(row)
        print_fn(
            f"{setting.label:<28} NFE {nfe:6.1f}  SI-SDRi median {row['si_sdri_median']:6.2f} "
            f"mean {row['si_sdri_mean']:6.2f} dB  {1e3 * row['seconds_per_mixture']:8.2f} ms/mixture"
        )
    return {"num_mixtures": len(mixtures), "seed": seed, "batch": batch, "rows": rows}


# ----------------------------------------------------------------------------- outputs


def _row_name(row: dict) -> str:
    if row["tol"] is not None:
        return f"{row['solver']} (tol {row['tol']:g})"
    return f"{row['solver']} ({row['schedule']})"


def format_markdown(result: dict) -> str:
    """A pivot (median SI-SDRi per solver/grid and NFE) and the full table."""
    rows = result["rows"]
    lines = [
        f"NFE/quality map: {result['num_mixtures']} held-out mixtures, seed {result['seed']}"
        + (f", checkpoint {result['checkpoint']}" if result.get("checkpoint") else ""),
        "",
        "Median SI-SDRi (dB) by NFE (network evaluations per separation):",
        "",
    ]
    fixed = [r for r in rows if r["tol"] is None]
    nfes = sorted({r["nominal_nfe"] for r in fixed})
    if fixed:
        lines.append("| solver (grid) | " + " | ".join(str(n) for n in nfes) + " |")
        lines.append("|---|" + "---:|" * len(nfes))
        names = list(dict.fromkeys(_row_name(r) for r in fixed))
        for name in names:
            cells = {r["nominal_nfe"]: r for r in fixed if _row_name(r) == name}
            values = [f"{cells[n]['si_sdri_median']:.2f}" if n in cells else "" for n in nfes]
            lines.append(f"| {name} | " + " | ".join(values) + " |")
        lines.append("")
    cats = sorted({c for r in rows for c in r["per_category"]})
    lines.append(
        "| solver | grid | steps | tol | NFE | SI-SDRi median | mean | "
        + " | ".join(f"{c} median" for c in cats)
        + " | ms / mixture |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(cats) + "---:|")
    for r in rows:
        tol = "-" if r["tol"] is None else f"{r['tol']:g}"
        per_cat = [
            f"{r['per_category'][c]['si_sdri_median']:.2f}" if c in r["per_category"] else ""
            for c in cats
        ]
        lines.append(
            f"| {r['solver']} | {r['schedule'] or '-'} | {r['steps'] or '-'} | "
            f"{tol} | {r['nfe']:.1f} | "
            f"{r['si_sdri_median']:.2f} | {r['si_sdri_mean']:.2f} | "
            + " | ".join(per_cat)
            + f" | {1e3 * r['seconds_per_mixture']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict, path) -> None:
    """Median SI-SDRi and time per mixture against NFE (log scale), one line per solver/grid."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_q, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5))
    by_name: dict[str, list] = {}
    for r in result["rows"]:
        by_name.setdefault(_row_name(r) if r["tol"] is None else r["solver"], []).append(r)
    for name, rs in by_name.items():
        rs = sorted(rs, key=lambda r: r["nfe"])
        x = [r["nfe"] for r in rs]
        style = "o--" if rs[0]["tol"] is not None else "o-"
        ax_q.plot(x, [r["si_sdri_median"] for r in rs], style, label=name, markersize=4)
        ax_t.plot(x, [1e3 * r["seconds_per_mixture"] for r in rs], style, label=name, markersize=4)
    for ax, ylabel in ((ax_q, "median SI-SDRi (dB)"), (ax_t, "ms per mixture")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("network evaluations per separation (NFE)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_t.set_yscale("log")
    ax_q.legend(fontsize=7)
    ax_q.set_title(f"quality vs NFE ({result['num_mixtures']} held-out mixtures)")
    ax_t.set_title("wall time vs NFE (compilation excluded)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_outputs(result: dict, out_dir) -> dict[str, str]:
    """nfe_sweep.json, nfe_sweep.md and nfe_sweep.png in out_dir; returns their paths."""
    out = as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"nfe_sweep.{k}" for k in ("json", "md", "png")}
    atomic_write_text(paths["json"], json.dumps(result, indent=2))
    atomic_write_text(paths["md"], format_markdown(result))
    plot(result, paths["png"])
    return {k: str(v) for k, v in paths.items()}

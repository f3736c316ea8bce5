"""ODE solvers for flow sampling: fixed-step Runge-Kutta rules and an adaptive solver.

A vector field is a pure function `field(t, y, args) -> dy/dt` with `t` a float scalar;
`args` carries everything traced (model state, conditioning), so `field` itself can be a
module-level function that jit treats as static. Each fixed-step solver is one jitted
function that runs its steps with `lax.scan` over a time grid; the grid is an array, so a
new step count recompiles only through its length.

The step rules are torchdiffeq's (the release samples with `odeint(..., method="midpoint",
options={"step_size": 2 / 32})`): euler, midpoint, heun (torchdiffeq's "heun2") and rk4
(torchdiffeq's "rk4", the 3/8 rule). `step_size_grid` builds torchdiffeq's grid for a step
size; `uniform_grid` splits [t0, t1] into `steps` equal steps (identical when the step size
divides the interval exactly, as 2/32 does). The adaptive solvers ("tsit5", "dopri5") are
diffrax's, with a PI step-size controller.
"""

from __future__ import annotations

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def step_size_grid(step_size: float, t0: float = 0.0, t1: float = 1.0) -> np.ndarray:
    """torchdiffeq's fixed grid: t0, t0 + h, ... and the last point moved onto t1 (float32)."""
    if not (step_size > 0 and math.isfinite(step_size)):
        raise ValueError(f"step_size: expected a positive number, got {step_size}")
    t0_, t1_, h = np.float32(t0), np.float32(t1), np.float32(step_size)
    count = int(np.ceil((t1_ - t0_) / h + np.float32(1)))
    grid = np.arange(count, dtype=np.float32) * h + t0_
    grid[-1] = t1_
    return grid


def uniform_grid(steps: int, t0: float = 0.0, t1: float = 1.0) -> np.ndarray:
    """`steps` equal steps from t0 to t1 (float32, steps + 1 points)."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    return np.linspace(t0, t1, int(steps) + 1, dtype=np.float64).astype(np.float32)


SCHEDULES = ("uniform", "late", "early")


def time_grid(
    steps: int, schedule: str = "uniform", t0: float = 0.0, t1: float = 1.0
) -> np.ndarray:
    """`steps` steps from t0 to t1 (float32, steps + 1 points) spaced by `schedule`:
    "uniform" equal steps; "late" u -> 1 - (1 - u)^2, steps shrinking towards t1 (the data
    end, where a clean-predicting network's velocity (x1_hat - x_t) / (1 - t) changes
    fastest); "early" u -> u^2, steps shrinking towards t0 (the noise end)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: unknown {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "uniform":
        return uniform_grid(steps, t0, t1)
    u = uniform_grid(steps).astype(np.float64)
    u = 1.0 - (1.0 - u) ** 2 if schedule == "late" else u**2
    grid = (t0 + (t1 - t0) * u).astype(np.float32)
    grid[0], grid[-1] = np.float32(t0), np.float32(t1)
    return grid


def _euler_step(field, t0, dt, t1, y, args):
    return dt * field(t0, y, args)


def _midpoint_step(field, t0, dt, t1, y, args):
    half = 0.5 * dt
    f0 = field(t0, y, args)
    return dt * field(t0 + half, y + half * f0, args)


def _heun_step(field, t0, dt, t1, y, args):
    f0 = field(t0, y, args)
    f1 = field(t0 + dt, y + dt * f0, args)
    return dt * (0.5 * f0 + 0.5 * f1)


def _rk4_step(field, t0, dt, t1, y, args):
    third = 1.0 / 3.0
    k1 = field(t0, y, args)
    k2 = field(t0 + dt * third, y + dt * third * k1, args)
    k3 = field(t0 + dt * (2.0 * third), y + dt * (k2 - third * k1), args)
    k4 = field(t1, y + dt * (k1 - k2 + k3), args)
    return (k1 + 3.0 * (k2 + k3) + k4) * dt * 0.125


def _integrate(step, field, y0, grid, args):
    grid = jnp.asarray(grid)
    if not jnp.issubdtype(grid.dtype, jnp.floating):
        grid = grid.astype(jnp.result_type(float))

    def body(y, ts):
        t0, t1 = ts
        return y + step(field, t0, t1 - t0, t1, y, args).astype(y.dtype), None

    y1, _ = lax.scan(body, y0, (grid[:-1], grid[1:]))
    return y1


def _fixed_step_solver(step, name: str, evaluations: int):
    @functools.partial(jax.jit, static_argnames=("field",))
    def solver(field, y0, grid, args=()):
        return _integrate(step, field, y0, grid, args)

    solver.__name__ = name
    solver.__qualname__ = name
    solver.__doc__ = (
        f"{name}: integrates `field` from grid[0] to grid[-1] through every grid point "
        f"({evaluations} field evaluation(s) a step) and returns y at grid[-1]."
    )
    return solver


euler = _fixed_step_solver(_euler_step, "euler", 1)
midpoint = _fixed_step_solver(_midpoint_step, "midpoint", 2)
heun = _fixed_step_solver(_heun_step, "heun", 2)
rk4 = _fixed_step_solver(_rk4_step, "rk4", 4)

FIXED_STEP_SOLVERS = {"euler": euler, "midpoint": midpoint, "heun": heun, "rk4": rk4}
EVALUATIONS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
ADAPTIVE_SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}
SOLVERS = tuple(FIXED_STEP_SOLVERS) + tuple(ADAPTIVE_SOLVERS)


_STEPS = {
    "euler": _euler_step,
    "midpoint": _midpoint_step,
    "heun": _heun_step,
    "rk4": _rk4_step,
}


def step_rule(name: str):
    """The fixed-step rule `(field, t0, dt, t1, y, args) -> increment` of a solver; t0, dt
    and t1 may be arrays broadcasting against y (per-example times)."""
    if name not in _STEPS:
        raise ValueError(f"unknown fixed-step solver {name!r}; choose one of {', '.join(_STEPS)}")
    return _STEPS[name]


def integrate_fixed(name: str, field, y0, grid, args=()):
    """Unjitted fixed-step integration, for use inside a caller's own jitted function."""
    return _integrate(_STEPS[check_solver(name)], field, y0, grid, args)


def check_solver(name: str, where: str = "solver") -> str:
    """Returns `name` when it is a known solver; otherwise a ValueError listing the choices."""
    if name not in SOLVERS:
        raise ValueError(f"{where}: unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    return name


def integrate_adaptive(
    field,
    y0,
    args=(),
    t0=0.0,
    t1=1.0,
    rtol=1e-5,
    atol=1e-5,
    *,
    method: str = "tsit5",
    max_steps: int = 4096,
    pcoeff: float = 0.3,
    icoeff: float = 0.4,
):
    """Adaptive-step solve from t0 to t1 with a PI controller; returns (y1, accepted steps).

    `adaptive` is this function jitted (`field` and the options static).

    The error per step is kept under atol + rtol * |y| (diffrax's RMS norm). Raises (as an
    XLA runtime error) when `max_steps` is not enough.
    """
    term = diffrax.ODETerm(lambda t, y, a: field(t, y, a))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
    solution = diffrax.diffeqsolve(
        term,
        ADAPTIVE_SOLVERS[method](),
        t0,
        t1,
        None,
        y0,
        args=args,
        stepsize_controller=controller,
        saveat=diffrax.SaveAt(t1=True),
        max_steps=max_steps,
    )
    return solution.ys[-1], solution.stats["num_accepted_steps"]


adaptive = jax.jit(
    integrate_adaptive, static_argnames=("field", "method", "max_steps", "pcoeff", "icoeff")
)


def solve(
    field,
    y0,
    args=(),
    *,
    solver: str = "midpoint",
    steps: int | None = 16,
    step_size: float | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
):
    """Integrates `field` from t0 to t1 with a named solver and returns y at t1.

    Fixed-step solvers take either `steps` or `step_size` (torchdiffeq's grid; it wins when
    both are given). Adaptive solvers ignore both and use rtol / atol.
    """
    check_solver(solver)
    if solver in ADAPTIVE_SOLVERS:
        y1, _ = adaptive(field, y0, args, t0, t1, rtol, atol, method=solver)
        return y1
    if step_size is not None:
        grid = step_size_grid(step_size, t0, t1)
    elif steps is not None:
        grid = uniform_grid(steps, t0, t1)
    else:
        raise ValueError(f"solver {solver!r} needs `steps` or `step_size`")
    return FIXED_STEP_SOLVERS[solver](field, y0, grid, args)

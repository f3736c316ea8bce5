"""Few-step distillation (config.train.distill): a student that separates in `student_steps`
Euler steps learns to land where the teacher lands with many steps.

The method is progressive distillation's (Salimans & Ho, 2022) in its flow-matching form,
one round from the teacher's grid straight to the student's (docs/distillation.md):
- the student's grid is uniform, t_i = i / S for S = student_steps;
- per example, an interval i is drawn uniformly and x_{t_i} is the flow's own point between
  noise and data, x_t = (1 - (1 - s) t) x0 + t x1 (the path the teacher was trained on);
- the teacher integrates from t_i to t_{i+1} with teacher_solver in teacher_steps / S
  steps: x_end (no gradient);
- the student's single Euler step must reach it: its velocity target is
  (x_end - x_{t_i}) / (t_{i+1} - t_i), compared in the network's own output space (the x1
  estimate that gives this velocity, for model.prediction == "clean").

The teacher's parameters live in the step's frozen dict (frozen["teacher"], the student's
parameter layout and shardings: sharded like the student, never checkpointed, reloaded from
`teacher` on resume); the student starts from the teacher's weights (init_from). Sampling
defaults in the run's config become euler x S on the uniform grid, so the export says how
it samples (config.sample) and `separate` / `eval` use that unless told otherwise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from samaudio_jax.sample import solvers
from samaudio_jax.sample.separate import CLEAN_TIME_EPS, velocity_from_clean


def enabled(config) -> bool:
    distill = config.train.get("distill")
    return bool(distill is not None and int(distill.get("student_steps", 0)) > 0)


def check(config) -> None:
    """ValueError naming the config.train.distill field that is wrong."""
    d = config.train.distill
    where = "config.train.distill"
    student, teacher = int(d.student_steps), int(d.teacher_steps)
    if student < 0:
        raise ValueError(f"{where}.student_steps: expected >= 0, got {student}")
    if not student:
        return
    if not str(d.teacher):
        raise ValueError(f"{where}.teacher: empty; name the teacher's workdir or export dir")
    if d.teacher_solver not in solvers.FIXED_STEP_SOLVERS:
        raise ValueError(
            f"{where}.teacher_solver: expected one of {', '.join(solvers.FIXED_STEP_SOLVERS)}, "
            f"got {d.teacher_solver!r}"
        )
    if teacher < student or teacher % student:
        raise ValueError(
            f"{where}.teacher_steps: {teacher} must be a multiple of student_steps={student} "
            "(the teacher's steps are split evenly between the student's)"
        )


def student_config(config):
    """The run's config (a copy): sampling and in-training evaluation set to the student's
    euler x student_steps on the uniform grid."""
    check(config)
    config = config.copy_and_resolve_references()
    steps = int(config.train.distill.student_steps)
    config.sample.solver = "euler"
    config.sample.steps = steps
    config.sample.schedule = "uniform"
    config.train.eval_solver = "euler"
    config.train.eval_ode_steps = steps
    return config


def with_teacher(setup):
    """The setup with frozen["teacher"]: the student's parameter tree, shardings alike."""
    params_abstract = setup.abstract_state["params"]
    params_sh = setup.state_shardings["params"]
    return dataclasses.replace(
        setup,
        abstract_frozen={**setup.abstract_frozen, "teacher": params_abstract},
        frozen_shardings={**setup.frozen_shardings, "teacher": params_sh},
    )


def load_teacher(setup, frozen: dict, print_fn=print) -> dict:
    """frozen with the teacher's parameters (config.train.distill.teacher) placed."""
    from samaudio_jax.checkpoint.load import load_bundle
    from samaudio_jax.train.init_from import check_architecture, source_params

    source = str(setup.config.train.distill.teacher)
    try:
        bundle = load_bundle(source)
    except FileNotFoundError as err:
        raise ValueError(f"config.train.distill.teacher: {err}") from None
    check_architecture(setup.config, bundle)
    step = "" if bundle.step is None else f" (step {bundle.step})"
    if jax.process_index() == 0:
        print_fn(f"distill: teacher {source}{step}", flush=True)
    return {**frozen, "teacher": source_params(setup, bundle)}


def interval_times(key, student_steps: int):
    """(t_start, t_end) (,) of the student interval drawn with `key` (uniform grid)."""
    i = jax.random.randint(key, (), 0, student_steps)
    return i / student_steps, (i + 1) / student_steps


def teacher_endpoint(field, x, t_start, t_end, *, solver: str, steps: int):
    """x integrated from t_start to t_end (per example (B,)) in `steps` equal steps."""
    rule = solvers.step_rule(solver)
    ts = t_start.reshape(-1, 1, 1)
    dt = ((t_end - t_start) / steps).reshape(-1, 1, 1)

    def body(j, y):
        t0 = ts + j * dt
        return y + rule(field, t0, dt, t0 + dt, y, ()).astype(y.dtype)

    return jax.lax.fori_loop(0, steps, body, x)


def velocity_field(network, prediction: str, sigma_min: float):
    """field(t (B, 1, 1), x, args) -> velocity from a network(x, time (B,))."""

    def field(t, x, args):
        out = network(x, t.reshape(-1).astype(jnp.float32) * jnp.ones((x.shape[0],)))
        if prediction == "clean":
            out = velocity_from_clean(out, x, t, sigma_min)
        return out

    return field


def student_target(x_t, x_end, t_start, t_end, *, prediction: str, sigma_min: float):
    """What the student's output is compared with so that one Euler step from x_t at t_start
    lands on x_end at t_end."""
    tt = t_start.reshape(-1, 1, 1)
    velocity = (x_end - x_t) / (t_end - t_start).reshape(-1, 1, 1)
    if prediction == "velocity":
        return velocity
    keep = 1.0 - sigma_min
    # Inverse of sample.separate.velocity_from_clean (t_start < 1, so no clamp is reached).
    return velocity * jnp.maximum(1.0 - keep * tt, CLEAN_TIME_EPS) + keep * x_t


def distilled_target(setup, frozen, x_t, cond, t, t_end, conditions):
    """The student's regression target: where the frozen teacher's steps land from (x_t, t)
    at t_end, in the network's output space (conditions: the flow's prompt keywords)."""
    config = setup.config
    d, prediction = config.train.distill, config.model.prediction
    sigma_min = float(config.train.sigma_min)
    teacher = nnx.merge(setup.flow_graph, frozen["teacher"]["flow"], frozen["flow"])

    def teacher_net(x, time):
        return teacher(x, cond, time=time, deterministic=True, **conditions)

    x_end = teacher_endpoint(
        velocity_field(teacher_net, prediction, sigma_min),
        x_t,
        t,
        t_end,
        solver=str(d.teacher_solver),
        steps=int(d.teacher_steps) // int(d.student_steps),
    )
    return jax.lax.stop_gradient(
        student_target(x_t, x_end, t, t_end, prediction=prediction, sigma_min=sigma_min)
    )

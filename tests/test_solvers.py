"""ODE solvers: torchdiffeq's step rules, their convergence orders, the adaptive tolerance."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchdiffeq

from samaudio_jax.sample import solvers

MIX = np.array([[0.3, -1.1, 0.2], [0.9, -0.4, 0.5], [-0.6, 0.1, -0.8]], np.float32)


def field_jax(t, y, args):
    mix = args
    return jnp.tanh(y @ mix) * jnp.cos(3.0 * t) - 0.7 * y + jnp.sin(2.0 * t)


def field_torch(t, y):
    mix = torch.from_numpy(MIX)
    return torch.tanh(y @ mix) * torch.cos(3.0 * t) - 0.7 * y + torch.sin(2.0 * t)


TORCHDIFFEQ_NAME = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk4": "rk4"}


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "rk4"])
def test_fixed_step_solver_matches_torchdiffeq_with_step_size(name):
    y0 = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    step = 2 / 32 if name == "midpoint" else 0.07  # 0.07 leaves a short last step
    ours = solvers.solve(field_jax, jnp.asarray(y0), jnp.asarray(MIX), solver=name, step_size=step)
    ref = torchdiffeq.odeint(
        field_torch,
        torch.from_numpy(y0),
        torch.tensor([0.0, 1.0]),
        method=TORCHDIFFEQ_NAME[name],
        options={"step_size": step},
    )[-1]
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "rk4"])
def test_fixed_step_solver_matches_torchdiffeq_on_an_explicit_grid(name):
    y0 = np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)
    grid = solvers.uniform_grid(9, 0.0, 1.0)
    ours = solvers.FIXED_STEP_SOLVERS[name](field_jax, jnp.asarray(y0), grid, jnp.asarray(MIX))
    ref = torchdiffeq.odeint(
        field_torch, torch.from_numpy(y0), torch.from_numpy(grid), method=TORCHDIFFEQ_NAME[name]
    )[-1]
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_step_size_grid_is_torchdiffeqs_grid():
    np.testing.assert_array_equal(solvers.step_size_grid(2 / 32), np.arange(17) / 16)
    grid = solvers.step_size_grid(0.3)
    np.testing.assert_allclose(grid, [0.0, 0.3, 0.6, 0.9, 1.0], rtol=1e-6)


# y' = ((a + c cos t) I + b J) y with J a 90-degree rotation: the two parts commute, so
# y(1) = exp(a + c sin 1) R(b) y(0).
A, B, C = -0.8, 2.0, 0.6


def linear_field(t, y, args):
    rate = A + C * jnp.cos(t)
    return rate * y + B * jnp.stack([-y[..., 1], y[..., 0]], axis=-1)


def linear_exact(y0):
    scale = math.exp(A + C * math.sin(1.0))
    c, s = math.cos(B), math.sin(B)
    return scale * np.stack([c * y0[..., 0] - s * y0[..., 1], s * y0[..., 0] + c * y0[..., 1]], -1)


@pytest.mark.parametrize(
    ("name", "order"), [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)]
)
def test_fixed_step_solver_converges_at_its_order(name, order):
    y0 = np.array([[1.0, 0.5], [-0.3, 2.0]])
    exact = linear_exact(y0)
    counts = np.array([8, 16, 32, 64])
    with jax.enable_x64(True):
        errors = [
            np.abs(
                np.asarray(
                    solvers.FIXED_STEP_SOLVERS[name](
                        linear_field, jnp.asarray(y0), jnp.linspace(0.0, 1.0, n + 1)
                    )
                )
                - exact
            ).max()
            for n in counts
        ]
    slope = np.polyfit(np.log(1.0 / counts), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, (slope, errors)


@pytest.mark.parametrize("method", ["tsit5", "dopri5"])
def test_adaptive_solver_meets_its_tolerance_and_adapts_its_steps(method):
    y0 = np.array([[1.0, 0.5], [-0.3, 2.0]])
    exact = linear_exact(y0)
    with jax.enable_x64(True):
        tight, tight_steps = solvers.adaptive(
            linear_field, jnp.asarray(y0), rtol=1e-9, atol=1e-9, method=method
        )
        loose, loose_steps = solvers.adaptive(
            linear_field, jnp.asarray(y0), rtol=1e-4, atol=1e-4, method=method
        )
    assert np.abs(np.asarray(tight) - exact).max() < 1e-7
    assert np.abs(np.asarray(loose) - exact).max() < 1e-3
    assert int(tight_steps) > int(loose_steps)


def test_solve_dispatches_to_adaptive_by_name():
    y0 = jnp.asarray(np.array([[1.0, 0.5]], np.float32))
    y1 = solvers.solve(linear_field, y0, solver="tsit5", rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(y1), linear_exact(np.asarray(y0)), rtol=1e-4)


def test_unknown_solver_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown solver 'rk45'.*euler, midpoint, heun, rk4"):
        solvers.solve(linear_field, jnp.ones((1, 2)), solver="rk45")


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_step_count_is_refused(bad):
    with pytest.raises(ValueError, match="steps"):
        solvers.solve(linear_field, jnp.ones((1, 2)), solver="euler", steps=bad)

"""Sampling: ODE solvers, separate(), long audio, rankers, spans."""

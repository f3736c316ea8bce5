"""Parallelism: meshes, logical-axis rules, multi-host start-up, AOT compilation."""

"""`samaudio-jax info`: parameter counts of the release sizes match the paper's table, parts
add up, and --forward runs the tiny model."""

from __future__ import annotations

import re

import pytest

from samaudio_jax.cli.main import main
from samaudio_jax.model.summary import parameter_counts
from tests.release_fixtures import small_model_config

# SPEC.md's table (paper): DiT + adapters.
PAPER_COUNTS = {"small": 496e6, "base": 1.15e9, "large": 2.94e9}


def info_total(capsys, *argv) -> int:
    assert main(["info", *argv]) == 0
    text = capsys.readouterr().out
    match = re.search(r"^\s+total\s+([\d,]+)", text, re.M)
    assert match, text
    return int(match.group(1).replace(",", "")), text


@pytest.mark.parametrize("name", list(PAPER_COUNTS))
def test_release_sizes_match_the_paper_within_2_percent(capsys, name):
    total, text = info_total(capsys, "--config", f"configs/{name}.py")
    assert abs(total - PAPER_COUNTS[name]) / PAPER_COUNTS[name] < 0.02, total
    assert "transformer.layers" in text and "align_masked_video" in text


def test_parts_add_up_and_layers_scale_linearly():
    two = parameter_counts(small_model_config())
    three = parameter_counts(small_model_config(num_layers=3))
    assert two["total"] == sum(v for k, v in two.items() if k != "total")
    assert three["transformer.layers"] == two["transformer.layers"] * 3 // 2
    assert parameter_counts(small_model_config(scan_layers=True)) == two


@pytest.mark.slow
def test_forward_on_tiny_prints_the_output_shape(capsys):
    _, text = info_total(
        capsys, "--config", "configs/tiny.py", "--forward", "--frames", "7", "--batch", "2"
    )
    assert "output (2, 7, 32)" in text


def test_override_reaches_the_model(capsys):
    _, text = info_total(capsys, "--config", "configs/tiny.py", "--config.model.num_layers=3")
    assert "layers 3" in text

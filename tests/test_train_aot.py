"""AOT compilation of the real train step for a TPU topology on this CPU host (libtpu),
with visual-prompt features in the batch, and the refusal of a step that does not fit."""

import importlib.util
import re
import subprocess

import pytest
from train_testlib import PYTHON, REPO, subprocess_env

SCRIPT = """
import sys
from samaudio_jax.cli.compile import main
args = ["--config", "configs/tiny.py", "--topology", "v5e:2x2",
        "--config.data.segment_seconds=0.032"]
print("FIRST", main(args + ["--video"]), flush=True)
print("SECOND", main(args + ["--hbm_gib", "0.001"]), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason='libtpu is not installed (pip install "jax[tpu]==<jax version>" provides it)',
)
def test_tiny_config_compiles_for_v5e_2x2_and_an_oversized_step_is_refused():
    env = subprocess_env()
    env.update(TPU_WORKER_HOSTNAMES="localhost", ALLOW_MULTIPLE_LIBTPU_LOAD="1")
    env.pop("XLA_FLAGS")
    proc = subprocess.run(
        [PYTHON, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "FIRST 0" in out and "SECOND 2" in out, out[-4000:]
    assert "on v5e:2x2 (4 chips" in out
    assert out.count("with visual-prompt features (B, 48, T)") == 1  # FIRST's batch has video
    mem = [float(x) for x in re.findall(r"per-chip memory: ([\d.]+) GiB of 16 GiB", out)]
    assert len(mem) == 1 and 0 < mem[0] < 1, out[-4000:]
    flops = float(re.search(r"FLOPs per step per chip: ([\d.e+]+)", out).group(1))
    assert flops > 1e6
    assert re.search(r"bytes accessed per step per chip: [\d.e+]+", out)
    assert re.search(r"roofline PREDICTION \(not a measurement; v5e: 197 TFLOP/s", out), out
    assert re.search(r"error: config tiny does not fit v5e:2x2: needs [\d.]+ GiB per chip", out)

"""Data, FSDP and tensor parallelism on 8 simulated CPU devices match one device."""

import json
import subprocess

import numpy as np
import pytest
from train_testlib import PYTHON, REPO, subprocess_env


@pytest.mark.slow
def test_meshes_give_the_same_losses_fsdp_splits_params_and_restore_reshards(tmp_path):
    env = subprocess_env(devices=8)
    env["PYTHONPATH"] = f"{REPO}:{REPO / 'tests'}"
    proc = subprocess.run(
        [PYTHON, str(REPO / "tests" / "train_parallel_worker.py"), str(tmp_path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    ref = out["losses"]["single"]
    assert len(ref) == 3 and np.isfinite(ref).all()
    for name in ("fsdp", "mixed"):
        np.testing.assert_allclose(out["losses"][name], ref, rtol=1e-5, err_msg=name)
    # FSDP really splits the large matrices (not just in name).
    assert len(out["fsdp_split"]) >= out["num_params"] // 3, out["fsdp_split"]
    # A checkpoint from the FSDP mesh restores exactly onto the (2, 2, 2) mesh.
    assert out["restored_equal"]
    assert out["restored_mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    np.testing.assert_allclose(out["continued"][1], out["continued"][0], rtol=1e-5)

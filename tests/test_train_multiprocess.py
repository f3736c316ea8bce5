"""Two processes on localhost (jax.distributed, 4 CPU devices each) train like one process."""

import portpicker
import pytest
from train_testlib import subprocess_env, train_cli

from samaudio_jax.train.metrics import read_losses

STEPS = ["--config.train.steps=3", "--config.train.global_batch_size=8"]


@pytest.mark.slow
def test_two_processes_match_the_single_process_losses(tmp_path):
    port = portpicker.pick_unused_port()
    env = subprocess_env(devices=4)
    workers = [
        train_cli(
            tmp_path / "multi",
            STEPS
            + [
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            env,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-4000:]
    assert "step 3/3" in outputs[0]
    single = train_cli(tmp_path / "single", STEPS, subprocess_env(devices=8))
    out = single.communicate(timeout=600)[0]
    assert single.returncode == 0, out[-4000:]
    multi, ref = read_losses(tmp_path / "multi"), read_losses(tmp_path / "single")
    assert sorted(ref) == [1, 2, 3] and sorted(multi) == [1, 2, 3]
    for step in ref:
        assert abs(multi[step] - ref[step]) <= 1e-5 * abs(ref[step]), (step, multi, ref)
    # Both processes wrote their part of the final checkpoint, data iterator state included.
    data = tmp_path / "multi" / "checkpoints" / "3" / "data"
    assert sorted(p.name for p in data.glob("process_*.json")) == [
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]

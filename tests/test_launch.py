"""Launch scripts parse, print the commands they would run, and name missing flags."""

import pathlib
import subprocess

import pytest

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / "launch"


def _run(script, *args):
    return subprocess.run(
        ["bash", str(LAUNCH / script), *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("script", ["tpu_pod.sh", "xpk.sh", "slurm_gpu.sh", "common.sh"])
def test_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(LAUNCH / script)]).returncode == 0


def test_tpu_pod_dry_run_prints_setup_and_train_on_all_workers():
    out = _run(
        "tpu_pod.sh",
        "--tpu",
        "pod1",
        "--zone",
        "us-east5-a",
        "--config",
        "configs/large.py",
        "--workdir",
        "gs://b/run",
        "--setup",
        "--dry-run",
        "--",
        "--config.train.steps=7",
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("+ ")]
    assert len(lines) == 2
    assert all("tpu-vm ssh pod1 --zone us-east5-a --worker=all" in ln for ln in lines)
    assert "pip install" in lines[0]
    assert (
        "samaudio-jax train --config configs/large.py --workdir gs://b/run --config.train.steps=7"
        in lines[1]
    )


def test_xpk_multislice_puts_data_axis_over_dcn():
    out = _run(
        "xpk.sh",
        "--cluster",
        "c1",
        "--tpu-type",
        "v5p-128",
        "--num-slices",
        "2",
        "--image",
        "img",
        "--config",
        "configs/large.py",
        "--workdir",
        "gs://b/r",
        "--workload",
        "w1",
        "--dry-run",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(
        "+ xpk workload create --cluster c1 --workload w1 --tpu-type v5p-128 --num-slices 2"
    )
    assert "--config.mesh.dcn_data=2" in out.stdout


def test_slurm_dry_run_writes_coordinator_and_process_ids():
    out = _run(
        "slurm_gpu.sh",
        "--nodes",
        "3",
        "--config",
        "configs/base.py",
        "--workdir",
        "/s/r",
        "--dry-run",
    )
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --nodes=3" in out.stdout
    assert "--num_processes $SLURM_NTASKS --process_id $SLURM_PROCID" in out.stdout
    assert "+ sbatch " in out.stdout


@pytest.mark.parametrize(
    "script, flag", [("tpu_pod.sh", "--tpu"), ("xpk.sh", "--cluster"), ("slurm_gpu.sh", "--nodes")]
)
def test_missing_required_flag_is_named(script, flag):
    out = _run(script, "--dry-run")
    assert out.returncode == 2
    assert f"{flag} is required" in out.stderr

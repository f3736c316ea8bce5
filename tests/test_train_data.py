"""The loop reads the Grain pipeline (config.data.dir) and checkpoints its iterator state."""

import shutil

import pytest
from train_testlib import subprocess_env, train_cli

from samaudio_jax.data.synth import write_synth_corpus
from samaudio_jax.train.metrics import read_losses


@pytest.mark.slow
def test_training_on_shards_resumes_with_the_data_iterator_where_it_stopped(tmp_path):
    write_synth_corpus(
        tmp_path / "corpus", sample_rate=8000, clip_seconds=0.1, train_per_class=4, test_per_class=1
    )
    data = [
        f"--config.data.dir={tmp_path / 'corpus'}",
        "--config.train.synthetic_data=false",
        "--config.train.steps=4",
        "--config.train.checkpoint_every=2",
    ]
    env = subprocess_env()
    run = train_cli(tmp_path / "a", data, env)
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0, out[-4000:]
    ref = read_losses(tmp_path / "a")
    assert sorted(ref) == [1, 2, 3, 4]
    # The checkpoint of step 2 holds the iterator's position (one JSON file per process).
    ckpt2 = tmp_path / "a" / "checkpoints" / "2"
    assert (ckpt2 / "data" / "process_0-of-1.json").read_text().strip()
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copytree(ckpt2, tmp_path / "b" / "checkpoints" / "2")
    run = train_cli(tmp_path / "b", data, env)
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0, out[-4000:]
    assert "resumed from" in out
    resumed = read_losses(tmp_path / "b")
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert abs(resumed[step] - ref[step]) <= 1e-6 * abs(ref[step]), (step, resumed, ref)

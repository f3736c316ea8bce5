"""The loop reads the Grain pipeline (config.data.dir) and checkpoints its iterator state."""

import pickle
import shutil

import numpy as np
import pytest
from train_testlib import subprocess_env, tiny_config, train_cli

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


@pytest.mark.slow
def test_training_with_grain_worker_processes_gives_the_same_losses(tmp_path):
    """data.worker_count=2: what the workers get (the tokenizer above all) pickles, and the
    batches, hence the losses, are those of worker_count=0."""
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
    losses = {}
    for workers in (0, 2):
        run = train_cli(
            tmp_path / f"w{workers}", data + [f"--config.data.worker_count={workers}"], env
        )
        out = run.communicate(timeout=600)[0]
        assert run.returncode == 0, out[-4000:]
        losses[workers] = read_losses(tmp_path / f"w{workers}")
    assert sorted(losses[0]) == [1, 2, 3, 4]
    assert losses[2] == losses[0]
    # The workers' iterator state is checkpointed: resuming step 2 continues the stream.
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "w2" / "checkpoints" / "2", tmp_path / "r" / "checkpoints" / "2")
    run = train_cli(tmp_path / "r", data + ["--config.data.worker_count=2"], env)
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0 and "resumed from" in out, out[-4000:]
    resumed = read_losses(tmp_path / "r")
    assert resumed == {3: losses[0][3], 4: losses[0][4]}


def test_the_tokenizer_sent_to_data_workers_pickles_and_tokenizes_alike():
    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import state as state_lib

    config = tiny_config()
    setup = state_lib.build_setup(config, make_mesh(config.mesh))
    texts = ["a steady pure tone", ""]
    copy = pickle.loads(pickle.dumps(setup.tokenizer))
    for got, want in zip(copy(texts), setup.tokenize(texts)):
        np.testing.assert_array_equal(got, want)
    assert len(pickle.dumps(setup.tokenizer)) < 1000  # the vocabulary's rules, no weights

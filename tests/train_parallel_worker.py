"""Run in a subprocess with 8 CPU devices by test_train_parallel.py; prints one JSON line.

Trains the tiny config 3 steps on several meshes from the same initial state and batches,
reports the losses, which parameters FSDP really split, and whether a checkpoint saved on
one mesh restores onto another and continues with the same loss.
"""

import json
import sys

import jax
import numpy as np
from train_testlib import tiny_config

from samaudio_jax.checkpoint.orbax_io import TrainCheckpointer
from samaudio_jax.parallel.mesh import make_mesh
from samaudio_jax.train import state as state_lib
from samaudio_jax.train import step as step_lib
from samaudio_jax.train.synthetic import SyntheticBatches

MESHES = {
    "single": (1, 1, 1),
    "fsdp": (1, 8, 1),
    "mixed": (2, 2, 2),
}


def _config(shape):
    d, f, t = shape
    return tiny_config(
        [
            "--config.train.global_batch_size=8",
            f"--config.mesh.data={d}",
            f"--config.mesh.fsdp={f}",
            f"--config.mesh.tensor={t}",
        ]
    )


def _setup(name):
    config = _config(MESHES[name])
    devices = jax.devices()[: int(np.prod(MESHES[name]))]
    return config, state_lib.build_setup(config, make_mesh(config.mesh, devices))


def _run(setup, state, frozen, local_batches):
    fn = step_lib.jit_train_step(setup, local_batches[0])
    losses = []
    for b in local_batches:
        state, m = fn(state, frozen, step_lib.global_batch(setup, b), jax.random.PRNGKey(0))
        losses.append(float(m["loss"]))
    return state, losses


def main(workdir):
    assert jax.device_count() == 8, jax.devices()
    out = {"losses": {}}
    _, probe = _setup("single")
    src = SyntheticBatches(
        global_batch=8, num_samples=256, sample_rate=8000, tokenize=probe.tokenize
    )
    batches = [next(src) for _ in range(4)]
    states = {}
    for name in MESHES:
        config, setup = _setup(name)
        state, frozen = state_lib.init_state(setup), state_lib.init_frozen(setup)
        state, losses = _run(setup, state, frozen, batches[:3])
        out["losses"][name] = losses
        states[name] = (config, setup, state, frozen)

    # Which parameters did FSDP split, and are the local shards really smaller?
    _, setup, state, _ = states["fsdp"]
    split, total = [], 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(state["params"]):
        total += 1
        shard = leaf.addressable_shards[0].data.shape
        if "fsdp" in str(leaf.sharding.spec):
            assert shard != leaf.shape, (path, shard, leaf.shape)
            split.append(jax.tree_util.keystr(path))
    out["fsdp_split"], out["num_params"] = split, total

    # Save on the FSDP mesh, restore onto the mixed mesh, continue one step on both.
    config, setup, state, frozen = states["fsdp"]
    ckpt = TrainCheckpointer(f"{workdir}/ckpt", config)
    ckpt.save(3, state, force=True)
    ckpt.wait_until_finished()
    _, mixed_setup, _, mixed_frozen = states["mixed"]
    restored, _ = ckpt.restore(3, mixed_setup.abstract_state)
    ckpt.close()
    same = jax.tree.map(
        lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
        jax.device_get(state["params"]),
        jax.device_get(restored["params"]),
    )
    out["restored_equal"] = all(jax.tree.leaves(same))
    leaf = jax.tree.leaves(restored["params"])[0]
    out["restored_mesh"] = dict(leaf.sharding.mesh.shape)
    _, a = _run(setup, state, frozen, batches[3:])
    _, b = _run(mixed_setup, restored, mixed_frozen, batches[3:])
    out["continued"] = [a[0], b[0]]
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])

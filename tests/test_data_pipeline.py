"""The Grain pipeline: per-process sharding, determinism, exact resume (also with workers),
tokenize hook, batch layout, and the TFDS path without TensorFlow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from samaudio_jax.config_schema import default_config
from samaudio_jax.data.pipeline import (
    MakeExample,
    PipelineConfig,
    descriptions,
    make_dataset,
    restore_iterator_state,
    save_iterator_state,
)
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.synth import write_synth_corpus

RATE = 8000
REPO = Path(__file__).resolve().parents[1]
CFG = PipelineConfig(sample_rate=RATE, segment_seconds=0.5, negative_span_prob=0.5)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synth_corpus(root, seed=0, train_per_class=5, test_per_class=1, sample_rate=RATE)
    return root


@pytest.fixture(scope="module")
def reader(corpus_root):
    return ShardReader(corpus_root / "train")


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_two_shards_are_disjoint_and_cover_the_split(reader):
    seen = []
    for shard in range(2):
        ds = make_dataset(
            reader,
            CFG,
            batch_size=4,
            seed=5,
            shard_index=shard,
            shard_count=2,
            num_epochs=1,
            drop_remainder=False,
        )
        seen.append([int(i) for b in ds for i in b["index"]])
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(len(reader)))
    assert len(set(seen[0])) == len(seen[0]) == (len(reader) + 1) // 2


def test_same_seed_same_batches_other_seed_other_batches(reader):
    def first(seed, n=3):
        it = iter(make_dataset(reader, CFG, batch_size=4, seed=seed))
        return [next(it) for _ in range(n)]

    _assert_batches_equal(first(11), first(11))
    assert not np.array_equal(first(11)[0]["mixture"], first(12)[0]["mixture"])


def test_epochs_reshuffle_and_recrop(reader):
    n = len(reader)
    it = iter(make_dataset(reader, CFG, batch_size=n, seed=0, drop_remainder=False))
    e1, e2 = next(it), next(it)
    assert sorted(e1["index"]) == sorted(e2["index"]) == list(range(n))
    assert not np.array_equal(e1["index"], e2["index"])


def test_batch_keys_shapes_and_dtypes(reader):
    b = next(iter(make_dataset(reader, CFG, batch_size=3)))
    n, k = CFG.segment_samples, CFG.max_spans
    expected = {
        "mixture": ((3, n), np.float32),
        "target": ((3, n), np.float32),
        "residual": ((3, n), np.float32),
        "valid": ((3, n), np.bool_),
        "spans": ((3, k, 3), np.float32),
        "category": ((3,), np.int32),
        "description": ((3, CFG.description_bytes), np.uint8),
        "description_length": ((3,), np.int32),
        "snr_db": ((3, CFG.max_sources), np.float32),
        "num_sources": ((3,), np.int32),
        "index": ((3,), np.int64),
    }
    assert {key: (v.shape, v.dtype) for key, v in b.items()} == expected
    texts = descriptions(b)
    assert texts == [reader[int(i)]["description"] for i in b["index"]]


def byte_tokenize(texts):
    """A module-level tokenize hook: bytes + 1, padded to 16."""
    ids = np.zeros((len(texts), 16), np.int32)
    for i, t in enumerate(texts):
        raw = list(t.encode())[:16]
        ids[i, : len(raw)] = np.array(raw) + 1
    return ids, ids > 0


def test_tokenize_hook(reader):
    # (prompt dropout is the train step's: tests/test_config_validation.py)
    b = next(iter(make_dataset(reader, CFG, batch_size=4, tokenize=byte_tokenize)))
    ids, mask = byte_tokenize(descriptions(b))
    np.testing.assert_array_equal(b["text_ids"], ids)
    np.testing.assert_array_equal(b["text_mask"], mask)
    assert mask.any() and np.all(b["description_length"] > 0)


def test_others_never_share_the_target_description(reader):
    cfg = PipelineConfig(sample_rate=RATE, segment_seconds=0.5, min_sources=2, max_sources=2)
    transform = MakeExample(reader, cfg)
    rng = np.random.default_rng(0)
    for index in range(len(reader)):
        others, aligned = transform._others(index, 2, rng)
        assert not aligned and len(others) == 2 and index not in others
        own = reader.records[index]["description"]
        assert all(reader.records[j]["description"] != own for j in others)


def test_resume_from_saved_state_matches_uninterrupted_run(reader, tmp_path):
    def fresh():
        return iter(make_dataset(reader, CFG, batch_size=3, seed=4))

    reference = fresh()
    expected = [next(reference) for _ in range(8)]  # crosses an epoch boundary (25 records)
    it = fresh()
    for _ in range(4):
        next(it)
    save_iterator_state(it, tmp_path / "state.json")
    del it
    resumed = fresh()
    restore_iterator_state(resumed, tmp_path / "state.json")
    _assert_batches_equal([next(resumed) for _ in range(4)], expected[4:])


def test_config_section_builds_the_pipeline_config():
    c = default_config()
    c.data.snr_db = (-3.0, 4.0)
    c.data.sample_rate = RATE
    cfg = PipelineConfig.from_config(c.data)
    assert cfg.snr_db == (-3.0, 4.0) and cfg.sample_rate == RATE
    assert cfg.segment_samples == int(c.data.segment_seconds * RATE)
    c.data.min_sources = 3
    with pytest.raises(ValueError, match="data.min_sources 3"):
        PipelineConfig.from_config(c.data)


def test_wrong_rate_between_shards_and_config_is_rejected(reader):
    with pytest.raises(ValueError, match="stored at 8000 Hz but data.sample_rate is 16000"):
        make_dataset(reader, PipelineConfig(sample_rate=16000), batch_size=2)


WORKER_RESUME = """
import json, sys
import numpy as np
from samaudio_jax.data.pipeline import PipelineConfig, make_dataset
from samaudio_jax.data.shards import ShardReader

def fresh(workers):
    cfg = PipelineConfig(sample_rate=8000, segment_seconds=0.5, worker_count=workers)
    return iter(make_dataset(ShardReader(sys.argv[1]), cfg, batch_size=3, seed=9))

def digest(batches):
    return [{k: v.tolist() for k, v in b.items() if k in ("index", "mixture")} for b in batches]

if __name__ == "__main__":
    ref = fresh(2)
    first = [next(ref) for _ in range(3)]
    state = json.loads(json.dumps(ref.get_state()))  # saved mid-epoch, as JSON
    expected = [next(ref) for _ in range(3)]  # the uninterrupted run goes on
    del ref
    resumed = fresh(2)  # a rebuilt pipeline with new workers
    resumed.set_state(state)
    got = [next(resumed) for _ in range(3)]
    print(json.dumps({"expected": digest(expected), "got": digest(got), "first": digest(first)}))
"""


@pytest.mark.slow
def test_resume_with_two_mp_prefetch_workers_matches_uninterrupted_run(corpus_root, tmp_path):
    script = tmp_path / "worker_resume.py"
    script.write_text(WORKER_RESUME)
    out = subprocess.run(
        [sys.executable, str(script), str(corpus_root / "train")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["got"] == result["expected"]
    assert len({i for b in result["first"] + result["got"] for i in b["index"]}) == 18


TFDS_CHECK = """
import json, sys
import numpy as np
from samaudio_jax.data.pipeline import PipelineConfig, make_dataset
from samaudio_jax.data.shards import ShardReader
from samaudio_jax.data.tfds_builder import load_tfds_source, prepare_tfds

root, data_dir = sys.argv[1], sys.argv[2]
prepare_tfds(root, data_dir)
source = load_tfds_source(data_dir, "train")
shards = ShardReader(root + "/train")
same = all(
    source[i]["id"] == shards[i]["id"]
    and source[i]["description"] == shards[i]["description"]
    and np.allclose(source[i]["spans"], shards[i]["spans"], atol=1e-6)
    and (source[i]["audio"] == shards[i]["audio"]).all()
    for i in range(len(shards))
)
batch = next(iter(make_dataset(source, PipelineConfig(sample_rate=8000, segment_seconds=0.5),
                               batch_size=2)))
print(json.dumps({"n": len(source), "same": bool(same), "batch": list(batch["mixture"].shape),
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def test_tfds_builder_loads_with_data_source_without_tensorflow(corpus_root, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", TFDS_CHECK, str(corpus_root), str(tmp_path / "tfds")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"n": 25, "same": True, "batch": [2, 4000], "tensorflow": False}


def test_orbax_checkpoint_manager_restores_the_iterator_exactly(reader, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    def fresh():
        return iter(make_dataset(reader, CFG, batch_size=3, seed=2))

    it = fresh()
    for _ in range(5):
        next(it)
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    with ocp.CheckpointManager(tmp_path / "ckpt", options=options) as manager:
        manager.save(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        manager.wait_until_finished()
        expected = [next(it) for _ in range(3)]
        resumed = fresh()
        manager.restore(
            5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed))
        )
    _assert_batches_equal([next(resumed) for _ in range(3)], expected)


def test_dataset_from_config_reads_the_split_under_data_dir(corpus_root):
    from samaudio_jax.data.pipeline import dataset_from_config

    c = default_config()
    c.data.dir = str(corpus_root)
    c.data.sample_rate = RATE
    c.data.segment_seconds = 0.5
    c.train.global_batch_size = 4
    b = next(iter(dataset_from_config(c, "test")))
    assert b["mixture"].shape == (4, 4000)
    assert set(b["index"].tolist()) <= set(range(5))  # the test split holds 5 records
    c.data.dir = str(corpus_root / "nothing")
    with pytest.raises(ValueError, match="neither train/index.json nor index.json"):
        dataset_from_config(c, "train")


TWO_PROCESS = """
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", 2)
jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2,
                           process_id=int(sys.argv[3]))
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from samaudio_jax.data.pipeline import PipelineConfig, make_dataset, process_shard
from samaudio_jax.data.shards import ShardReader

index, count = process_shard()
cfg = PipelineConfig(sample_rate=8000, segment_seconds=0.5)
ds = make_dataset(ShardReader(sys.argv[1]), cfg, batch_size=2, seed=3, shard_index=index,
                  shard_count=count, num_epochs=1)
mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,))
local, seen, gathered = None, [], []
for batch in ds:
    arrays = {k: jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), v)
              for k, v in batch.items() if k in ("index", "mixture", "valid")}
    seen += batch["index"].tolist()
    full = multihost_utils.process_allgather(arrays["index"], tiled=True)
    gathered.append(np.asarray(full).tolist())
    shape = list(arrays["mixture"].shape)
print(json.dumps({"process": index, "count": count, "seen": seen, "gathered": gathered,
                  "shape": shape}))
"""


def test_two_jax_processes_get_disjoint_shards_that_form_global_batches(corpus_root, tmp_path):
    import portpicker

    address = f"127.0.0.1:{portpicker.pick_unused_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESS, str(corpus_root / "train"), address, str(i)],
            env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    a, b = sorted(results, key=lambda r: r["process"])
    assert a["count"] == b["count"] == 2
    assert set(a["seen"]).isdisjoint(b["seen"])
    assert len(a["seen"]) == len(b["seen"]) == 12  # 13 and 12 records, 6 full batches each
    assert a["shape"] == [4, 4000]
    # Each global batch is process 0's local batch followed by process 1's.
    expected = [a["seen"][i : i + 2] + b["seen"][i : i + 2] for i in range(0, 12, 2)]
    assert a["gathered"] == b["gathered"] == expected

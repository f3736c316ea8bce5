"""The test GCS server works with both clients the project uses: gcsfs (via etils.epath) and
tensorstore (Orbax's array writes)."""

import numpy as np

from samaudio_jax.paths import as_path


def test_epath_and_tensorstore_reach_the_server(gcs_server, gcs_bucket):
    import tensorstore as ts

    p = as_path(f"{gcs_bucket}/a/b.txt")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("hello")
    assert as_path(f"{gcs_bucket}/a/b.txt").read_text() == "hello"
    arr = ts.open(
        {"driver": "zarr", "kvstore": f"{gcs_bucket}/arr"},
        create=True,
        dtype=ts.float32,
        shape=[5],
    ).result()
    arr.write(np.arange(5, dtype=np.float32)).result()
    again = ts.open({"driver": "zarr", "kvstore": f"{gcs_bucket}/arr"}).result()
    np.testing.assert_array_equal(again.read().result(), np.arange(5, dtype=np.float32))
    names = gcs_server.list_objects(gcs_bucket)
    assert "a/b.txt" in names and "arr/.zarray" in names and "arr/0" in names
    assert gcs_server.read_object(gcs_bucket, "a/b.txt") == b"hello"

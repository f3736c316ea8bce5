"""separate() gives today's results for the same inputs and seeds: the golden outputs in
tests/data/separate_golden.npz were written by tests/separate_golden.py before separate()
was split into stages (batched short items with padding, spans and video, ranked
candidates, chunked long items)."""

import numpy as np
import pytest

from tests import separate_golden as golden


@pytest.fixture(scope="module")
def sep():
    return golden.separator()


@pytest.mark.parametrize("name", sorted(golden.cases()))
def test_separate_matches_the_golden_outputs(sep, name):
    expected = {k: v for k, v in np.load(golden.GOLDEN).items() if k.startswith(f"{name}/")}
    actual = golden.flatten(name, golden.run_case(sep, golden.cases()[name]))
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        assert got.shape == want.shape and got.dtype == want.dtype, key
        if want.dtype.kind == "f":
            # float32 rounding (another CPU's vector width may round differently); another
            # noise draw differs by ~1e-1 of the peak, a changed stage by far more than 1e-4.
            scale = max(float(np.abs(want).max()), 1e-6)
            assert np.abs(got - want).max() <= 1e-4 * scale, key
        else:
            np.testing.assert_array_equal(got, want, err_msg=key)

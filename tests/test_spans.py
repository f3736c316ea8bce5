"""Span prompts become the release's anchor ids and per-frame alignment."""

import math

import numpy as np
import pytest

from samaudio_jax.data import spans as sp

RATE, HOP = 48000, 1920


def test_positive_span_covers_exactly_the_ceil_frames():
    valid = np.ones((1, 100), bool)
    ids, align = sp.spans_to_anchors([[("+", 1.0, 2.5)]], valid, RATE, HOP)
    lo, hi = math.ceil(1.0 * RATE / HOP), math.ceil(2.5 * RATE / HOP)
    assert ids.tolist() == [[0, 3, 1]]
    assert np.all(align[0, lo:hi] == 2)
    assert np.all(align[0, :lo] == 0) and np.all(align[0, hi:] == 0)


def test_padded_frames_point_at_pad_and_ids_are_padded_per_batch():
    valid = np.ones((2, 60), bool)
    valid[1, 40:] = False
    ids, align = sp.spans_to_anchors([[("+", 0.1, 0.5), ("-", 1.0, 1.2)], None], valid, RATE, HOP)
    assert ids.tolist() == [[0, 3, 1, 2], [0, 3, 3, 3]]
    assert np.all(align[1, 40:] == 1) and np.all(align[1, :40] == 0)
    assert set(np.unique(align[0])) == {0, 2, 3}


def test_jittable_span_array_matches_list_form():
    valid = np.ones((3, 80), bool)
    valid[0, 70:] = False
    lists = [[("+", 0.3, 1.1), ("-", 2.0, 3.3)], [("-", 0.0, 0.7)], []]
    arr = np.stack([sp.spans_to_array(s, 3) for s in lists])
    ids_ref, align_ref = sp.spans_to_anchors(lists, valid, RATE, HOP)
    ids, align = sp.span_array_to_anchors(arr, valid, RATE, HOP)
    np.testing.assert_array_equal(np.asarray(align), align_ref)
    np.testing.assert_array_equal(np.asarray(ids)[:, : ids_ref.shape[1]], ids_ref)


@pytest.mark.parametrize(
    "span, message",
    [
        (("+", 2.0, 1.0), "before end"),
        (("*", 0.0, 1.0), "sign"),
        (("+", -1.0, 1.0), "before the audio begins"),
        (("+", 1.0, 9.0), "past the audio's end"),
    ],
)
def test_bad_spans_are_named(span, message):
    with pytest.raises(ValueError, match=message):
        sp.validate_spans([span], duration_s=5.0)

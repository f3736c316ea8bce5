"""Atomic writes: the destination is either the old complete file or the new one, never a
partial write, and no temporary file is left behind."""

import os
import pathlib

import numpy as np
import pytest

from samaudio_jax.io_atomic import atomic_write, atomic_write_text


class _Interrupted(Exception):
    pass


def _half_then_raise(tmp: str) -> None:
    with open(tmp, "w") as f:
        f.write("half of the ")
        f.flush()
        raise _Interrupted


def test_failed_write_leaves_no_destination_and_no_temp_file(tmp_path):
    dest = tmp_path / "out.json"
    with pytest.raises(_Interrupted):
        atomic_write(dest, _half_then_raise)
    assert not dest.exists()
    assert os.listdir(tmp_path) == []


def test_failed_rewrite_keeps_the_old_file_whole(tmp_path):
    dest = tmp_path / "out.json"
    atomic_write_text(dest, '{"old": 1}')
    with pytest.raises(_Interrupted):
        atomic_write(dest, _half_then_raise)
    assert dest.read_text() == '{"old": 1}'
    assert os.listdir(tmp_path) == ["out.json"]


def test_rewrite_replaces_the_file_by_rename_not_in_place(tmp_path):
    dest = tmp_path / "out.txt"
    atomic_write_text(dest, "first version, longer than the second")
    old_inode = dest.stat().st_ino
    seen_during_write = []

    def write(tmp):
        # While the new content is being written the destination still holds the old one.
        seen_during_write.append(dest.read_text())
        pathlib.Path(tmp).write_text("second")

    atomic_write(dest, write)
    assert seen_during_write == ["first version, longer than the second"]
    assert dest.read_text() == "second"
    assert dest.stat().st_ino != old_inode
    assert os.listdir(tmp_path) == ["out.txt"]


def test_temp_name_ends_with_the_suffix_so_format_sniffing_writers_work(tmp_path):
    dest = tmp_path / "features.npy"
    names = []

    def write(tmp):
        names.append(pathlib.Path(tmp))
        np.save(tmp, np.arange(3))  # np.save appends ".npy" unless the name ends with it

    atomic_write(dest, write, suffix=".npy")
    assert names[0].parent == tmp_path and names[0].name.endswith(".npy")
    np.testing.assert_array_equal(np.load(dest), np.arange(3))
    assert os.listdir(tmp_path) == ["features.npy"]


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    dest = tmp_path / "out.bin"

    def write(tmp):
        pathlib.Path(tmp).write_bytes(b"\0" * 10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(dest, write)
    assert os.listdir(tmp_path) == []


def test_written_file_gets_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    mode = (tmp_path / "atomic.txt").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777
    assert mode & 0o044  # readable by group/others under the usual umask, unlike mkstemp's 0600

"""Checkpointer: checksums catch what orbax restores silently; set_aside."""

import json
import os

import numpy as np
import pytest

from dqs_jax.checkpoint import MANIFEST, CheckpointDamagedError, Checkpointer

TREE = {"w": np.arange(4096, dtype=np.float32).reshape(64, 64),
        "step": np.asarray(3)}


def _data_files(folder):
    return sorted((os.path.getsize(os.path.join(root, n)),
                   os.path.join(root, n))
                  for root, _, names in os.walk(folder) for n in names
                  if n != MANIFEST)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _flip_last_byte(path):
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte[0] ^ 1]))


@pytest.mark.parametrize("damage, reason", [
    (_truncate, "bytes, expected"),
    (os.remove, "is missing"),
    (_flip_last_byte, "does not match its SHA-256"),
])
def test_damage_is_reported_with_step_path_and_file(tmp_path, damage, reason):
    ckpt = Checkpointer(str(tmp_path))
    for step in (1, 2, 3):
        ckpt.save(step, TREE)  # Later saves leave the kept ones intact.
    for step in (2, 3):
        ckpt.verify(step)
    _, largest = _data_files(ckpt.path(3))[-1]
    damage(largest)
    with pytest.raises(CheckpointDamagedError) as err:
        ckpt.restore(TREE, 3)
    rel = os.path.relpath(largest, ckpt.path(3))
    assert err.value.step == 3 and err.value.path == ckpt.path(3)
    assert str(err.value).startswith(f"checkpoint 3 ({ckpt.path(3)}) is "
                                     f"damaged: {rel} ")
    assert reason in str(err.value) and "\n" not in str(err.value)
    np.testing.assert_array_equal(ckpt.restore(TREE, 2)["w"], TREE["w"])


def test_unreadable_manifest_and_unchecked_old_checkpoints(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(1, TREE)
    manifest = os.path.join(ckpt.path(1), MANIFEST)
    _truncate(manifest)
    with pytest.raises(CheckpointDamagedError, match=f"unreadable {MANIFEST}"):
        ckpt.verify(1)
    os.remove(manifest)  # As written before checksums existed: unchecked.
    ckpt.verify(1)
    np.testing.assert_array_equal(ckpt.restore(TREE, 1)["w"], TREE["w"])


def test_set_aside_frees_the_step_for_saves_and_rotation(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    for step in (1, 2):
        ckpt.save(step, TREE)
    first = ckpt.set_aside(2)
    ckpt.save(2, TREE)
    second = ckpt.set_aside(2)
    assert (first, second) == (ckpt.path(2) + ".damaged",
                               ckpt.path(2) + ".damaged.2")
    assert ckpt.steps() == [1]
    for step in (2, 3, 4):
        ckpt.save(step, TREE)
    assert ckpt.steps() == [3, 4]
    assert sorted(os.listdir(tmp_path)) == ["2.damaged", "2.damaged.2", "3",
                                            "4"]
    json.load(open(os.path.join(ckpt.path(4), MANIFEST)))


def test_an_empty_step_folder_does_not_spoil_the_others(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(1, TREE)
    os.mkdir(ckpt.path(2))
    assert ckpt.steps() == [1, 2]
    with pytest.raises(CheckpointDamagedError, match="holds no files"):
        ckpt.restore(TREE)
    np.testing.assert_array_equal(ckpt.restore(TREE, 1)["w"], TREE["w"])

"""Shared helpers of the agent and loop tests."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax.envs import maze_geometry
from dqs_jax.types import Batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA:CPU switches of the test suite (tests/conftest.py): faster compiles,
# the same graph, another float reassociation between two programs.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0",
                  "--xla_cpu_use_fusion_emitters=false")
_LOOP_EMITTERS = TEST_XLA_FLAGS[1]


def run_with_xla_emitters(script: str, extra_xla_flags: str = "") -> None:
    """Runs `script` in a subprocess with XLA:CPU's own (fusion) emitters
    and `extra_xla_flags`; it must print OK last. For comparisons of two
    compiled programs of one computation (chunked vs whole run, sharded vs
    local), whose float reassociation under the suite's loop emitters,
    amplified by many learning steps, exceeds their bounds."""
    flags = os.environ.get("XLA_FLAGS", "").replace(_LOOP_EMITTERS, "")
    env = dict(os.environ, XLA_FLAGS=f"{flags} {extra_xla_flags}".strip())
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().endswith("OK")


def random_batch(obs_dim: int, act_dim: int, batch_size: int, seed: int = 0,
                 discount: float = 1.0) -> Batch:
    """Gaussian observations and rewards, tanh-squashed actions."""
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    return Batch(f(batch_size, obs_dim), jnp.tanh(f(batch_size, act_dim)),
                 f(batch_size), jnp.full((batch_size,), discount, jnp.float32),
                 f(batch_size, obs_dim))


def tree_equal(a, b) -> bool:
    """Same structure size and bitwise-equal leaves."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(x, y) for x, y in zip(la, lb))


def assert_same_training(a, b, start, fraction=0.02):
    """Trees `a` and `b`, both trained from `start`, agree up to float noise:
    per leaf, `max |a - b| <= fraction * max |b - start|` (Adam turns float
    noise in near-zero gradients into steps of size lr, so elementwise
    tolerances do not fit)."""
    for x, y, y0 in zip(jax.tree_util.tree_leaves(a),
                        jax.tree_util.tree_leaves(b),
                        jax.tree_util.tree_leaves(start)):
        x, y, y0 = (np.asarray(v, np.float64) for v in (x, y, y0))
        moved = np.max(np.abs(y - y0)) if y.size else 0.0
        assert np.max(np.abs(x - y), initial=0.0) <= fraction * moved + 1e-6


def rollout(env, acts):
    """`[env.step(a) for a in acts]`: the `StepResult`s of a stateful env."""
    return [env.step(a) for a in acts]


def assert_same_steps(ref, out):
    """Two rollouts are identical, step by step (observations bit for bit)."""
    assert len(ref) == len(out)
    for i, (a, b) in enumerate(zip(ref, out)):
        np.testing.assert_array_equal(a.observation, b.observation,
                                      err_msg=f"step {i}")
        assert a.reward == b.reward, f"step {i}: {a.reward} != {b.reward}"
        assert a[2:] == b[2:], f"step {i}"


def cells_path(*cells):
    """`[T, 2]` maze positions through the centres of consecutive cells."""
    return maze_geometry.cell_to_xy(np.array(cells))


# Paths of the two-goal maze from the start cell (4, 4), 7 or 8 points.
START = (4, 4)
TOP_ROW = cells_path(START, (3, 4), (2, 4), (1, 4), (1, 3), (1, 2), (1, 1))
LEFT_COLUMN = cells_path(START, (4, 3), (4, 2), (4, 1), (3, 1), (2, 1),
                         (1, 1))
BOTTOM_RIGHT = cells_path(START, (4, 5), (4, 6), (4, 7), (5, 7), (6, 7),
                          (7, 7))
NOWHERE = cells_path(START, (4, 3), (4, 2), (4, 1), (5, 1), (6, 1), (7, 1),
                     (7, 2))


def wandb_records(path: str):
    """The protobuf `Record`s of a W&B run file (`run-<id>.wandb`): a
    LevelDB-style log (7-byte file header, 32 KiB blocks of records with a
    7-byte header: crc32, little-endian length, type 1 full / 2 first / 3
    middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2
    data = open(path, "rb").read()
    assert data[:4] == b":W&B", path
    block, pos, chunks, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        if kind == 0:  # Padding to the end of the block.
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            chunks.append(pending + chunk)
            pending = b""
    records = []
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


r"""Where one DQS update spends its time: the top XLA ops of a profile.

    python -m experiments.bench.profile_update                     # paper config
    python -m experiments.bench.profile_update --num_mc_samples=32 \
        --hidden=128 --batch_size=128                        # `make run`'s

Traces `--updates` jitted `agent.update` calls with `jax.profiler`, reads
the trace back (`jax.profiler.ProfileData`) and prints the ops that took
the most time per update, summed over the runtime's worker threads (so
the total can exceed the wall time when ops run in parallel), each with the
JAX operation it came from (the HLO `op_name` metadata). Loop ops
(`while`, `call`) are left out: their bodies' ops are counted themselves.
Also writes the trace under `--trace_dir` for TensorBoard / Perfetto.
"""

import collections
import glob
import re
import shutil
import time
from typing import Dict, List, Tuple

from absl import app, flags

from experiments.bench.timing import dot_rate

_K = flags.DEFINE_integer("num_mc_samples", 1000, "K.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Width of every network.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Batch size.")
_OBS_DIM = flags.DEFINE_integer("obs_dim", 17, "Observation size.")
_ACT_DIM = flags.DEFINE_integer("act_dim", 6, "Action size.")
_UPDATES = flags.DEFINE_integer("updates", 5, "Traced updates.")
_TOP = flags.DEFINE_integer("top", 15, "Ops to print.")
_TRACE_DIR = flags.DEFINE_string("trace_dir", "runs/profile_update",
                                 "Where the trace is written.")

_SKIPPED = ("ThunkExecutor", "Slinky", "while", "call", "conditional")


def op_times(xspace_path: str) -> Dict[str, float]:
    """`{op name: total ns}` over the XLA worker threads of a trace."""
    import jax

    data = jax.profiler.ProfileData.from_file(xspace_path)
    totals = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLAEigen"):
                continue
            for event in line.events:
                if not event.name.startswith(_SKIPPED):
                    totals[event.name] += event.duration_ns
    return totals


def op_sources(hlo_text: str) -> Dict[str, str]:
    """`{HLO instruction name: its op_name metadata}` of a compiled
    module's text."""
    sources = {}
    for match in re.finditer(r"%?([\w.\-]+) = [^\n]*?op_name=\"([^\"]*)\"",
                             hlo_text):
        sources[match.group(1)] = match.group(2)
    return sources


def profile(k: int, hidden: int, batch: int, obs_dim: int, act_dim: int,
            updates: int, trace_dir: str) -> Tuple[float, List[Tuple]]:
    """`(median wall ms per update, [(op, ms per update, source), ...])`
    sorted by time."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dqs_jax import agent
    from dqs_jax.types import Batch

    config = agent.DQSConfig(hidden_dims=(hidden, hidden),
                             critic_hidden_dims=(hidden, hidden),
                             num_mc_samples=k)
    state = agent.init(config, obs_dim, act_dim, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(batch, obs_dim)), jnp.float32)
    actions = jnp.tanh(jnp.asarray(rng.normal(size=(batch, act_dim)),
                                   jnp.float32))
    data = Batch(obs, actions, obs[:, 0], jnp.ones(batch), obs)
    update = jax.jit(agent.update)
    state, metrics = update(state, data)
    jax.block_until_ready(metrics)
    walls = []
    for _ in range(updates):
        start = time.perf_counter()
        jax.block_until_ready(update(state, data))
        walls.append(time.perf_counter() - start)
    shutil.rmtree(trace_dir, ignore_errors=True)
    with jax.profiler.trace(trace_dir):
        for _ in range(updates):
            state, metrics = update(state, data)
        jax.block_until_ready(metrics)
    (path,) = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    sources = op_sources(update.lower(state, data).compile().as_text())
    rows = [(name, ns / updates / 1e6, sources.get(name, ""))
            for name, ns in op_times(path).most_common()]
    return float(np.median(walls)) * 1e3, rows


def main(argv):
    del argv
    rate = dot_rate()
    wall, rows = profile(_K.value, _HIDDEN.value, _BATCH.value,
                         _OBS_DIM.value, _ACT_DIM.value, _UPDATES.value,
                         _TRACE_DIR.value)
    total = sum(ms for _, ms, _ in rows)
    print(f"K={_K.value} hidden={_HIDDEN.value} batch={_BATCH.value}: "
          f"{wall:.1f} ms per update (wall, median), {total:.1f} ms of op "
          f"time over threads; 2048^2 float32 dot: {rate:.0f} GFLOP/s")
    print(f"{'ms/upd':>8} {'share':>6}  op  <- JAX source")
    for name, ms, source in rows[:_TOP.value]:
        source = re.sub(r"^jit\(update\)/", "", source)
        print(f"{ms:8.2f} {ms / total:6.1%}  {name}  <- {source[-70:]}")
    print(f"trace: {_TRACE_DIR.value}")


if __name__ == "__main__":
    app.run(main)

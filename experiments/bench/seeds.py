r"""Throughput of the fully jitted loop (GMM-40 env) against the number of
seeds run at once (vmapped, one compiled program).

    python -m experiments.bench.seeds --num_seeds=1,4,16

For each N: compile, then time `--steps` learning steps of N seeds; prints
env steps/s (all seeds together) and writes JSON and a PNG figure.
"""

import json
import os
import time

from absl import app, flags
import jax

from dqs_jax import agents, loop, parallel
from dqs_jax.envs import gmm
from experiments import plotting

_NUM_SEEDS = flags.DEFINE_list("num_seeds", ["1", "4", "16"], "Seed counts.")
_AGENT = flags.DEFINE_string("agent", "dqs", "Agent.")
_STEPS = flags.DEFINE_integer("steps", 200, "Timed learning steps.")
_HIDDEN = flags.DEFINE_integer("hidden", 128, "Network width.")
_K = flags.DEFINE_integer("num_mc_samples", 32, "K (DQS).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_SPREAD = flags.DEFINE_boolean("spread", False,
                               "Spread the seeds over all devices.")
_OUT = flags.DEFINE_string("out", "runs/bench/bench_seeds",
                           "Output prefix (.json, .png).")


def throughput(num_seeds: int) -> dict:
    spec = agents.get_agent(_AGENT.value)
    width = (_HIDDEN.value,) * 2
    overrides = dict(hidden_dims=width, critic_hidden_dims=width)
    if _AGENT.value == "dqs":
        overrides["num_mc_samples"] = _K.value
    config = spec.make_config(**overrides)
    env = gmm.environment()
    loop_config = loop.LoopConfig(seed_steps=_BATCH.value,
                                  batch_size=_BATCH.value,
                                  replay_size=10 * _BATCH.value
                                  + _STEPS.value)
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    if _SPREAD.value:
        keys = parallel.shard_seeds(keys)
    state = jax.jit(jax.vmap(lambda k: loop.init(spec, config, env,
                                                 loop_config, k)))(keys)
    run = jax.jit(jax.vmap(lambda s: loop.run_steps(
        spec, env, loop_config, s, _STEPS.value, learn=True)),
        donate_argnums=0)
    start = time.perf_counter()
    state, _ = jax.block_until_ready(run(state))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    state, _ = jax.block_until_ready(run(state))
    seconds = time.perf_counter() - start
    return {"num_seeds": num_seeds, "compile_and_first_s": compile_s,
            "seconds": seconds,
            "env_steps_per_s": num_seeds * _STEPS.value / seconds,
            "updates_per_s_per_seed": _STEPS.value / seconds}


def main(argv):
    del argv
    counts = [int(n) for n in _NUM_SEEDS.value]
    if min(counts) < 1:
        raise app.UsageError("--num_seeds must be positive integers.")
    results = []
    for n in counts:
        r = throughput(n)
        results.append(r)
        print(f"N={n:3d}: {r['env_steps_per_s']:9.1f} env steps/s in total, "
              f"{r['updates_per_s_per_seed']:7.1f} updates/s per seed "
              f"(compile + first chunk {r['compile_and_first_s']:.1f} s)",
              flush=True)
    info = {"agent": _AGENT.value, "hidden": _HIDDEN.value,
            "num_mc_samples": _K.value, "batch_size": _BATCH.value,
            "devices": [str(d) for d in jax.devices()],
            "spread": _SPREAD.value, "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value + ".json", "w") as f:
        json.dump(info, f, indent=2)
    fig, ax = plotting.plt.subplots(figsize=(5, 3.5))
    ax.plot(counts, [r["env_steps_per_s"] for r in results], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("seeds run at once (vmap)")
    ax.set_ylabel("env steps / s (all seeds)")
    ax.set_title(f"{_AGENT.value} on GMM-40, {jax.devices()[0].platform}")
    ax.grid(alpha=0.3)
    png = plotting.save(fig, _OUT.value + ".png")
    print(f"Wrote {os.path.abspath(_OUT.value)}.json and {png}")


if __name__ == "__main__":
    app.run(main)

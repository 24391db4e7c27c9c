r"""Throughput of `experiments.train --num_seeds=N` on dm_control, and where
the time of one loop step goes.

    python -m experiments.bench.train_seeds --num_seeds=1,4,8

For each N it builds the training driver (N = 1: the single-seed driver;
N > 1: the same loop with a seed axis) at `make run`'s sizes by default, runs the
uniform-random seed phase to fill the replay buffers, then `--warmup`
learning steps (compilation) and times `--steps` learning steps. The
driver's act, env step and learn calls are timed in place (each device call
waited for), the remainder of the step is host bookkeeping. Prints env
steps/s for all seeds together and the split, the machine's matmul rate,
and writes JSON and a PNG.
"""

import json
import os
import tempfile
from typing import Any, Dict

from absl import app, flags, logging
import jax

from dqs_jax import agents
from dqs_jax import training
from experiments import plotting
from experiments.bench import timing

_NUM_SEEDS = flags.DEFINE_list("num_seeds", ["1", "4", "8"], "Seed counts.")
_ENV = flags.DEFINE_string("env", "dmc:cheetah-run", "Environment.")
_AGENT = flags.DEFINE_string("agent", "dqs", "Agent.")
_STEPS = flags.DEFINE_integer("steps", 200, "Timed learning steps.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed learning steps.")
_HIDDEN = flags.DEFINE_integer("hidden", 128, "Network width.")
_K = flags.DEFINE_integer("num_mc_samples", 32, "K (DQS).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_OUT = flags.DEFINE_string("out", "runs/bench/bench_train_seeds",
                           "Output prefix (.json, .png).")

PARTS = ("act", "env", "learn")


def _settings(num_seeds: int, workdir: str) -> training.RunSettings:
    spec = agents.get_agent(_AGENT.value)
    width = (_HIDDEN.value,) * 2
    overrides = dict(hidden_dims=width, critic_hidden_dims=width)
    if _AGENT.value == "dqs":
        overrides["num_mc_samples"] = _K.value
    seed_steps = max(_BATCH.value, 100)
    return training.RunSettings(
        env=_ENV.value, agent=_AGENT.value, num_seeds=num_seeds,
        max_steps=10**9, seed_steps=seed_steps, batch_size=_BATCH.value,
        replay_size=seed_steps + _WARMUP.value + _STEPS.value + 1,
        eval_every=10**9, checkpoint_every=10**9, log_interval=10**9,
        workdir=workdir, agent_config=spec.make_config(**overrides))


def throughput(num_seeds: int) -> Dict[str, Any]:
    """Env steps/s (all seeds) and the split of a step's time."""
    with tempfile.TemporaryDirectory() as workdir:
        settings = _settings(num_seeds, workdir)
        r = timing.time_run_steps(settings, settings.seed_steps + _WARMUP.value,
                                  _STEPS.value)
    per_step = dict(r["ms_per_step"])
    per_step["host other"] = per_step.pop("host")
    return {"num_seeds": num_seeds, "seconds": r["seconds"],
            "env_steps_per_s": r["env_steps_per_s"],
            "ms_per_loop_step": per_step}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    counts = [int(n) for n in _NUM_SEEDS.value]
    if min(counts) < 1:
        raise app.UsageError("--num_seeds must be positive integers.")
    rate = timing.dot_rate()
    print(f"2048^2 float32 matmul: {rate:.0f} GFLOP/s", flush=True)
    results = []
    for n in counts:
        r = throughput(n)
        results.append(r)
        split = ", ".join(f"{k} {v:.1f}" for k, v in
                          r["ms_per_loop_step"].items())
        print(f"N={n}: {r['env_steps_per_s']:.1f} env steps/s in total; ms "
              f"per loop step (all seeds): {split}", flush=True)
    info = {"env": _ENV.value, "agent": _AGENT.value,
            "hidden": _HIDDEN.value, "num_mc_samples": _K.value,
            "batch_size": _BATCH.value, "steps": _STEPS.value,
            "matmul_gflops": rate,
            "devices": [str(d) for d in jax.devices()], "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value + ".json", "w") as f:
        json.dump(info, f, indent=2)
    fig, axes = plotting.plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(counts, [r["env_steps_per_s"] for r in results], "o-")
    axes[0].set_xlabel("--num_seeds")
    axes[0].set_ylabel("env steps / s (all seeds)")
    bottom = [0.0] * len(counts)
    for part in (*PARTS, "host other"):
        values = [r["ms_per_loop_step"][part] for r in results]
        axes[1].bar(range(len(counts)), values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    axes[1].set_xticks(range(len(counts)), [str(n) for n in counts])
    axes[1].set_xlabel("--num_seeds")
    axes[1].set_ylabel("ms per loop step (all seeds)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{_AGENT.value} on {_ENV.value}, "
                 f"{jax.devices()[0].platform}, {rate:.0f} GFLOP/s matmul")
    png = plotting.save(fig, _OUT.value + ".png")
    print(f"Wrote {os.path.abspath(_OUT.value)}.json and {png}")


if __name__ == "__main__":
    app.run(main)

r"""Benchmark of one update and of acting, for every registered agent.

    python -m experiments.bench.update            # the paper config
    python -m experiments.bench.update --agents=dqs,sac,qsm
    python -m experiments.bench.update --num_mc_samples=100,1000 \
        --precisions=float32,bfloat16 --json_out=runs/bench/update.json

Each configuration runs in a child process (so that its peak RSS is its
own) and reports: compile time; median/min/max update time over
`--repeats`; the matmul FLOP count of an update (from the config, see
`experiments.bench.flops`) and the achieved GFLOP/s; the rate of a 2048x2048
float32 `jnp.dot` measured in the same process right before and after, and
the update's cost in "GFLOP-equivalents" (update time x that rate, so that
machines and runs compare by ratio); act latency for 1 and 256 states; peak
RSS. Machines are noisy: compare figures of one run.

For DQS, each K also runs the naive reference (`experiments.bench.naive_idem`:
per-example `vmap(grad(logsumexp))` through the Flax critic, as the paper
states the estimate, same networks) and prints our update's speed-up.

An "update" is what the loops call once per env step: `update(state,
batch)`, or for agents that rewrite their replay data (DIPO)
`replay_update(state, buffer, key, B)` on a buffer of random transitions;
for on-policy agents (PPO) it is one `update(state, rollout)` on a rollout
of `rollout_length` steps (all its epochs and minibatches), which happens
once per `rollout_length` env steps. FLOP counts exist for DQS and SAC only.
"""

import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Dict, List

from absl import app, flags

from experiments.bench.timing import dot_rate, timed as _timed

_OBS_DIM = flags.DEFINE_integer("obs_dim", 17, "Observation size (cheetah).")
_ACT_DIM = flags.DEFINE_integer("act_dim", 6, "Action size (cheetah).")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Batch size.")
_K = flags.DEFINE_list("num_mc_samples", ["32", "100", "1000"],
                       "K values to run (DQS, and its naive reference).")
_STEPS = flags.DEFINE_integer("num_sampling_steps", 20, "Sampler steps.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Width of every network.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "bfloat16"],
                                "DQS estimator precisions to run.")
_SPEED_MODE = flags.DEFINE_float(
    "speed_mode", 0.0, "Also run DQS with stratified times and this "
    "small_noise_threshold (0: skip).")
_AGENTS = flags.DEFINE_list(
    "agents", ["dqs", "sac", "td3", "ddpg", "ppo", "qsm", "dacer", "dipo"],
    "Agents to run.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed updates per config.")
_JSON_OUT = flags.DEFINE_string("json_out", "runs/bench/bench_update.json",
                                "Where to write the results.")
_CHILD = flags.DEFINE_string("child", None, "(internal) one config as JSON.")

TARGET_GFLOP_EQUIV = 150.0  # issue #5: the reference costs 300.


def measure(cfg: Dict) -> Dict:
    """Runs one configuration in this process."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dqs_jax import agents
    from experiments.bench import flops

    o, d, b, width = cfg["obs_dim"], cfg["act_dim"], cfg["batch_size"], (
        cfg["hidden"],) * 2
    spec = agents.get_agent(cfg["agent"])
    if cfg["agent"] == "dqs":
        config = spec.make_config(
            hidden_dims=width, critic_hidden_dims=width,
            num_mc_samples=cfg["num_mc_samples"],
            num_sampling_steps=cfg["num_sampling_steps"],
            estimator_precision=cfg["precision"],
            stratified_times=cfg["speed_mode"] > 0,
            small_noise_threshold=cfg["speed_mode"])
        count = flops.dqs_update_flops(o, d, b, cfg["num_mc_samples"],
                                       cfg["num_sampling_steps"], width,
                                       width)
    else:
        config = spec.make_config(hidden_dims=width, critic_hidden_dims=width)
        count = (flops.sac_update_flops(o, d, b, width, width)
                 if cfg["agent"] == "sac" else None)
    state = spec.init(config, o, d, jax.random.PRNGKey(0))
    update, data = _update_fn(spec, config, o, d, b)
    if cfg.get("naive"):
        from experiments.bench.naive_idem import naive_update
        update = jax.jit(naive_update, donate_argnums=0)

    rate_before = dot_rate() if cfg.get("dot_rates", True) else float("nan")
    start = time.perf_counter()
    state, metrics = update(state, data)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    holder = [state]

    def one_update():
        holder[0], m = update(holder[0], data)
        return m

    times = _timed(one_update, cfg["repeats"])
    act = jax.jit(spec.act, static_argnames="deterministic")
    rng = np.random.default_rng(1)
    latency = {}
    for n in (1, 256):
        obs = jnp.asarray(rng.normal(size=(n, o)), jnp.float32)
        key = jax.random.PRNGKey(1)
        np.asarray(act(holder[0], obs, key))
        calls = _timed(lambda: np.asarray(act(holder[0], obs, key)), 200)
        latency[n] = float(np.median(calls)) * 1e3
    rate_after = dot_rate() if cfg.get("dot_rates", True) else float("nan")
    median = float(np.median(times))
    rate = 0.5 * (rate_before + rate_after)
    total = None if count is None else count["total"]
    return {
        **cfg,
        "compile_s": compile_s,
        "update_s_median": median, "update_s_min": float(np.min(times)),
        "update_s_max": float(np.max(times)),
        "gflop": None if count is None else {k: v / 1e9
                                              for k, v in count.items()},
        "achieved_gflops": None if total is None else total / median / 1e9,
        "dot_gflops_before": rate_before, "dot_gflops_after": rate_after,
        "fraction_of_dot_rate": (None if total is None
                                 else total / median / 1e9 / rate),
        "gflop_equivalents": median * rate,
        "act_ms_1": latency[1], "act_ms_256": latency[256],
        "finite": bool(all(np.isfinite(float(v)) for v in metrics.values())),
    }


def _update_fn(spec, config, o: int, d: int, b: int):
    """`(jitted fn(state, data) -> (state, metrics), data)`: the update the
    loops call once per env step (per rollout for on-policy agents), on
    random data of the benchmark's sizes."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dqs_jax import agents, replay
    from dqs_jax.types import Batch, Rollout

    rng = np.random.default_rng(0)
    f32 = lambda *shape: jnp.asarray(rng.normal(size=shape),  # noqa: E731
                                     jnp.float32)
    if spec.on_policy:
        n = config.rollout_length
        rollout = Rollout(f32(n, o), f32(n, d), f32(n), f32(n), f32(n),
                          jnp.ones(n), jnp.zeros(n), f32(n, o))
        return jax.jit(spec.update, donate_argnums=0), rollout
    batch = Batch(f32(b, o), jnp.tanh(f32(b, d)), f32(b), jnp.ones(b),
                  f32(b, o))
    if spec.replay_update is None:
        return jax.jit(spec.update, donate_argnums=0), batch
    n = 10 * b
    rows = Batch(f32(n, o), jnp.tanh(f32(n, d)), f32(n), jnp.ones(n),
                 f32(n, o))
    buffer = replay.init(n, o, d).replace(
        **rows._asdict(), action_targets=rows.actions,
        insert_index=jnp.zeros((), jnp.int32), size=jnp.asarray(n, jnp.int32))
    step = jax.jit(lambda state, data: (lambda s, _, m: (s, m))(
        *agents.train_step(spec, state, data[0], data[1], b)),
        donate_argnums=0)
    return step, (buffer, jax.random.PRNGKey(2))


def run_child(cfg: Dict) -> Dict:
    """Measures `cfg` in a child process; adds its peak RSS."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.bench.update",
         f"--child={json.dumps(cfg)}"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed for {cfg}:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gb"] = result.pop("peak_rss_kb") / 1e6
    return result


def child_main(cfg: Dict) -> None:
    result = measure(cfg)
    # ru_maxrss: kilobytes on Linux, the whole process's peak.
    result["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


def speedups_over_naive(results: List[Dict]) -> Dict[int, float]:
    """`{K: naive median / ours median}` for float32 DQS rows."""
    def median(k, naive):
        for r in results:
            if (r["agent"] == "dqs" and r.get("num_mc_samples") == k
                    and r.get("precision") == "float32"
                    and not r.get("speed_mode") and bool(r.get("naive"))
                    == naive):
                return r["update_s_median"]
        return None

    ks = sorted({r["num_mc_samples"] for r in results if r.get("naive")})
    return {k: median(k, True) / median(k, False) for k in ks
            if median(k, False)}


def _num(value, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def table(results: List[Dict]) -> str:
    head = (f"{'agent':5} {'K':>5} {'prec':8} {'speed':>6} {'GFLOP':>7} "
            f"{'compile':>8} {'upd med':>8} {'min':>7} {'max':>7} "
            f"{'GFLOP/s':>8} {'dot':>6} {'frac':>5} {'GFLOPeq':>8} "
            f"{'act1 ms':>8} {'act256':>7} {'RSS GB':>7}")
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{'naive' if r.get('naive') else r['agent']:5} "
            f"{r.get('num_mc_samples', '-'):>5} "
            f"{r.get('precision', '-'):8} {r.get('speed_mode', 0):>6g} "
            f"{_num(r['gflop'] and r['gflop']['total'], 7, 2)} "
            f"{r['compile_s']:7.1f}s "
            f"{r['update_s_median'] * 1e3:6.1f}ms "
            f"{r['update_s_min'] * 1e3:5.1f}ms {r['update_s_max'] * 1e3:5.1f}ms "
            f"{_num(r['achieved_gflops'], 8, 1)} "
            f"{0.5 * (r['dot_gflops_before'] + r['dot_gflops_after']):6.0f} "
            f"{_num(r['fraction_of_dot_rate'], 5, 2)} "
            f"{r['gflop_equivalents']:8.1f} "
            f"{r['act_ms_1']:8.3f} {r['act_ms_256']:7.2f} "
            f"{r['peak_rss_gb']:7.2f}")
    return "\n".join(rows)


def main(argv):
    del argv
    if _CHILD.value:
        child_main(json.loads(_CHILD.value))
        return
    base = dict(obs_dim=_OBS_DIM.value, act_dim=_ACT_DIM.value,
                batch_size=_BATCH.value, hidden=_HIDDEN.value,
                num_sampling_steps=_STEPS.value, repeats=_REPEATS.value)
    configs = []
    if "dqs" in _AGENTS.value:
        for k in _K.value:
            for precision in _PRECISIONS.value:
                configs.append(dict(base, agent="dqs", num_mc_samples=int(k),
                                    precision=precision, speed_mode=0.0))
            configs.append(dict(base, agent="dqs", num_mc_samples=int(k),
                                precision="float32", speed_mode=0.0,
                                naive=True))
            if _SPEED_MODE.value > 0:
                configs.append(dict(base, agent="dqs", num_mc_samples=int(k),
                                    precision="float32",
                                    speed_mode=_SPEED_MODE.value))
    from dqs_jax import agents
    unknown = set(_AGENTS.value) - set(agents.agent_names())
    if unknown:
        raise app.UsageError(f"--agents: unknown {sorted(unknown)}; choose "
                             f"from {agents.agent_names()}.")
    configs += [dict(base, agent=name) for name in _AGENTS.value
                if name != "dqs"]
    results = []
    for cfg in configs:
        print(f"running {cfg} ...", flush=True)
        results.append(run_child(cfg))
    import jax
    print()
    print(table(results))
    print(f"\nGFLOP: matmul FLOPs of one update (DQS K=1000 at the paper "
          f"config: 149.5); GFLOPeq = median update time x the same "
          f"process's 2048x2048 float32 dot rate (target for DQS at the "
          f"paper config: <= {TARGET_GFLOP_EQUIV:.0f}, the authors' code "
          f"300); frac = achieved / dot rate.")
    speedups = speedups_over_naive(results)
    for k, ratio in speedups.items():
        print(f"DQS update at K={k}: {ratio:.2f}x faster than the naive "
              "reference (float32, same run).")
    info = {"results": results, "speedup_over_naive": speedups,
            "device": str(jax.devices()[0]),
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count()}
    os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)),
                exist_ok=True)
    with open(_JSON_OUT.value, "w") as f:
        json.dump(info, f, indent=2)
    print(f"Wrote {os.path.abspath(_JSON_OUT.value)}")


if __name__ == "__main__":
    app.run(main)

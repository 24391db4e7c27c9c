r"""What this code does on this machine's accelerator, in one command.

    python -m experiments.bench.device_check                  # one GPU
    python -m experiments.bench.device_check --tiny           # CPU smoke

Reports: the backend and devices; the float32 and bfloat16 matmul rates;
one update at the paper's sizes (2x256 networks, batch 256, cheetah's
17/6 dims) of DQS at K = 32, 100 and 1000 in float32 and with the bfloat16
estimate, and of SAC, TD3 and QSM, with acting latency; `--env_steps` env
steps of DQS at the paper config on `dmc:cheetah-run` through the training
loop, the time split into env, act, update and host overhead; the same
loop with `--num_seeds` seeds in one process; and from these the
projected device-hours of the `paper` sweep (Tables 1-2) and of the GMM
and maze `paper` presets. Writes `<out>/<backend>_<device>.json` and
`.md`. `--tiny` shrinks every size so that it runs in seconds on a CPU
(the test suite runs it); its projections describe the tiny sizes only.

`--matmul_precision` sets JAX's default float32 matmul precision
(`jax_default_matmul_precision`): on recent NVIDIA GPUs "default" lets
XLA use TF32 (about 10 mantissa bits) for float32 matmuls, "highest" keeps
full float32; the chosen value is recorded (docs/gpu.md).
"""

import os
import tempfile
import time
from typing import Any, Dict, List

from absl import app, flags

from experiments.configs import agent_flags

_OUT = flags.DEFINE_string("out", "results/device", "Output folder.")
_TINY = flags.DEFINE_boolean("tiny", False, "Tiny sizes (a CPU smoke run).")
_ENV_STEPS = flags.DEFINE_integer("env_steps", 20_000,
                                  "Env steps of the DQS loop (paper config); "
                                  "the multi-seed loop runs min(1000, this).")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 5,
                                  "Seeds of the multi-seed loop.")
_MATMUL_PRECISION = agent_flags.define_matmul_precision_flag(
    "JAX's default float32 matmul precision for the whole check.")

# The paper presets' budgets (experiments/configs/sweeps/paper.py,
# gmm/paper.py, maze/paper.py).
PAPER_SWEEP = dict(tasks=8, seeds=5, steps=250_000, seed_steps=10_000)
GMM_PAPER = dict(methods=("dqs", "sac"), seeds=5, steps=200_000)
MAZE_PAPER = dict(agents=("dqs", "sac", "qsm", "dacer", "dipo"), seeds=5,
                  steps=250_000)
# Agents the check does not time, costed as the timed agent they resemble.
PROXIES = {"ddpg": "td3", "ppo": "sac", "dacer": "qsm", "dipo": "qsm"}


def sizes(tiny: bool) -> Dict[str, Any]:
    if tiny:
        return dict(hidden=16, batch=16, ks=(4,), loop_k=4, sampling_steps=3,
                    matmul=256, repeats=2, env_steps=300, seed_steps=100,
                    seeds_steps=60)
    return dict(hidden=256, batch=256, ks=(32, 100, 1000), loop_k=1000,
                sampling_steps=20, matmul=4096, repeats=10,
                env_steps=_ENV_STEPS.value, seed_steps=1_000,
                seeds_steps=min(1_000, _ENV_STEPS.value))


def device_info() -> Dict[str, Any]:
    import jax
    devices = jax.devices()
    info = {"backend": jax.default_backend(), "device_count": len(devices),
            "device_kind": devices[0].device_kind,
            "jax": jax.__version__,
            "matmul_precision": _MATMUL_PRECISION.value}
    stats = getattr(devices[0], "memory_stats", lambda: None)()
    if stats and "bytes_limit" in stats:
        info["memory_gb"] = stats["bytes_limit"] / 2**30
    return info


def matmul_rates(n: int) -> Dict[str, float]:
    """GFLOP/s of an `n x n` matmul in float32 and bfloat16."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from experiments.bench.timing import timed
    out = {}
    for dtype in ("float32", "bfloat16"):
        a = jnp.ones((n, n), dtype)
        dot = jax.jit(lambda x: x @ x)
        jax.block_until_ready(dot(a))
        seconds = float(np.median(timed(lambda: dot(a), 10)))
        out[dtype] = 2 * n**3 / seconds / 1e9
    return out


def update_times(s: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One update (and acting latency) per agent configuration."""
    from experiments.bench.update import measure
    base = dict(obs_dim=17, act_dim=6, batch_size=s["batch"],
                hidden=s["hidden"], num_sampling_steps=s["sampling_steps"],
                speed_mode=0.0, repeats=s["repeats"], num_mc_samples=0,
                precision="float32", dot_rates=False)
    configs = [dict(base, agent="dqs", num_mc_samples=k, precision=p)
               for k in s["ks"] for p in ("float32", "bfloat16")]
    configs += [dict(base, agent=a) for a in ("sac", "td3", "qsm")]
    keep = ("agent", "num_mc_samples", "precision", "compile_s",
            "update_s_median", "act_ms_1", "act_ms_256", "finite")
    return [{k: v for k, v in measure(cfg).items() if k in keep}
            for cfg in configs]


def loop_split(s: Dict[str, Any], num_seeds: int, steps: int
               ) -> Dict[str, Any]:
    """`steps` learning steps of DQS (paper sizes) on cheetah-run through
    `training.Run` with `num_seeds` seeds: env steps/s and ms per step by
    part (after the seed phase and one untimed step)."""
    from dqs_jax import agents, training
    from experiments.bench.timing import time_run_steps
    width = (s["hidden"],) * 2
    config = agents.get_agent("dqs").make_config(
        hidden_dims=width, critic_hidden_dims=width,
        num_sampling_steps=s["sampling_steps"], num_mc_samples=s["loop_k"])
    with tempfile.TemporaryDirectory() as workdir:
        settings = training.RunSettings(
            env="dmc:cheetah-run", agent="dqs", num_seeds=num_seeds,
            max_steps=10**9, seed_steps=s["seed_steps"],
            batch_size=s["batch"],
            replay_size=s["seed_steps"] + steps + 10, eval_every=10**9,
            checkpoint_every=10**9, log_interval=10**9, workdir=workdir,
            agent_config=config)
        r = time_run_steps(settings, s["seed_steps"] + 1, steps, "update")
    return {"num_seeds": num_seeds, "steps": steps,
            "env_steps_per_s": r["env_steps_per_s"],
            "ms_per_step": r["ms_per_step"]}


def projections(updates: List[Dict], loop: Dict) -> Dict[str, Any]:
    """Device-hours of the paper presets from the measured costs: a run's
    learning step costs the loop's env + host time plus the agent's update
    and act (single-state latency); its seed steps cost env + host. Seeds
    and runs one after another (a lower bound on throughput)."""
    ms = loop["ms_per_step"]
    base_ms = ms["env"] + ms["host"]
    f32 = [u for u in updates if u["precision"] == "float32"]
    dqs = max((u for u in f32 if u["agent"] == "dqs"),
              key=lambda u: u["num_mc_samples"])
    per_agent = {u["agent"]: u for u in f32 if u["agent"] != "dqs"}
    per_agent["dqs"] = dqs

    def step_ms(agent: str) -> float:
        u = per_agent[PROXIES.get(agent, agent)]
        return base_ms + 1e3 * u["update_s_median"] + u["act_ms_1"]

    def run_hours(agent: str, steps: int, seed_steps: int) -> float:
        return ((steps - seed_steps) * step_ms(agent)
                + seed_steps * base_ms) / 3.6e6

    from dqs_jax import agents
    names = agents.agent_names()
    paper = {a: PAPER_SWEEP["tasks"] * PAPER_SWEEP["seeds"] * run_hours(
        a, PAPER_SWEEP["steps"], PAPER_SWEEP["seed_steps"]) for a in names}
    gmm = {m: GMM_PAPER["seeds"] * GMM_PAPER["steps"] * (
        1e3 * per_agent[PROXIES.get(m, m)]["update_s_median"]
        + per_agent[PROXIES.get(m, m)]["act_ms_1"]) / 3.6e6
        for m in GMM_PAPER["methods"]}
    maze = {a: MAZE_PAPER["seeds"] * run_hours(a, MAZE_PAPER["steps"],
                                               10_000)
            for a in MAZE_PAPER["agents"]}
    return {"paper_sweep_hours": paper,
            "paper_sweep_total_hours": sum(paper.values()),
            "gmm_paper_hours": gmm, "gmm_paper_total_hours": sum(gmm.values()),
            "maze_paper_hours": maze,
            "maze_paper_total_hours": sum(maze.values()),
            "dqs_k": dqs["num_mc_samples"], "proxies": PROXIES}


def markdown(result: Dict[str, Any]) -> str:
    d, m = result["device"], result["matmul_gflops"]
    lines = [f"# Device check: {d['device_kind']} ({d['backend']}, "
             f"{d['device_count']} device(s))", "",
             f"Command: `{result['command']}`, {result['date']}; JAX "
             f"{d['jax']}, float32 matmul precision "
             f"`{d['matmul_precision']}`" + (" (tiny sizes)"
                                              if result["tiny"] else "") + ".",
             "", f"Matmul: float32 {m['float32']:.0f} GFLOP/s, bfloat16 "
             f"{m['bfloat16']:.0f} GFLOP/s.", "",
             "| agent | K | precision | update ms | act ms (1 / 256 states) "
             "| compile s |", "|---|---|---|---|---|---|"]
    for u in result["updates"]:
        lines.append(f"| {u['agent']} | {u['num_mc_samples'] or ''} | "
                     f"{u['precision'] if u['agent'] == 'dqs' else ''} | "
                     f"{1e3 * u['update_s_median']:.2f} | "
                     f"{u['act_ms_1']:.2f} / {u['act_ms_256']:.2f} | "
                     f"{u['compile_s']:.1f} |")
    lines += ["", "| loop (DQS, cheetah-run) | env steps/s | env | act | "
              "update | host (ms per step) |", "|---|---|---|---|---|---|"]
    for loop in result["loops"]:
        ms = loop["ms_per_step"]
        lines.append(f"| {loop['num_seeds']} seed(s), {loop['steps']} steps "
                     f"| {loop['env_steps_per_s']:.1f} | {ms['env']:.2f} | "
                     f"{ms['act']:.2f} | {ms['update']:.2f} | "
                     f"{ms['host']:.2f} |")
    p = result["projections"]
    lines += ["", f"Projected device-hours, runs one after another: paper "
              f"sweep (Tables 1-2, 320 runs of 250k steps) "
              f"{p['paper_sweep_total_hours']:.1f} h; GMM paper preset "
              f"{p['gmm_paper_total_hours']:.1f} h; maze paper preset "
              f"{p['maze_paper_total_hours']:.1f} h (untimed agents costed "
              f"as {p['proxies']})."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    import sys
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # Quiet orbax's INFO lines.
    agent_flags.apply_matmul_precision(_MATMUL_PRECISION.value)
    from dqs_jax.training import files
    s = sizes(_TINY.value)
    start = time.perf_counter()
    result: Dict[str, Any] = {
        "command": " ".join(["python -m experiments.bench.device_check"]
                            + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "tiny": _TINY.value,
        "sizes": {k: list(v) if isinstance(v, tuple) else v
                  for k, v in s.items()},
        "device": device_info()}
    print(f"device: {result['device']}", flush=True)
    result["matmul_gflops"] = matmul_rates(s["matmul"])
    print(f"matmul GFLOP/s: {result['matmul_gflops']}", flush=True)
    result["updates"] = update_times(s)
    for u in result["updates"]:
        print(f"update {u['agent']} K={u['num_mc_samples']} "
              f"{u['precision']}: {1e3 * u['update_s_median']:.2f} ms",
              flush=True)
    result["loops"] = [loop_split(s, 1, s["env_steps"]),
                       loop_split(s, _NUM_SEEDS.value, s["seeds_steps"])]
    for loop in result["loops"]:
        print(f"loop, {loop['num_seeds']} seed(s): "
              f"{loop['env_steps_per_s']:.1f} env steps/s, ms per step "
              f"{loop['ms_per_step']}", flush=True)
    result["projections"] = projections(result["updates"],
                                        result["loops"][0])
    result["seconds"] = time.perf_counter() - start
    result["versions"] = files.versions()
    d = result["device"]
    name = f"{d['backend']}_{d['device_kind']}".replace(" ", "_").lower()
    name += "_tiny" if _TINY.value else ""
    os.makedirs(_OUT.value, exist_ok=True)
    base = os.path.join(_OUT.value, name)
    files.write_json(base + ".json", result)
    with open(base + ".md", "w") as f:
        f.write(markdown(result))
    print(f"Wrote {base}.json and .md in {result['seconds'] / 60:.1f} min",
          flush=True)


if __name__ == "__main__":
    app.run(main)

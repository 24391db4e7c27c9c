r"""Train several agents on several tasks and seeds; tabulate final returns.

    python -m experiments.dmc.agent_table --agents=dqs,sac,td3 \
        --envs=dmc:cartpole-balance --seeds=0,1,2 --workdir=runs/table \
        -- --max_steps=10000 --seed_steps=1000 --hidden_dims=128,128

Each (agent, env, seed) runs `experiments.train` in its own workdir
`<workdir>/<agent>/<env>/seed_<seed>` with the flags after `--` (plus
`--agent_flags.<agent>="..."` extras for one agent). A run whose workdir
already reached `--max_steps` is skipped, so rerunning resumes the sweep.
Writes `<workdir>/table.md` and `table.json`: per agent and env the final
deterministic evaluation return mean ± std over seeds, the per-seed values
and the mean wall time of a run.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List

from absl import app, flags
import numpy as np

from dqs_jax import agents
from dqs_jax.training import files

_AGENTS = flags.DEFINE_list("agents", ["dqs", "sac"], "Agents to run.")
_ENVS = flags.DEFINE_list("envs", ["dmc:cartpole-balance"], "Tasks.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/agent_table", "Sweep folder.")
_AGENT_FLAGS = flags.DEFINE_multi_string(
    "agent_flag", [], "`agent:--flag=value`: an extra flag for one agent.")
_TABLE_ONLY = flags.DEFINE_boolean("table_only", False,
                                   "Only (re)write the table.")


def final_eval(workdir: str):
    """`(step, return, wall_time)` of the last eval row, or None."""
    rows = files.eval_rows(workdir)
    if not rows:
        return None
    return rows[-1]["step"], rows[-1]["eval_return_mean"], rows[-1]["wall_time"]


def extra_flags(agent: str) -> List[str]:
    out = []
    for item in _AGENT_FLAGS.value:
        name, _, flag = item.partition(":")
        if name not in agents.agent_names() or not flag.startswith("--"):
            raise app.UsageError(f"--agent_flag must look like "
                                 f"agent:--flag=value, got {item!r}.")
        if name == agent:
            out.append(flag)
    return out


def table(results: Dict[str, Dict[str, List]]) -> str:
    envs = list(_ENVS.value)
    lines = ["| agent | " + " | ".join(envs) + " |",
             "|---|" + "---|" * len(envs)]
    for agent, per_env in results.items():
        cells = []
        for env in envs:
            runs = per_env.get(env, [])
            if not runs:
                cells.append("–")
                continue
            returns = np.array([r["return"] for r in runs])
            wall = np.mean([r["wall_time"] for r in runs]) / 60
            cells.append(f"{returns.mean():.1f} ± {returns.std():.1f} "
                         f"(n={len(runs)}, step {runs[0]['step']}, "
                         f"{wall:.1f} min/run)")
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    train_flags = argv[1:]
    unknown = set(_AGENTS.value) - set(agents.agent_names())
    if unknown:
        raise app.UsageError(f"--agents: unknown {sorted(unknown)}; choose "
                             f"from {agents.agent_names()}.")
    results: Dict[str, Dict[str, List]] = {}
    for agent in _AGENTS.value:
        for env in _ENVS.value:
            for seed in _SEEDS.value:
                workdir = sweep.sweep_run_dir(_WORKDIR.value, agent, env,
                                               seed)
                cmd = [sys.executable, "-m", "experiments.train",
                       f"--agent={agent}", f"--env={env}", f"--seed={seed}",
                       f"--workdir={workdir}", *train_flags,
                       *extra_flags(agent)]
                if not _TABLE_ONLY.value:
                    print(f"[{time.strftime('%H:%M:%S')}] "
                          + " ".join(shlex.quote(c) for c in cmd[1:]),
                          flush=True)
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode != 0:
                        print(out.stderr[-2000:], file=sys.stderr)
                        continue
                done = final_eval(workdir)
                if done is not None:
                    step, ret, wall = done
                    results.setdefault(agent, {}).setdefault(env, []).append(
                        {"seed": int(seed), "step": step, "return": ret,
                         "wall_time": wall})
    os.makedirs(_WORKDIR.value, exist_ok=True)
    text = table(results)
    with open(os.path.join(_WORKDIR.value, "table.md"), "w") as f:
        f.write(text)
    files.write_json(os.path.join(_WORKDIR.value, "table.json"),
                      {"results": results, "train_flags": train_flags,
                       "agent_flags": _AGENT_FLAGS.value,
                       "versions": files.versions()})
    print(text)


if __name__ == "__main__":
    app.run(main)

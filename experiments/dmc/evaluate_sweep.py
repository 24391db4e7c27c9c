r"""Evaluates every finished run of a sweep again with evaluation-only
settings changed, paired with each run's own last evaluation:

    python -m experiments.dmc.evaluate_sweep --sweep=runs/parity \
        --set=eval_start=hashed

Each run is evaluated as `experiments.dmc.evaluate_run` does (its newest
checkpoint, the episodes of its own last evaluation) and cached in the run's
folder, so rerunning after more runs finish evaluates only the new ones.
Prints a table per agent and task (mean ± std over seeds as trained and
changed, and the paired difference with its t statistic) and writes
`<sweep>/reevaluation_<tag>.json` and `.md`.
"""

import os
import sys
from typing import Callable, Dict, List, Optional

from absl import app, flags
import numpy as np

from dqs_jax import agents
from dqs_jax.training import files, recovery
from experiments.dmc import sweep
from experiments.dmc.evaluate_run import evaluate_run, parse_overrides

def settings_tag(overrides: Dict) -> str:
    """`{"eval_start": "hashed"}` -> `"eval_start-hashed"`."""
    if not overrides:
        raise ValueError("give at least one setting to change.")
    return "_".join(f"{k}-{v}" for k, v in sorted(overrides.items()))


def sweep_runs(sweep_dir: str) -> List[Dict]:
    """`{agent, env, seed, workdir}` of every run `sweep.json` lists."""
    spec = files.read_json(os.path.join(sweep_dir, "sweep.json"))
    return [dict(agent=agent, env=env, seed=seed,
                 workdir=sweep.sweep_run_dir(sweep_dir, agent, env, seed))
            for env in spec["tasks"] for agent in spec["agents"]
            for seed in spec["seeds"]]


def reevaluate_sweep(sweep_dir: str, overrides: Dict,
                     num_episodes: Optional[int] = None,
                     evaluate: Callable = evaluate_run,
                     log: Callable[[str], None] = print) -> Dict:
    """Per finished run (last evaluation at the sweep's `max_steps`): its
    last evaluation's mean return (`trained`) and the mean return of the
    same episodes with `overrides` (`changed`); with per `(agent, env)`
    summaries (`summarise`). `num_episodes` defaults to the sweep's."""
    spec = files.read_json(os.path.join(sweep_dir, "sweep.json"))
    episodes = num_episodes or spec["eval_episodes"]
    tag = settings_tag(overrides)
    rows = []
    for run in sweep_runs(sweep_dir):
        done = sweep.progress(run, spec["max_steps"])
        if done["state"] != "done":
            continue
        cache = os.path.join(run["workdir"], f"reevaluation_{tag}.json")
        if os.path.exists(cache):
            result = files.read_json(cache)
        else:
            result = evaluate(run["workdir"], episodes, overrides)
            files.write_json(cache, result)
        if result["step"] != done["step"]:
            raise ValueError(f"{run['workdir']}: newest checkpoint at step "
                             f"{result['step']}, last evaluation at "
                             f"{done['step']}.")
        rows.append({**{k: run[k] for k in ("agent", "env", "seed")},
                     "step": result["step"],
                     "trained": float(done["ret"]),
                     "changed": float(result["mean"])})
        log(f"{run['agent']} {run['env']} seed {run['seed']}: "
            f"{rows[-1]['trained']:.1f} -> {rows[-1]['changed']:.1f}")
    return {"sweep": os.path.abspath(sweep_dir), "overrides": overrides,
            "eval_episodes": episodes, "runs": rows,
            "summary": summarise(rows)}


def summarise(rows: List[Dict]) -> List[Dict]:
    """Per `(agent, env)` and over all rows (`agent = env = "all"`): runs,
    mean ± sample std (ddof 1) of `trained` and `changed`, and the paired
    difference `changed - trained`: mean, std and t statistic (mean /
    (std / sqrt(n)); nan with fewer than 2 runs)."""
    groups: Dict = {}
    for row in rows:
        groups.setdefault((row["agent"], row["env"]), []).append(row)
    if rows:
        groups[("all", "all")] = rows
    out = []
    for (agent, env), group in groups.items():
        trained = np.array([r["trained"] for r in group])
        changed = np.array([r["changed"] for r in group])
        diff = changed - trained
        n = len(group)
        std = (lambda x: float(np.std(x, ddof=1)) if n > 1 else float("nan"))
        t = (float(diff.mean() / (np.std(diff, ddof=1) / np.sqrt(n)))
             if n > 1 and np.std(diff) > 0 else float("nan"))
        out.append(dict(agent=agent, env=env, runs=n,
                        trained_mean=float(trained.mean()),
                        trained_std=std(trained),
                        changed_mean=float(changed.mean()),
                        changed_std=std(changed),
                        diff_mean=float(diff.mean()), diff_std=std(diff),
                        diff_t=t))
    return out


def markdown_table(result: Dict) -> str:
    """The summary as a Markdown table."""
    tag = settings_tag(result["overrides"])
    lines = [f"| agent | task | runs | as trained | {tag} | difference "
             "(paired) | t |", "|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(
            f"| {s['agent']} | {s['env']} | {s['runs']} | "
            f"{s['trained_mean']:.1f} ± {s['trained_std']:.1f} | "
            f"{s['changed_mean']:.1f} ± {s['changed_std']:.1f} | "
            f"{s['diff_mean']:+.1f} ± {s['diff_std']:.1f} | "
            f"{s['diff_t']:.2f} |")
    return "\n".join(lines)


FLAGS = flags.FLAGS


def _define_flags():
    """The binary's flags (defined only when it runs, so that importing
    this module defines none)."""
    flags.DEFINE_string("sweep", None, "Sweep folder (with sweep.json).")
    flags.DEFINE_multi_string("set", [], "field=value of an "
                              "evaluation-only setting (repeatable).")
    flags.DEFINE_integer("eval_episodes", None,
                         "Episodes per run (default: the sweep's).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.sweep or not FLAGS.set:
        raise app.UsageError("--sweep and at least one --set are required.")
    try:
        spec = files.read_json(os.path.join(FLAGS.sweep, "sweep.json"))
        names = {sweep.split_label(label)[0] for label in spec["agents"]}
        if len(names) != 1:
            raise ValueError(f"the sweep mixes agents {sorted(names)}; "
                             "settings are per agent config.")
        overrides = parse_overrides(
            FLAGS.set, agents.get_agent(names.pop()).config_cls)
        result = reevaluate_sweep(FLAGS.sweep, overrides, FLAGS.eval_episodes)
    except (OSError, ValueError, KeyError,
            recovery.NoIntactCheckpointError) as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    table = markdown_table(result)
    print(table)
    base = os.path.join(FLAGS.sweep,
                        f"reevaluation_{settings_tag(overrides)}")
    files.write_json(base + ".json", result)
    with open(base + ".md", "w") as f:
        f.write(table + "\n")
    print(f"Wrote {os.path.abspath(base)}.json and .md "
          f"({len(result['runs'])} finished runs).")


if __name__ == "__main__":
    _define_flags()
    app.run(main)

"""Evaluates every finished run of a sweep again with evaluation-only
settings changed, paired with the run's own last evaluation (the logic of
`experiments.evaluate_sweep`, importable without its flags).

Each run's result is cached in `<run>/reevaluation_<tag>.json` (`tag` from
the settings, e.g. `eval_start-hashed`), so a rerun only evaluates runs
finished since.
"""

import os
from typing import Callable, Dict, List, Optional

import numpy as np

from experiments import run_io, sweep
from experiments.run_evaluation import evaluate_run


def settings_tag(overrides: Dict) -> str:
    """`{"eval_start": "hashed"}` -> `"eval_start-hashed"`."""
    if not overrides:
        raise ValueError("give at least one setting to change.")
    return "_".join(f"{k}-{v}" for k, v in sorted(overrides.items()))


def sweep_runs(sweep_dir: str) -> List[Dict]:
    """`{agent, env, seed, workdir}` of every run `sweep.json` lists."""
    spec = run_io.read_json(os.path.join(sweep_dir, "sweep.json"))
    return [dict(agent=agent, env=env, seed=seed,
                 workdir=run_io.sweep_run_dir(sweep_dir, agent, env, seed))
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
    spec = run_io.read_json(os.path.join(sweep_dir, "sweep.json"))
    episodes = num_episodes or spec["eval_episodes"]
    tag = settings_tag(overrides)
    rows = []
    for run in sweep_runs(sweep_dir):
        done = sweep.progress(run, spec["max_steps"])
        if done["state"] != "done":
            continue
        cache = os.path.join(run["workdir"], f"reevaluation_{tag}.json")
        if os.path.exists(cache):
            result = run_io.read_json(cache)
        else:
            result = evaluate(run["workdir"], episodes, overrides)
            run_io.write_json(cache, result)
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

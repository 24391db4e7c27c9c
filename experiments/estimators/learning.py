r"""Learning equivalence of score estimators (docs/estimators.md).

    python -m experiments.estimators.learning               # DMC, then GMM
    python -m experiments.estimators.learning --gmm=false --seeds=0

Trains DQS with each of `--estimators` (`name:K`) on `--env` for
`--max_steps` (the `make run` network sizes, 3 seeds) through
`experiments.train`, and on the GMM-40 CPU preset through
`experiments.gmm` (its seeds vmapped in one process). Each run has its own
workdir under `--workdir`; finished runs are skipped on a rerun.

Writes `<workdir>/estimator_learning.json` and `.md`: per estimator the
DMC evaluation return (mean ± std over seeds, and per seed) at equal steps
(the last evaluation) and at equal wall time (the last evaluation within
the shortest run's wall time, the common budget), the mean wall time of a
run; the GMM squared MMD and modes covered per seed with the wall time.
Plus `estimator_learning.png`: DMC return against steps and against wall
time, one line per estimator (mean over seeds, band = min..max).
"""

import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Tuple

from absl import app, flags
import numpy as np

from dqs_jax.score_targets import ESTIMATORS
from dqs_jax.training import files

_ENV = flags.DEFINE_string("env", "dmc:cheetah-run", "DMC task.")
_ESTIMATORS = flags.DEFINE_list(
    "estimators", ["idem:32", "adaptive:100"],
    "Estimators as name:K; the first is the reference.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "DMC seeds.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", 20_000, "DMC steps per run.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 2_500, "DMC eval period.")
_GMM = flags.DEFINE_boolean("gmm", True, "Also run the GMM-40 CPU preset.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/estimator_learning",
                               "Sweep folder.")

# `make run`'s sizes (128-unit networks, batch 128).
TRAIN_FLAGS = ("--seed_steps=2000", "--batch_size=128",
               "--hidden_dims=128,128", "--critic_hidden_dims=128,128",
               "--eval_episodes=5", "--checkpoint_every=5000",
               "--log_interval=2500")


def parse_estimators(items: List[str]) -> List[Tuple[str, int]]:
    """`["idem:32", ...]` -> `[("idem", 32), ...]`; bad items raise."""
    out = []
    for item in items:
        name, _, k = item.partition(":")
        if name not in ESTIMATORS or not k.isdigit() or int(k) < 1:
            raise app.UsageError(f"--estimators items must be name:K with "
                                 f"name in {ESTIMATORS}, got {item!r}.")
        out.append((name, int(k)))
    return out


def estimator_flags(name: str, k: int) -> List[str]:
    extra = ["--stratified_times=true"] if name == "adaptive" else []
    return [f"--estimator={name}", f"--num_mc_samples={k}", *extra]


def _run(cmd: List[str]) -> bool:
    print(f"[{time.strftime('%H:%M:%S')}] "
          + " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
    return out.returncode == 0


def eval_curve(workdir: str) -> np.ndarray:
    """`[n, 3]` (step, return, wall time) of a run's evaluations."""
    rows = files.eval_rows(workdir)
    return np.array([[r["step"], r["eval_return_mean"], r["wall_time"]]
                     for r in rows]).reshape(-1, 3)


def at_wall_time(curve: np.ndarray, budget: float) -> float:
    """The return of the last evaluation within `budget` seconds."""
    within = curve[curve[:, 2] <= budget + 1e-6]
    return float(within[-1, 1]) if len(within) else float("nan")


def summarise(curves: Dict[str, List[np.ndarray]]) -> Dict:
    """Equal-step and equal-wall-time returns per estimator."""
    finished = [c for runs in curves.values() for c in runs if len(c)]
    budget = min(float(c[-1, 2]) for c in finished)
    out = {"wall_budget_s": budget}
    for label, runs in curves.items():
        final = [float(c[-1, 1]) for c in runs]
        timed = [at_wall_time(c, budget) for c in runs]
        out[label] = {
            "steps": int(runs[0][-1, 0]),
            "return_at_steps": final,
            "return_at_wall_budget": timed,
            "wall_time_s": [float(c[-1, 2]) for c in runs],
        }
    return out


def markdown(summary: Dict, gmm: Dict) -> str:
    lines = [f"DMC `{_ENV.value}`, {len(_SEEDS.value)} seeds. Equal wall "
             f"time = {summary['wall_budget_s'] / 60:.1f} min (the shortest "
             "run).", "",
             "| estimator | return at equal steps | at equal wall time | "
             "wall time of a run |", "|---|---|---|---|"]
    fmt = lambda v: (f"{np.mean(v):.1f} ± {np.std(v):.1f} ("  # noqa: E731
                     + ", ".join(f"{x:.0f}" for x in v) + ")")
    for label, s in summary.items():
        if label == "wall_budget_s":
            continue
        lines.append(f"| {label} | {fmt(s['return_at_steps'])} at "
                     f"{s['steps']} | {fmt(s['return_at_wall_budget'])} | "
                     f"{np.mean(s['wall_time_s']) / 60:.1f} min |")
    if gmm:
        lines += ["", "GMM-40, CPU preset (squared MMD / modes per seed):",
                  "", "| estimator | MMD² | modes | wall time |",
                  "|---|---|---|---|"]
        for label, g in gmm.items():
            lines.append(
                f"| {label} | {fmt(g['mmd'])} | {fmt(g['modes'])} | "
                f"{g['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def plot(curves: Dict[str, List[np.ndarray]], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, runs in curves.items():
        n = min(len(c) for c in runs)
        stack = np.stack([c[:n] for c in runs])  # [seeds, n, 3]
        for ax, x in zip(axes, (stack[0, :, 0], stack[:, :, 2].mean(0) / 60)):
            ax.plot(x, stack[:, :, 1].mean(0), label=label)
            ax.fill_between(x, stack[:, :, 1].min(0), stack[:, :, 1].max(0),
                            alpha=0.2)
    axes[0].set_xlabel("environment steps")
    axes[1].set_xlabel("wall time (min)")
    for ax in axes:
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"DQS score estimators on {_ENV.value}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def gmm_results(label: str, name: str, k: int) -> Dict:
    workdir = os.path.join(_WORKDIR.value, "gmm", label.replace(":", "_"))
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        _run([sys.executable, "-m", "experiments.gmm", "--preset=cpu",
              "--methods=dqs", f"--estimator={name}",
              f"--num_mc_samples={k}", f"--workdir={workdir}"])
    summary = files.read_json(path)
    result = summary["methods"]["dqs"]
    return {"mmd": result["mmd"], "modes": result["coverage"],
            "train_seconds": summary["train_seconds"]["dqs"]}


def main(argv):
    del argv
    estimators = parse_estimators(_ESTIMATORS.value)
    curves: Dict[str, List[np.ndarray]] = {}
    for name, k in estimators:
        label = f"{name}:{k}"
        for seed in _SEEDS.value:
            workdir = os.path.join(_WORKDIR.value, "dmc",
                                   label.replace(":", "_"), f"seed_{seed}")
            curve = eval_curve(workdir)
            if not len(curve) or curve[-1, 0] < _MAX_STEPS.value:
                _run([sys.executable, "-m", "experiments.train",
                      f"--env={_ENV.value}", f"--seed={seed}",
                      f"--max_steps={_MAX_STEPS.value}",
                      f"--eval_every={_EVAL_EVERY.value}",
                      f"--workdir={workdir}", *TRAIN_FLAGS,
                      *estimator_flags(name, k)])
                curve = eval_curve(workdir)
            curves.setdefault(label, []).append(curve)
    summary = summarise(curves)
    gmm = ({f"{n}:{k}": gmm_results(f"{n}:{k}", n, k)
            for n, k in estimators} if _GMM.value else {})
    os.makedirs(_WORKDIR.value, exist_ok=True)
    files.write_json(os.path.join(_WORKDIR.value, "estimator_learning.json"),
                      {"env": _ENV.value, "seeds": _SEEDS.value,
                       "train_flags": list(TRAIN_FLAGS), "dmc": summary,
                       "gmm": gmm, "versions": files.versions()})
    text = markdown(summary, gmm)
    with open(os.path.join(_WORKDIR.value, "estimator_learning.md"), "w") as f:
        f.write(text)
    plot(curves, os.path.join(_WORKDIR.value, "estimator_learning.png"))
    print(text)


if __name__ == "__main__":
    app.run(main)

r"""The paper's goal-reaching maze experiment (Sec. 5.2, Fig. 6; docs/results/maze.md):
DQS with an annealed temperature against other off-policy agents on the
two-goal PointMaze, equal budgets, several seeds.

    python -m experiments.maze --preset=cpu --workdir=runs/maze       # 2 cores
    python -m experiments.maze --preset=paper --workdir=runs/maze     # a GPU
    python -m experiments.maze --config=experiments/configs/maze/paper.py \
        --agents=dqs,sac --num_seeds=3 --workdir=W

Each agent and seed trains on `maze:two-goal` (continuing, reward 1 per
step inside the episode's goal disc, 600-step episodes, the goal drawn at
each reset and not observed) through `training.train`, in its own
resumable workdir `<workdir>/runs/<agent>/seed_<i>`: rerunning the command
skips finished runs and resumes unfinished ones from their checkpoints
(raising only `--max_steps` extends them; other changes are refused). Then
`--eval_episodes` episodes of each stochastic policy (`deterministic=False`)
per seed, on fresh envs whose seeds and policy keys derive from the seed
(`experiments.maze_rollouts`; the same goals and starts for every agent),
record the ball's path; `experiments.maze_summary` counts the goal each
episode reached first and, for the top-left goal, the route it came by.

Writes under `--workdir`: results.json (per agent and seed: goal counts and
fractions, top-left route counts and fractions, returns, and for DQS its
final temperature and the spread of its critic over the actions at the
start, `critic_spread`; per agent: mean ± std over seeds (ddof 0); the
settings, agent configs, wall times),
maze_trajectories.npz (every path, goal and return) and
maze_trajectories.png (one panel per agent, seed 0's first
`--plot_episodes` paths coloured by first goal, fractions under each).

Presets are config files in `experiments/configs/maze/` (every field of
`MazeSettings` is also a flag): `cpu` (DQS and the four baselines of the
paper's figure, 3 seeds, 100k steps with one update every 4 at CPU sizes,
DQS's temperature annealed 10 -> 0.1 over 15k updates, then held) and
`paper` (the same agents at the paper's sizes, 250k steps with one update
per step, for a GPU). How the cpu preset was chosen: docs/results/maze.md.

Agents: any registered off-policy agent (`--agents=dqs,sac,qsm,dacer,dipo,
td3,ddpg`); on-policy PPO is refused. The DQS temperature flags apply to
DQS only; each other agent keeps its own defaults except the widths.
"""

import dataclasses
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from absl import app, flags, logging  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from dqs_jax import agents  # noqa: E402
from dqs_jax import training  # noqa: E402
from dqs_jax.training import files  # noqa: E402
from experiments.maze import critic_spread  # noqa: E402
from experiments.maze import plots as maze_plots  # noqa: E402
from experiments.maze import rollouts as maze_rollouts  # noqa: E402
from experiments.maze import settings as maze_settings  # noqa: E402
from experiments.maze import summary as maze_summary  # noqa: E402
from experiments.configs import agent_flags, loader  # noqa: E402

_SETTINGS = agent_flags.PresetFlags("maze", maze_settings.MazeSettings)
flags.adopt_module_key_flags(agent_flags)  # Listed by --help.
_WORKDIR = flags.DEFINE_string("workdir", "runs/maze", "Output folder.")


def settings() -> dict:
    """The preset (or `--config`) with the field flags set applied; UsageError
    on a bad value."""
    try:
        return maze_settings.resolve(*_SETTINGS.values())
    except (TypeError, ValueError) as e:
        raise app.UsageError(str(e)) from None


def _elapsed(start: float) -> str:
    return f"[{(time.time() - start) / 60:.1f} min]"


def train_runs(method: str, s: dict, start: float):
    """Trains (or resumes, or restores) every seed of `method`; returns
    `(final agent states, wall seconds of each run)`."""
    states, seconds = [], []
    for seed in range(s["num_seeds"]):
        run = maze_settings.run_settings(method, seed, s, _WORKDIR.value)
        try:
            summary = training.train(run, argv=sys.argv)
        except (training.ConfigMismatchError,
                training.NoIntactCheckpointError,
                training.NonFiniteLossError) as e:
            print(f"ERROR: {method} seed {seed}: {e}", file=sys.stderr,
                  flush=True)
            sys.exit(1)
        if summary["stopped_by"] is not None:  # The loop printed its line.
            sys.exit(128 + summary["stopped_by"])
        rows = files.eval_rows(run.workdir)
        seconds.append(rows[-1]["wall_time"] if rows else None)
        states.append(summary["state"])
        final = summary["final_eval_return"]
        print(f"{_elapsed(start)} {method} seed {seed}: trained, "
              f"{summary['env_steps']} steps, deterministic eval return "
              f"{'n/a' if final is None else f'{final:.1f}'}, run wall time "
              f"{(seconds[-1] or 0) / 60:.1f} min", flush=True)
    return states, seconds


def evaluate_runs(method: str, states, envs):
    """Stochastic episodes of every seed: `(Episodes per seed, summaries)`."""
    act = jax.jit(agents.get_agent(method).act,
                  static_argnames="deterministic")
    episodes, summaries = [], []
    for seed, state in enumerate(states):
        result = maze_rollouts.rollout(
            envs, act, state, maze_rollouts.eval_key(seed),
            maze_rollouts.episode_seeds(seed, len(envs)))
        episodes.append(result)
        summaries.append(maze_summary.seed_summary(
            result.positions, result.returns, result.goals))
    return episodes, summaries


def _save_trajectories(path: str, episodes: dict) -> None:
    arrays = {}
    for method, per_seed in episodes.items():
        for seed, result in enumerate(per_seed):
            for field, value in result._asdict().items():
                arrays[f"{method}_seed{seed}_{field}"] = value
    np.savez_compressed(path, **arrays)


def _figure(path: str, episodes: dict, methods: dict, s: dict,
            preset: str) -> str:
    """Seed 0's first `plot_episodes` paths per method, fractions under
    each panel."""
    shown = min(s["plot_episodes"], s["eval_episodes"])
    panels = {}
    for method, per_seed in episodes.items():
        positions = per_seed[0].positions[:shown]
        panels[method] = (positions,
                          maze_summary.episode_outcomes(positions)[0])
    return maze_plots.trajectories_figure(
        path, panels, {m: maze_summary.describe(r["aggregate"])
                       for m, r in methods.items()},
        f"Two-goal maze, {s['max_steps']} env steps x {s['num_seeds']} "
        f"seed(s) ({preset} preset); fractions: mean ± std over seeds")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Quiet orbax's INFO lines.
    s = settings()
    workdir = _WORKDIR.value
    os.makedirs(workdir, exist_ok=True)
    preset = _SETTINGS.name()
    start = time.time()
    print(f"Maze experiment ({preset}) in {os.path.abspath(workdir)}: {s}",
          flush=True)
    envs = maze_rollouts.make_envs(maze_settings.ENV, s["eval_episodes"])
    episodes, methods = {}, {}
    for method in s["agents"]:
        states, seconds = train_runs(method, s, start)
        eval_start = time.time()
        episodes[method], summaries = evaluate_runs(method, states, envs)
        if method == "dqs":
            for summary, state in zip(summaries, states):
                summary.update(critic_spread.describe(state))
        agg = maze_summary.aggregate(summaries)
        methods[method] = {
            "seeds": {str(i): x for i, x in enumerate(summaries)},
            "aggregate": agg, "train_wall_seconds": seconds,
            "eval_seconds": time.time() - eval_start}
        print(f"{_elapsed(start)} {method}: evaluated {s['num_seeds']} x "
              f"{s['eval_episodes']} episodes in "
              f"{time.time() - eval_start:.0f} s; "
              + "; ".join(maze_summary.describe(agg)), flush=True)
    results = {
        "preset": preset, "settings": s, "env": maze_settings.ENV,
        "agent_configs": {m: dataclasses.asdict(
            maze_settings.agent_config(m, s)) for m in s["agents"]},
        "methods": methods, "wall_seconds": time.time() - start,
        "versions": files.versions(),
        "devices": [str(d) for d in jax.devices()]}
    results_path = os.path.join(workdir, "results.json")
    files.write_json(results_path, results)
    _save_trajectories(os.path.join(workdir, "maze_trajectories.npz"),
                       episodes)
    png = _figure(os.path.join(workdir, "maze_trajectories.png"), episodes,
                  methods, s, preset)
    print(f"{_elapsed(start)} wrote {os.path.abspath(results_path)} and "
          f"{png}", flush=True)


if __name__ == "__main__":
    loader.check_config_argv(sys.argv)
    app.run(main)

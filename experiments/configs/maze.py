"""The paper's goal-reaching maze experiment (SPEC §10C, Sec. 5.2):
`PRESETS` are the defaults of `experiments.maze` (sizing rationale in that
module's docstring).

    python -m experiments.maze --config=experiments/configs/maze.py:paper \
        --config.num_seeds=3

The part after `:` names the preset (default cpu).
"""

from dqs_jax.dqs_config import DQSConfig
from experiments.configs import common

_DQS = DQSConfig()

# What each field means (the binary's flag help; every preset sets all).
FIELDS = {
    "agents": "Agents to train (off-policy only), with equal budgets.",
    "num_seeds": "Seeds per agent: 0, 1, ..., num_seeds - 1.",
    "max_steps": "Environment steps per run.",
    "seed_steps": "Initial uniform-random steps (no updates) per run.",
    "batch_size": "Transitions per update.",
    "replay_size": "Replay buffer capacity.",
    "hidden_dim": "Width of the 2 hidden layers of every actor and critic.",
    "num_mc_samples": "DQS's K, Monte Carlo samples of the score estimate.",
    "init_temperature": "DQS's temperature at update 0.",
    "final_temperature": "DQS's temperature after temperature_anneal_steps.",
    "temperature_anneal_steps": "Updates over which DQS's temperature goes "
                                "log-linearly from init to final (0: "
                                "constant init_temperature).",
    "eval_episodes": "Stochastic evaluation episodes per agent and seed "
                     "after training.",
    "plot_episodes": "Trajectories drawn per panel (seed 0's first ones).",
    "train_eval_every": "Env steps between the runs' deterministic "
                        "evaluations, checkpoints and progress lines.",
    "train_eval_episodes": "Episodes per deterministic evaluation during "
                           "training.",
}

PRESETS = {
    # 2 CPU cores, <= ~50 min in all: updates = max_steps - seed_steps, and
    # DQS anneals 10 -> 1 over exactly those, ending at temperature 1.
    "cpu": dict(agents=("dqs", "sac"), num_seeds=3, max_steps=25_000,
                seed_steps=2_000, batch_size=128, replay_size=25_000,
                hidden_dim=128, num_mc_samples=32, init_temperature=10.0,
                final_temperature=1.0, temperature_anneal_steps=23_000,
                eval_episodes=100, plot_episodes=30, train_eval_every=5_000,
                train_eval_episodes=4),
    # A GPU: the paper's networks and K (every agent's defaults), the
    # authors' example schedule for the maze (10 -> 1 over 250k updates).
    "paper": dict(agents=("dqs", "sac", "qsm", "dacer", "dipo"), num_seeds=5,
                  max_steps=250_000, seed_steps=10_000, batch_size=256,
                  replay_size=250_000, hidden_dim=_DQS.hidden_dims[0],
                  num_mc_samples=_DQS.num_mc_samples, init_temperature=10.0,
                  final_temperature=1.0, temperature_anneal_steps=250_000,
                  eval_episodes=100, plot_episodes=30,
                  train_eval_every=10_000, train_eval_episodes=10),
}


def get_config(preset: str = "cpu"):
    return common.preset_config(PRESETS, preset)

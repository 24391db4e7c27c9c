"""The paper's DMC tables (Tables 1-2): the 8 tasks, every agent, 5 seeds,
250k steps, evaluation every 10k steps (so 100k and 250k are read
exactly) with 10 episodes; each agent at its own defaults (DQS: K = 1000,
docs/algorithm.md §9), and DDPG with the double-Q critic the paper gives
every baseline. Where it departs from the paper (PPO's x-axis):
docs/results/dmc.md. Sized for GPUs or a cluster."""

from dqs_jax import agents
from experiments.configs.loader import as_config
from experiments.dmc.sweep import PAPER_TASKS, SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=tuple(f"dmc:{t}" for t in PAPER_TASKS),
        agents=tuple(agents.agent_names()), seeds=(0, 1, 2, 3, 4),
        max_steps=250_000, eval_every=10_000, eval_episodes=10,
        agent_flags={"ddpg": ("--num_critics=2",)}))

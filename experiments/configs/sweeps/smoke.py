"""A few minutes: the cpu preset's shape (DQS and SAC, 3 seeds, CPU sizes)
on reacher-hard for 2k steps, to see a sweep work end to end."""

from experiments.configs.loader import as_config
from experiments.dmc.sweep import SMALL_NETS, SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=("dmc:reacher-hard",), agents=("dqs", "sac"), seeds=(0, 1, 2),
        max_steps=2_000, eval_every=1_000, eval_episodes=2,
        flags=("--seed_steps=500",) + SMALL_NETS,
        agent_flags={"dqs": ("--num_mc_samples=32",)}))

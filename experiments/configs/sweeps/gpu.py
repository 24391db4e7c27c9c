"""DQS and SAC on reacher-hard (the paper's widest DQS lead at 100k), 2
seeds, 20k steps at the paper's sizes (K = 1000): a first check on one
GPU."""

from experiments.configs.loader import as_config
from experiments.dmc.sweep import SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=("dmc:reacher-hard",), agents=("dqs", "sac"), seeds=(0, 1),
        max_steps=20_000, eval_every=2_500, eval_episodes=10,
        flags=("--seed_steps=5000",)))

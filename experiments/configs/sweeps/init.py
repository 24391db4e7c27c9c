"""SAC with the initialisation of the DQS authors' lab (orthogonal,
sqrt(2)) against Flax's default (this library's), at the parity preset's
tasks, seeds, steps and sizes (docs/defaults.md)."""

from experiments.configs.loader import as_config
from experiments.dmc.sweep import SMALL_NETS, SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=("dmc:cheetah-run", "dmc:walker-walk"),
        agents=("sac@lecun_normal", "sac@orthogonal"), seeds=(0, 1, 2, 3, 4),
        max_steps=30_000, eval_every=5_000, eval_episodes=10,
        flags=("--seed_steps=2000",) + SMALL_NETS,
        variants={"lecun_normal": (), "orthogonal": ("--kernel_init=orthogonal",)}))

"""DQS with the authors' network details (this library's defaults:
orthogonal initialisation, GELU after the score net's input layer) against
the earlier ones (LeCun-normal, no input activation), 5 seeds on
cheetah-run and walker-walk, 30k steps at CPU sizes (docs/defaults.md)."""

from experiments.configs.loader import as_config
from experiments.dmc.sweep import SMALL_NETS, SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=("dmc:cheetah-run", "dmc:walker-walk"),
        agents=("dqs@reference", "dqs@previous"), seeds=(0, 1, 2, 3, 4),
        max_steps=30_000, eval_every=5_000, eval_episodes=10,
        flags=("--seed_steps=2000",) + SMALL_NETS,
        agent_flags={"dqs": ("--num_mc_samples=32",
                             "--num_sampling_steps=20")},
        variants={"reference": (),
                  "previous": ("--kernel_init=lecun_normal",
                               "--score_input_activation=none")}))

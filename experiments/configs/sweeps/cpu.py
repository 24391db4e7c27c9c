"""The paper's 100k-step comparison at CPU sizes: DQS, SAC and TD3 on
cheetah-run and reacher-hard (the tasks of the paper's widest DQS margins),
3 seeds, 100k steps, evaluation every 10k steps with 10 episodes, the
paper's 10k seed steps, every agent with 2x128 networks and batch 128 (DQS:
K = 32, 20 sampler steps). 18 runs; results in docs/results/dmc.md."""

from experiments.configs.loader import as_config
from experiments.dmc.sweep import SMALL_NETS, SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=("dmc:cheetah-run", "dmc:reacher-hard"),
        agents=("dqs", "sac", "td3"), seeds=(0, 1, 2), max_steps=100_000,
        eval_every=10_000, eval_episodes=10, flags=SMALL_NETS,
        agent_flags={"dqs": ("--num_mc_samples=32",
                             "--num_sampling_steps=20")}))

"""Every agent through one binary at a tiny budget (a smoke test on real
tasks, not a ranking): cartpole-balance and cheetah-run, 3 seeds, 5k steps
(1k seed steps), 2x128 networks, batch 128, DQS with K = 32, DIPO with 20
diffusion steps (docs/results/dmc.md, "Baselines on a CPU budget")."""

from dqs_jax import agents
from experiments.configs.loader import as_config
from experiments.dmc.sweep import SMALL_NETS, SweepSpec


def get_config():
    return as_config(SweepSpec(
        tasks=("dmc:cartpole-balance", "dmc:cheetah-run"),
        agents=tuple(agents.agent_names()), seeds=(0, 1, 2),
        max_steps=5_000, eval_every=5_000, eval_episodes=5,
        flags=("--seed_steps=1000", "--checkpoint_every=5000",
               "--replay_size=50000") + SMALL_NETS,
        agent_flags={"dqs": ("--num_mc_samples=32",),
                     "dipo": ("--num_diffusion_steps=20",)}))

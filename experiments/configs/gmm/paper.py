"""GMM-40 as the paper runs it (a GPU): 200k env steps, 5 seeds, the
paper's 256-unit networks, K = 1000 and discount 0.99, 10k seed steps,
2000 evaluation rollouts per seed; DQS's temperature 30."""

from experiments.configs.loader import as_config
from experiments.gmm.settings import GMMSettings


def get_config():
    return as_config(GMMSettings(
        num_steps=200_000, seed_steps=10_000, batch_size=256,
        replay_size=200_000, hidden_dim=256, num_mc_samples=1000,
        num_seeds=5, num_rollouts=2000, rollout_length=2_000,
        discount=0.99, dqs_temperature=30.0, dqs_final_temperature=30.0))

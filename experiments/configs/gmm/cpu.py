"""GMM-40 at CPU scale (the `GMMSettings` defaults): 100k env steps per
seed, 3 seeds, 128-unit networks, K = 32, temperature 30; DQS and SAC
with equal budgets (wall times: docs/results/gmm.md)."""

from experiments.configs.loader import as_config
from experiments.gmm.settings import GMMSettings


def get_config():
    return as_config(GMMSettings())

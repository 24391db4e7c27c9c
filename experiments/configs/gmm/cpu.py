"""GMM-40 at CPU scale (the `GMMSettings` defaults): 100k env steps per
seed, 3 seeds, 128-unit networks, K = 32, temperature 10, every method's
discount 0.9 (the paper's is 0.99); DQS and SAC with equal budgets
(results, wall times and why gamma 0.9: docs/results/gmm.md)."""

from experiments.configs.loader import as_config
from experiments.gmm.settings import GMMSettings


def get_config():
    return as_config(GMMSettings())

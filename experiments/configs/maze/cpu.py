"""The maze at CPU scale (the `MazeSettings` defaults): DQS, SAC, QSM,
DACER and DIPO, 3 seeds, 100k env steps with one update every 4 after 10k
seed steps (22.5k updates), 128-unit networks, K = 32, DQS's temperature
annealed 10 -> 0.1 over 15k updates and held for the last 7.5k (how it was
chosen and wall times: docs/results/maze.md)."""

from experiments.configs.loader import as_config
from experiments.maze.settings import MazeSettings


def get_config():
    return as_config(MazeSettings())

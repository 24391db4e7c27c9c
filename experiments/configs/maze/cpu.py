"""The maze at CPU scale (the `MazeSettings` defaults): DQS and SAC, 3
seeds, 25k steps, 128-unit networks, K = 32, DQS's temperature annealed
10 -> 1 over all its updates (wall times: docs/results/maze.md)."""

from experiments.configs.loader import as_config
from experiments.maze.settings import MazeSettings


def get_config():
    return as_config(MazeSettings())

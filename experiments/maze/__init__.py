"""The two-goal maze experiment (the paper's Sec. 5.2): `python -m experiments.maze`."""

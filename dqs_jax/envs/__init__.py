"""Environments: dm_control (Python, stateful) and pure-JAX functional envs."""

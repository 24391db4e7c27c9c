"""Test-wide settings."""

import os

# Headless MuJoCo before anything imports dm_control.
os.environ.setdefault("MUJOCO_GL", "egl")

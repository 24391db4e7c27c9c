"""A DeepMind Control Suite wrapper for a Python training loop.

`DMCEnv` flattens observations to `[o]` float32, takes actions in `[-1, 1]`
(clipped, then rescaled to the task's action bounds), reports termination and
time-limit truncation separately, and can save / restore its complete state
as a dict of numpy arrays (a pytree an orbax checkpoint can hold).
"""

import math
import os
from typing import Any, Dict, Optional

# Headless rendering; must be set before dm_control is imported. Users can
# override it (e.g. `MUJOCO_GL=osmesa`). Also avoids the GLFW DISPLAY warning.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402

from dqs_jax.envs.base import (  # noqa: E402,F401  (StepResult re-exported)
    StepResult, check_in_episode, checked_action)

_STATE_SIG = mujoco.mjtState.mjSTATE_INTEGRATION

# Model fields that suite tasks change at run time (target positions and
# sizes, point-mass wrap directions, the quadruped-escape terrain, reward
# colours, finger's damping). They are not part of MuJoCo's integration
# state, so `get_state` saves them too (the non-empty ones only: orbax cannot
# save zero-size arrays).
_MUTABLE_MODEL_FIELDS = (
    "body_pos", "body_quat", "geom_pos", "geom_quat", "geom_size",
    "geom_rgba", "site_pos", "site_quat", "site_size", "site_rgba",
    "light_pos", "light_dir", "mat_rgba", "dof_damping", "wrap_prm",
    "hfield_data",
)
_MODEL_PREFIX = "model_"


def _flatten(observation) -> np.ndarray:
    """Concatenates the (ordered) observation dict into `[o]` float32."""
    parts = [np.asarray(v, dtype=np.float64).reshape(-1)
             for v in observation.values()]
    if not parts:
        return np.zeros((0,), np.float32)
    return np.concatenate(parts).astype(np.float32)


DEFAULT_EPISODE_STEPS = 1000
MAX_RESCALED_BOUND = 1e6


class DMCEnv:
    """A stateful dm_control suite environment with flat observations.

    Args:
      domain: suite domain, e.g. "cheetah".
      task: task of that domain, e.g. "run".
      seed: seed of the task's `RandomState` (initial states, targets).
      time_limit: optional episode length in seconds (the task's default,
        usually 10 s = 1000 steps, if None).
      environment_kwargs: optional extra `control.Environment` arguments,
        e.g. `{"n_sub_steps": 2}`.
    """

    def __init__(self, domain: str, task: str, seed: int,
                 time_limit: Optional[float] = None,
                 environment_kwargs: Optional[Dict[str, Any]] = None):
        task_kwargs = {"random": seed}
        if time_limit is not None:
            task_kwargs["time_limit"] = time_limit
        self._env = suite.load(domain, task, task_kwargs=task_kwargs,
                               environment_kwargs=environment_kwargs)
        self._name = f"dmc:{domain}-{task}"
        step_limit = self._env._step_limit
        if not math.isfinite(step_limit):
            # Tasks without a time limit (lqr) get the suite's usual 1000
            # control steps, so that episodes and evaluations end.
            task_kwargs["time_limit"] = (DEFAULT_EPISODE_STEPS
                                         * self._env.control_timestep())
            self._env = suite.load(domain, task, task_kwargs=task_kwargs,
                                   environment_kwargs=environment_kwargs)
            step_limit = self._env._step_limit
        # dm_control ends the episode at the first step count >= the limit.
        self._max_episode_steps = int(math.ceil(step_limit))

        spec = self._env.action_spec()
        self._action_size = int(np.prod(spec.shape))
        self._low = np.broadcast_to(
            np.asarray(spec.minimum, np.float64), spec.shape).copy()
        self._high = np.broadcast_to(
            np.asarray(spec.maximum, np.float64), spec.shape).copy()
        # Effectively unbounded dimensions (lqr: +-1e10) are not rescaled.
        unbounded = ~(np.isfinite(self._low) & np.isfinite(self._high)
                      & (self._high - self._low <= 2 * MAX_RESCALED_BOUND))
        self._low[unbounded], self._high[unbounded] = -1.0, 1.0
        self._observation_size = int(sum(
            int(np.prod(s.shape))
            for s in self._env.observation_spec().values()))

        self._observation = np.zeros((self._observation_size,), np.float32)
        self._in_episode = False
        self._ever_reset = False

    @property
    def name(self) -> str:
        """The registry name, e.g. "dmc:cheetah-run"."""
        return self._name

    @property
    def observation_size(self) -> int:
        """Length `o` of the flat observation."""
        return self._observation_size

    @property
    def action_size(self) -> int:
        """Length `a` of the action."""
        return self._action_size

    @property
    def max_episode_steps(self) -> int:
        """Steps until the time limit (1000 for the standard suite)."""
        return self._max_episode_steps

    @property
    def action_bounds(self):
        """`(low [a], high [a])` float64, the task's native action bounds."""
        return self._low.copy(), self._high.copy()

    @property
    def physics(self):
        """The underlying `dm_control` physics (for inspection)."""
        return self._env.physics

    def scale_action(self, action) -> np.ndarray:
        """Maps `[a]` actions in `[-1, 1]` (clipped) to `[a]` float64 controls
        in the task's bounds."""
        action = checked_action(self._name, action, self._action_size)
        return self._low + (action + 1.0) * 0.5 * (self._high - self._low)

    def reset(self) -> np.ndarray:
        """Starts an episode; returns the first observation `[o]` float32."""
        time_step = self._env.reset()
        self._ever_reset = True
        self._in_episode = True
        self._observation = _flatten(time_step.observation)
        return self._observation.copy()

    def step(self, action) -> StepResult:
        """Applies `action` `[a]` in `[-1, 1]`; returns a `StepResult`.

        Raises:
          RuntimeError: if no episode is in progress (call `reset()`).
        """
        check_in_episode(self._name, self._in_episode)
        time_step = self._env.step(self.scale_action(action))
        observation = _flatten(time_step.observation)
        reward = 0.0 if time_step.reward is None else float(time_step.reward)
        terminated = truncated = False
        discount = 1.0
        if time_step.last():
            self._in_episode = False
            if float(time_step.discount) == 0.0:
                terminated, discount = True, 0.0
            else:
                truncated = True
        self._observation = observation
        return StepResult(observation.copy(), reward, discount, terminated,
                          truncated)

    def seed(self, seed: int) -> None:
        """Reseeds the task's `RandomState` in place (effective at the next
        `reset()`)."""
        self._env.task.random.seed(seed)

    def get_state(self) -> Dict[str, np.ndarray]:
        """Returns everything needed to continue bit-for-bit.

        Values are numpy arrays only (0-d for scalars): the MuJoCo integration
        state, the run-time-mutable model fields, dm_control's step counter
        and reset flag, the task's `RandomState`, the current observation and
        whether an episode is in progress.
        """
        physics = self._env.physics
        model, data = physics.model, physics.data
        mj_state = np.empty(
            (mujoco.mj_stateSize(model.ptr, _STATE_SIG),), np.float64)
        mujoco.mj_getState(model.ptr, data.ptr, mj_state, _STATE_SIG)
        kind, key, pos, has_gauss, cached = self._env.task.random.get_state()
        if kind != "MT19937":
            raise ValueError(f"Unsupported RandomState kind {kind!r}.")
        state = {
            "mj_state": mj_state,
            "step_count": np.asarray(self._env._step_count, np.int64),
            "reset_next_step": np.asarray(self._env._reset_next_step,
                                          np.bool_),
            "rng_key": np.asarray(key, np.uint32).copy(),
            "rng_pos": np.asarray(pos, np.int64),
            "rng_has_gauss": np.asarray(has_gauss, np.int64),
            "rng_cached_gaussian": np.asarray(cached, np.float64),
            "observation": self._observation.copy(),
            "in_episode": np.asarray(self._in_episode, np.bool_),
        }
        for field in self._model_fields():
            state[_MODEL_PREFIX + field] = np.array(getattr(model, field))
        return state

    def _model_fields(self):
        """The non-empty run-time-mutable model fields of this task."""
        model = self._env.physics.model
        return tuple(f for f in _MUTABLE_MODEL_FIELDS
                     if getattr(model, f).size > 0)

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restores a `get_state()` dict, from this or another instance of
        the same task (any seed).

        Raises:
          ValueError: if keys or shapes do not match this task.
        """
        expected = set(self.get_state())
        missing = sorted(expected - set(state))
        extra = sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(f"{self._name}: state keys do not match; "
                             f"missing {missing}, unexpected {extra}.")
        physics = self._env.physics
        model, data = physics.model, physics.data
        mj_state = np.asarray(state["mj_state"], np.float64)
        size = mujoco.mj_stateSize(model.ptr, _STATE_SIG)
        if mj_state.shape != (size,):
            raise ValueError(
                f"{self._name}: mj_state has shape {mj_state.shape}, expected "
                f"({size},); was it saved from another task?")
        observation = np.asarray(state["observation"], np.float32)
        if observation.shape != (self._observation_size,):
            raise ValueError(
                f"{self._name}: observation has shape {observation.shape}, "
                f"expected ({self._observation_size},).")
        model_fields = self._model_fields()
        for field in model_fields:
            value = np.asarray(state[_MODEL_PREFIX + field])
            if value.shape != getattr(model, field).shape:
                raise ValueError(
                    f"{self._name}: model field {field} has shape "
                    f"{value.shape}, expected {getattr(model, field).shape}.")

        if not self._ever_reset:
            # Runs the task's per-episode Python set-up once (e.g. dog's
            # stand height); everything it randomises is overwritten below.
            self._env.reset()
            self._ever_reset = True
        hfield_changed = "hfield_data" in model_fields and not np.array_equal(
            model.hfield_data, state[_MODEL_PREFIX + "hfield_data"])
        for field in model_fields:
            getattr(model, field)[...] = state[_MODEL_PREFIX + field]
        mujoco.mj_setState(model.ptr, data.ptr, mj_state, _STATE_SIG)
        # dm_control's (legacy) step assumes mj_step1 has run for the current
        # state; mj_forward recomputes every derived quantity. It leaves the
        # integration state (incl. the solver warm start) untouched.
        physics.forward()
        # Re-upload changed terrain to an existing rendering context (the
        # `contexts` property would create one, hence the private field).
        contexts = getattr(physics, "_contexts", None)
        if hfield_changed and contexts:
            with contexts.gl.make_current() as ctx:
                for i in range(model.nhfield):
                    ctx.call(mujoco.mjr_uploadHField, model.ptr,
                             contexts.mujoco.ptr, i)

        self._env.task.random.set_state((
            "MT19937", np.asarray(state["rng_key"], np.uint32),
            int(state["rng_pos"]), int(state["rng_has_gauss"]),
            float(state["rng_cached_gaussian"])))
        self._env._step_count = int(state["step_count"])
        self._env._reset_next_step = bool(state["reset_next_step"])
        self._observation = observation.copy()
        self._in_episode = bool(state["in_episode"])

    def render(self, height: int = 240, width: int = 320,
               camera_id: int = 0) -> np.ndarray:
        """Returns an `[height, width, 3]` uint8 RGB frame."""
        return self._env.physics.render(height=height, width=width,
                                        camera_id=camera_id)

"""The two-goal PointMaze of DQS Sec. 5.2: a stateful env for the online loop.

`MazeEnv` wraps gymnasium-robotics' `PointMaze_Medium_Diverse_G-v3` built
with the authors' map (`maze_geometry.MAP_ROWS`) and sparse reward, with the
interface of `DMCEnv` (reset / step / seed / get_state / set_state):

- observation `[x, y, vx, vy]` float32; the goal is not observed;
- action `[2]` in `[-1, 1]` (a force; clipped);
- reward 1.0 within 0.45 of the goal, else 0.0; the goal is drawn at each
  reset among the two goal cells, plus uniform noise of +-0.25 per axis;
- episodes of 600 steps (dt = 0.01 s), truncated with discount 1.

By default the task is continuing, as in the authors' factory (the
library's default): no termination, reward 1 on every step inside the goal
disc. `terminate_at_goal=True` (registry name `maze:two-goal-terminate`)
ends the episode with discount 0 at the first step inside it.

`get_state` / `set_state` are exact: MuJoCo's integration state (including
the constraint solver's warm start, which matters when the ball presses on
a wall), the goal, the env's random generator and the step counter.
"""

import contextlib
import functools
import io
import os
import shutil
import sys
import tempfile
import threading
import types
from typing import Dict

# Headless rendering; must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

with contextlib.redirect_stderr(io.StringIO()) as _notice:
    import gymnasium as gym  # noqa: E402
    import gymnasium_robotics  # noqa: E402
for _line in _notice.getvalue().splitlines():
    # gymnasium-robotics 1.4.2 prints a notice about the Adroit envs' rewards
    # on import; anything else is passed on.
    if "AdroitHand" not in _line:
        print(_line, file=sys.stderr)
from gymnasium.utils import seeding  # noqa: E402
from gymnasium_robotics.envs.maze import maze_v4  # noqa: E402

from dqs_jax.envs.base import (  # noqa: E402
    StepResult, check_in_episode, checked_action)
from dqs_jax.envs.maze_geometry import (  # noqa: E402,F401  (re-exported)
    GOAL_CELLS, GOAL_CENTRES, GOAL_NAMES, GOAL_RADIUS, MAP_ROWS, START_CELL,
    WALLS, cell_to_xy, first_goal, goal_entry_step, maze_map, top_left_route,
    xy_to_cell)

gym.register_envs(gymnasium_robotics)

GYM_ID = "PointMaze_Medium_Diverse_G-v3"
EPISODE_STEPS = 600  # The id's `max_episode_steps`.
_STATE_SIG = mujoco.mjtState.mjSTATE_INTEGRATION
_MAKE_LOCK = threading.Lock()


@contextlib.contextmanager
def _private_xml_dir():
    """gymnasium-robotics' `Maze.make_maze` writes each maze's XML next to a
    `tempfile.TemporaryDirectory()`, i.e. into the system temp dir, and never
    deletes it. Inside this context (one thread at a time) that module's
    `tempfile` makes its folders in a private temp dir instead, removed on
    exit (MuJoCo has read the file by then)."""
    private = tempfile.mkdtemp(prefix="dqs_jax_maze_")
    shim = types.SimpleNamespace(TemporaryDirectory=functools.partial(
        tempfile.TemporaryDirectory, dir=private))
    with _MAKE_LOCK:
        original, maze_v4.tempfile = maze_v4.tempfile, shim
        try:
            yield
        finally:
            maze_v4.tempfile = original
            shutil.rmtree(private, ignore_errors=True)


def make_gym_env(terminate_at_goal: bool = False, **kwargs):
    """The authors' env as gymnasium-robotics builds it (wrappers included,
    600-step `TimeLimit`), without leaving its XML file behind.

    `**kwargs` go to `gym.make` (e.g. `render_mode`, `max_episode_steps`).
    """
    with _private_xml_dir():
        return gym.make(GYM_ID, maze_map=maze_map(), reward_type="sparse",
                        continuing_task=not terminate_at_goal,
                        reset_target=False, **kwargs)


def _words(value: int, n: int = 4) -> np.ndarray:
    """A non-negative int below 2**(32 n) as `[n]` uint32, low word first."""
    return np.array([(value >> (32 * i)) & 0xFFFFFFFF for i in range(n)],
                    np.uint32)


def _from_words(words) -> int:
    return sum(int(w) << (32 * i) for i, w in enumerate(np.asarray(words)))


class MazeEnv:
    """The two-goal PointMaze with flat observations and exact save/restore.

    Args:
      seed: seed of the env's random generator (goals and start noise), as
        `reset(seed=seed)` would seed it; must be >= 0.
      terminate_at_goal: end the episode (discount 0) on reaching the goal;
        default False: continuing, as the authors' env.
      max_episode_steps: episode length (600, the library's, by default).
    """

    def __init__(self, seed: int, terminate_at_goal: bool = False,
                 max_episode_steps: int = EPISODE_STEPS):
        if max_episode_steps < 1:
            raise ValueError(
                f"max_episode_steps must be >= 1, got {max_episode_steps}.")
        self._terminate = bool(terminate_at_goal)
        self._name = "maze:two-goal" + ("-terminate" if self._terminate
                                        else "")
        self._max_episode_steps = int(max_episode_steps)
        self._env = make_gym_env(self._terminate).unwrapped
        self._model = self._env.point_env.model
        self._data = self._env.point_env.data
        self._renderer = None
        self._env.goal = np.zeros(2)  # Set by reset() or set_state().
        self.seed(seed)
        self._step_count = 0
        self._observation = np.zeros((4,), np.float32)
        self._in_episode = False

    @property
    def name(self) -> str:
        """The registry name, "maze:two-goal" or "maze:two-goal-terminate"."""
        return self._name

    @property
    def observation_size(self) -> int:
        """4: `[x, y, vx, vy]`."""
        return 4

    @property
    def action_size(self) -> int:
        """2: the force along x and y."""
        return 2

    @property
    def max_episode_steps(self) -> int:
        """Steps until the time limit (600 by default)."""
        return self._max_episode_steps

    @property
    def terminate_at_goal(self) -> bool:
        """Whether reaching the goal ends the episode."""
        return self._terminate

    @property
    def action_bounds(self):
        """`(low [2], high [2])` float64: the native bounds are `[-1, 1]`."""
        return -np.ones(2), np.ones(2)

    @property
    def goal(self) -> np.ndarray:
        """`[2]` float64 `(x, y)` of this episode's (unobserved) goal."""
        return np.array(self._env.goal, np.float64)

    @property
    def unwrapped(self):
        """The gymnasium-robotics `PointMazeEnv` (for inspection)."""
        return self._env

    def scale_action(self, action) -> np.ndarray:
        """Checks `[2]` actions and clips them to `[-1, 1]` (float64)."""
        return checked_action(self._name, action, 2)

    def reset(self) -> np.ndarray:
        """Starts an episode; returns the first observation `[4]` float32."""
        obs, _ = self._env.reset()
        self._step_count = 0
        self._in_episode = True
        self._observation = obs["observation"].astype(np.float32)
        return self._observation.copy()

    def step(self, action) -> StepResult:
        """Applies `action` `[2]` in `[-1, 1]`; returns a `StepResult`.

        Raises:
          RuntimeError: if no episode is in progress (call `reset()`).
        """
        check_in_episode(self._name, self._in_episode)
        obs, reward, terminated, _, _ = self._env.step(
            self.scale_action(action))
        self._step_count += 1
        terminated = bool(terminated)
        truncated = (not terminated
                     and self._step_count >= self._max_episode_steps)
        self._in_episode = not (terminated or truncated)
        self._observation = obs["observation"].astype(np.float32)
        return StepResult(self._observation.copy(), float(reward),
                          0.0 if terminated else 1.0, terminated, truncated)

    def place_ball(self, position, velocity=(0.0, 0.0)) -> np.ndarray:
        """Moves the ball to `position [2]` with `velocity [2]` mid-episode
        (for tests and illustrations); returns the observation `[4]`.

        Raises:
          RuntimeError: if no episode is in progress.
        """
        if not self._in_episode:
            raise RuntimeError(f"{self._name}: place_ball() needs an episode "
                               "in progress; call reset() first.")
        qpos = np.asarray(position, np.float64).reshape(2)
        qvel = np.asarray(velocity, np.float64).reshape(2)
        self._env.point_env.set_state(qpos, qvel)
        self._observation = np.concatenate([qpos, qvel]).astype(np.float32)
        return self._observation.copy()

    def seed(self, seed: int) -> None:
        """Reseeds the env's generator in place (effective at the next
        `reset()`), as gymnasium's `reset(seed=seed)` does."""
        if int(seed) < 0:
            raise ValueError(f"{self._name}: seed must be >= 0, got {seed}.")
        self._env.np_random, _ = seeding.np_random(int(seed))

    def get_state(self) -> Dict[str, np.ndarray]:
        """Returns everything needed to continue bit-for-bit.

        Values are non-empty numpy arrays (0-d for scalars): the MuJoCo
        integration state `[23]` (time, qpos, qvel, the solver's warm start,
        ctrl, applied forces), the goal `[2]`, the PCG64 generator state as
        uint32 words, the step counter, the current observation `[4]` and
        whether an episode is in progress.
        """
        mj_state = np.empty((mujoco.mj_stateSize(self._model, _STATE_SIG),),
                            np.float64)
        mujoco.mj_getState(self._model, self._data, mj_state, _STATE_SIG)
        rng = self._env.np_random.bit_generator.state
        if rng["bit_generator"] != "PCG64":
            raise ValueError(f"{self._name}: unsupported bit generator "
                             f"{rng['bit_generator']!r}.")
        return {
            "mj_state": mj_state,
            "goal": np.array(self._env.goal, np.float64),
            "rng_state": _words(rng["state"]["state"]),
            "rng_inc": _words(rng["state"]["inc"]),
            "rng_has_uint32": np.asarray(rng["has_uint32"], np.int64),
            "rng_uinteger": np.asarray(rng["uinteger"], np.int64),
            "step_count": np.asarray(self._step_count, np.int64),
            "observation": self._observation.copy(),
            "in_episode": np.asarray(self._in_episode, np.bool_),
        }

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restores a `get_state()` dict, from this or another instance
        (any seed, reset or not).

        Raises:
          ValueError: if keys or shapes do not match.
        """
        expected = self.get_state()
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"{self._name}: state keys do not match; "
                             f"missing {missing}, unexpected {extra}.")
        for key, value in expected.items():
            if np.shape(state[key]) != value.shape:
                raise ValueError(
                    f"{self._name}: state[{key!r}] has shape "
                    f"{np.shape(state[key])}, expected {value.shape}.")
        mujoco.mj_setState(self._model, self._data,
                           np.asarray(state["mj_state"], np.float64),
                           _STATE_SIG)
        # Recomputes derived quantities; the integration state (warm start
        # included) is left as restored.
        mujoco.mj_forward(self._model, self._data)
        self._env.goal = np.array(state["goal"], np.float64)
        self._env.update_target_site_pos()
        self._env.np_random.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": _from_words(state["rng_state"]),
                      "inc": _from_words(state["rng_inc"])},
            "has_uint32": int(state["rng_has_uint32"]),
            "uinteger": int(state["rng_uinteger"])}
        self._step_count = int(state["step_count"])
        self._observation = np.array(state["observation"], np.float32)
        self._in_episode = bool(state["in_episode"])

    def render(self, height: int = 480, width: int = 480) -> np.ndarray:
        """Returns a top-down `[height, width, 3]` uint8 RGB frame of the
        whole maze (x to the right, y up)."""
        if self._renderer is None or (self._renderer.height,
                                      self._renderer.width) != (height, width):
            self.close()
            self._renderer = mujoco.Renderer(self._model, height, width)
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = 0.0
        camera.distance, camera.elevation, camera.azimuth = 11.0, -90.0, 90.0
        self._renderer.update_scene(self._data, camera)
        return self._renderer.render()

    def close(self) -> None:
        """Releases the renderer (if any)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

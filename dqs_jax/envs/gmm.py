"""The paper's 2-D GMM-40 navigation environment (docs/algorithm.md
§10A; the paper's Sec. 4.2, Fig. 2), in pure JAX.

A point moves in the box `[-BOX, BOX]^2`. Each step the action `[2]` is
normalised to unit length and added to the position, which is then clipped
to the box. The reward is the log-density of the goal mixture at the new
position: 40 equal-weight isotropic Gaussians of std `MODE_STD`, with the
means packaged in `dqs_jax/data/gmm40_means.csv`. An episode lasts
`EPISODE_LENGTH` steps and ends in true termination (discount 0 on its last
transition). The position is the observation.

Every function is pure and works under `jax.jit`, `jax.vmap` and
`jax.lax.scan`. `step` does not reset by itself: call `reset` when `done`.
"""

import functools
import importlib.resources
import io
from typing import NamedTuple, Tuple

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax.envs import functional
from dqs_jax.mixtures import isotropic_gmm
from dqs_jax.types import PRNGKey

BOX = 50.0  # Positions lie in [-BOX, BOX]^2.
EPISODE_LENGTH = 100
MODE_STD = 1.0
NUM_MODES = 40
OBS_DIM = 2
ACT_DIM = 2
_MIN_ACTION_NORM = 1e-6  # Guards the normalisation of a zero action.


@functools.lru_cache(maxsize=None)
def _means_numpy() -> np.ndarray:
    text = (importlib.resources.files("dqs_jax")
            .joinpath("data", "gmm40_means.csv").read_text())
    lines = text.splitlines()
    if lines[0].strip() != "x,y":
        raise ValueError(f"gmm40_means.csv: expected header 'x,y', got "
                         f"{lines[0]!r}.")
    means = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1,
                       dtype=np.float32)
    if means.shape != (NUM_MODES, 2):
        raise ValueError(f"gmm40_means.csv: expected {NUM_MODES} rows of 2 "
                         f"values, got shape {means.shape}.")
    means.setflags(write=False)
    return means


def gmm_means() -> np.ndarray:
    """The 40 mixture means, `[40, 2]` float32 (a read-only numpy array)."""
    return _means_numpy()


def gmm_distribution() -> distrax.MixtureSameFamily:
    """The goal mixture: equal weights, `N(mean_m, MODE_STD^2 I)`, 40 modes."""
    return isotropic_gmm(gmm_means(), MODE_STD)


def log_density(points: jax.Array) -> jax.Array:
    """Mixture log-density: `points [..., 2]` -> `[...]` float32."""
    points = jnp.asarray(points, jnp.float32)
    chex.assert_axis_dimension(points, -1, 2)
    return gmm_distribution().log_prob(points)


def sample_gmm(key: PRNGKey, n: int) -> jax.Array:
    """`n` (static) ground-truth samples of the mixture: `[n, 2]` float32."""
    return gmm_distribution().sample(seed=key, sample_shape=(n,))


class GMMEnvState(NamedTuple):
    """Environment state.

    Attributes:
      position: `[2]` float32, in `[-BOX, BOX]^2`.
      t: int32 scalar, steps taken in the current episode.
    """

    position: jax.Array
    t: jax.Array


def reset(key: PRNGKey) -> Tuple[GMMEnvState, jax.Array]:
    """Start an episode at a position uniform in the box.

    Args:
      key: PRNG key.

    Returns:
      `(env_state, obs)` with `t = 0` and `obs = position`, `[2]` float32.
    """
    position = jax.random.uniform(key, (OBS_DIM,), jnp.float32, -BOX, BOX)
    return GMMEnvState(position, jnp.zeros((), jnp.int32)), position


def step(env_state: GMMEnvState, action: jax.Array
         ) -> Tuple[GMMEnvState, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One unit-length move.

    `s' = clip(s + a / max(||a||, 1e-6), -BOX, BOX)`, reward `log p_GMM(s')`.

    Args:
      env_state: current state.
      action: `[2]`, any length (only its direction matters; zero stays put).

    Returns:
      `(env_state, obs [2], reward, discount, done)`: reward and discount
      float32 scalars, done a bool scalar, true once `t' >= EPISODE_LENGTH`;
      discount is 0.0 when done (true termination), else 1.0.
    """
    chex.assert_shape(action, (ACT_DIM,))
    chex.assert_shape(env_state.position, (OBS_DIM,))
    action = jnp.asarray(action, jnp.float32)
    norm = jnp.maximum(jnp.linalg.norm(action), _MIN_ACTION_NORM)
    position = jnp.clip(env_state.position + action / norm, -BOX, BOX)
    t = env_state.t + 1
    done = t >= EPISODE_LENGTH
    reward = log_density(position)
    discount = jnp.where(done, 0.0, 1.0).astype(jnp.float32)
    return GMMEnvState(position, t), position, reward, discount, done


def environment(observation_scale: float = 1.0) -> functional.JaxEnv:
    """This environment as a `JaxEnv` for `dqs_jax.loop`; the agent observes
    `observation_scale * position` (1: the paper's raw position)."""
    return functional.scale_observations(
        functional.JaxEnv(reset, step, OBS_DIM, ACT_DIM, EPISODE_LENGTH),
        observation_scale)

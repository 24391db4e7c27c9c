"""Running mean / variance statistics as a pytree (input normalisation).

`RunningStats` folds batches into running moments with the parallel
combination of Chan, Golub & LeVeque (1979): for counts `n_a, n_b`,
`n = n_a + n_b`, `w = n_b / n` and `delta = mean_b - mean_a`,

    mean = mean_a + w * delta,
    var  = (1 - w) * var_a + w * var_b + w * (1 - w) * delta^2,

which is the population variance (`np.var`, ddof 0) of all the data seen,
exactly, without sums of squares. The batch moments are two-pass
(`jnp.mean`, `jnp.var`), so it stays accurate in float32 for data far from
0; pass `dtype=jnp.float64` (with x64 enabled) for float64 statistics.

Unlike gym's `RunningMeanStd` (pseudo-count 1e-4 of N(0, 1)), `init` holds
count 0: after the first batch the statistics are that batch's exactly. Before
any data (count 0) `mean = 0`, `var = 1`, so `normalize` is the identity up
to `eps`.

Also here: the discounted-return trace whose running standard deviation
scales rewards (gym's `NormalizeReward`, as used by CleanRL's PPO).
"""

from typing import Optional, Sequence, Tuple, Union

import chex
import flax.struct
import jax
import jax.numpy as jnp

EPS = 1e-8  # Added to the variance before the square root (gym's epsilon).


@flax.struct.dataclass
class RunningStats:
    """Moments of all the data folded in so far.

    Attributes:
      mean: `[*shape]`.
      var: `[*shape]`, population variance (ddof 0); 1 before any data.
      count: scalar, the number of rows folded in (float, `mean`'s dtype).
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @property
    def std(self) -> jax.Array:
        """`sqrt(var + EPS)`, the scale `normalize` divides by."""
        return jnp.sqrt(self.var + EPS)


def init(shape: Union[int, Sequence[int]], dtype=jnp.float32) -> RunningStats:
    """Empty statistics of rows of shape `shape` (an int `o` means `[o]`;
    `()` for scalars): `mean = 0`, `var = 1`, `count = 0`."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return RunningStats(mean=jnp.zeros(shape, dtype),
                        var=jnp.ones(shape, dtype),
                        count=jnp.zeros((), dtype))


def combine(stats: RunningStats, batch_mean: jax.Array, batch_var: jax.Array,
            batch_count) -> RunningStats:
    """Folds moments of `batch_count >= 1` rows (mean, population variance,
    each `[*shape]`) into `stats` (the parallel formula above)."""
    chex.assert_equal_shape([stats.mean, batch_mean, batch_var])
    dtype = stats.mean.dtype
    batch_count = jnp.asarray(batch_count, dtype)
    count = stats.count + batch_count
    w = batch_count / count
    delta = batch_mean.astype(dtype) - stats.mean
    mean = stats.mean + w * delta
    var = ((1 - w) * stats.var + w * batch_var.astype(dtype)
           + w * (1 - w) * jnp.square(delta))
    return RunningStats(mean=mean, var=var, count=count)


def update(stats: RunningStats, x: jax.Array) -> RunningStats:
    """`stats` with the `N >= 1` rows of `x [N, *shape]` folded in.

    Returns:
      Statistics whose `mean`/`var` are `np.mean`/`np.var` (axis 0) of all
      rows folded in so far, and `count` their number.
    """
    chex.assert_rank(x, stats.mean.ndim + 1)
    chex.assert_shape(x, (None,) + stats.mean.shape)
    if x.shape[0] < 1:
        raise ValueError("normalizer.update needs at least one row.")
    x = x.astype(stats.mean.dtype)
    return combine(stats, jnp.mean(x, axis=0), jnp.var(x, axis=0), x.shape[0])


def normalize(stats: RunningStats, x: jax.Array,
              clip: Optional[float] = None) -> jax.Array:
    """`(x - mean) / sqrt(var + EPS)`, clipped to `[-clip, clip]` if given.

    Args:
      stats: the statistics (not changed).
      x: `[..., *shape]`.
      clip: optional bound (gym/CleanRL clip normalised observations at 10).

    Returns:
      `[..., *shape]` in `x`'s dtype.
    """
    chex.assert_shape(x, (...,) + stats.mean.shape)
    out = (x - stats.mean) / stats.std
    if clip is not None:
        out = jnp.clip(out, -clip, clip)
    return out.astype(x.dtype)


def scale(stats: RunningStats, x: jax.Array,
          clip: Optional[float] = None) -> jax.Array:
    """`x / sqrt(var + EPS)` (no centring, as gym's reward scaling), clipped to
    `[-clip, clip]` if given; `x [..., *shape]`."""
    chex.assert_shape(x, (...,) + stats.mean.shape)
    out = x / stats.std
    if clip is not None:
        out = jnp.clip(out, -clip, clip)
    return out.astype(x.dtype)


def discounted_returns(running_return: jax.Array, rewards: jax.Array,
                       dones: jax.Array, gamma: float
                       ) -> Tuple[jax.Array, jax.Array]:
    """The running discounted return `G_t = r_t + gamma * G_{t-1}`, restarted
    (`G_t` then 0) after every step with `dones` (termination or truncation):
    the quantity whose running std scales rewards (gym 0.23's
    `NormalizeReward`, used by CleanRL's original PPO release).

    Args:
      running_return: scalar `G_{-1}` carried over from earlier steps.
      rewards: `[T]` raw rewards.
      dones: `[T]` 1 (or True) where the episode ends at this step.
      gamma: the discount.

    Returns:
      `(G after the last step, with its reset applied) scalar, G [T])`.
    """
    chex.assert_rank([running_return, rewards, dones], [0, 1, 1])
    chex.assert_equal_shape([rewards, dones])
    keep = 1.0 - dones.astype(rewards.dtype)

    def body(carry, x):
        reward, k = x
        ret = reward + gamma * carry
        return ret * k, ret

    return jax.lax.scan(body, running_return.astype(rewards.dtype),
                        (rewards, keep))

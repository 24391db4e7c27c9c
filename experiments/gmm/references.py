"""Reference scores of GMM-40 (`experiments.gmm`'s results.json
`baselines`), on the same metric as the methods: what a fresh mixture
sample, uniform points, and two fixed policies reach.

- `gradient_ascent`: each step along the exact gradient of the mixture's
  log-density (unit length, as the env executes), from the env's uniform
  starts: every start climbs to the mode of its basin and stays there, the
  behaviour of a critic that resolves the basins;
- `random_directions`: uniformly random unit steps (a random walk).
"""

import jax
import jax.numpy as jnp

from experiments.gmm import metrics
from dqs_jax.envs import gmm


def policy_final_positions(key: jax.Array, num_episodes: int,
                           gradient: bool) -> jax.Array:
    """`[N, 2]` final positions of `num_episodes` episodes of the env from
    its uniform starts, stepping along `grad log p` (`gradient=True`) or in
    uniformly random directions."""
    reset_key, step_key = jax.random.split(key)
    states, _ = jax.vmap(gmm.reset)(jax.random.split(reset_key,
                                                     num_episodes))
    grad = jax.vmap(jax.grad(gmm.log_density))

    def body(states, k):
        if gradient:
            actions = grad(states.position)
        else:
            actions = jax.random.normal(k, (num_episodes, 2))
        states, *_ = jax.vmap(gmm.step)(states, actions)
        return states, None

    states, _ = jax.lax.scan(body, states, jax.random.split(
        step_key, gmm.EPISODE_LENGTH))
    return states.position


def reference_scores(key: jax.Array, ground_truth: jax.Array,
                     bandwidth) -> dict:
    """Squared MMD to `ground_truth [N, 2]` (and modes covered) of a fresh
    mixture sample, uniform points in the box and the two policies above,
    N each."""
    n = ground_truth.shape[0]
    means = jnp.asarray(gmm.gmm_means())
    reference_key, uniform_key = jax.random.split(key)
    policy_key = jax.random.fold_in(key, 1)

    def score(points, with_coverage=True):
        out = {"mmd": float(metrics.mmd(points, ground_truth, bandwidth))}
        if with_coverage:
            out["coverage"] = int(metrics.mode_coverage(points, means,
                                                        gmm.MODE_STD))
        return out

    run = jax.jit(policy_final_positions, static_argnums=(1, 2))
    return {
        "ground_truth_resample": {
            "mmd": score(gmm.sample_gmm(reference_key, n))["mmd"],
            "coverage": int(metrics.mode_coverage(ground_truth, means,
                                                  gmm.MODE_STD))},
        "uniform_in_box": score(jax.random.uniform(
            uniform_key, (n, 2), minval=-gmm.BOX, maxval=gmm.BOX), False),
        "gradient_ascent": score(run(jax.random.fold_in(policy_key, 0), n,
                                     True)),
        "random_directions": score(run(jax.random.fold_in(policy_key, 1), n,
                                       False)),
    }

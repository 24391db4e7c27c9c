r"""How well can DQS's critic network resolve the GMM-40 direction
preference? A supervised check outside RL (issue 13's diagnosis): regress
the one-step reward `r(s, a) = log p(clip(s + a / |a|))` with the critic
architecture (`networks.Critic`, ReLU, the `DQSConfig` default
initialisation) on uniform states and actions, then compare its argmax
direction with the exact one at random states.

    python -m experiments.gmm_critic_fit --steps=8000 --width=128

Prints the final loss and the median angle between the network's and the
exact best direction (72 directions, 2000 states in `[-45, 45]^2`).
"""

from absl import app, flags
import jax
import numpy as np

from dqs_jax.dqs_config import DQSConfig
from experiments.reward_regression import direction_errors, fit, network

_STEPS = flags.DEFINE_integer("steps", 8000, "Adam steps.")
_WIDTH = flags.DEFINE_integer("width", 128, "Units in each of 2 layers.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_LR = flags.DEFINE_float("lr", DQSConfig().critic_lr, "Adam learning rate.")
_SCALE = flags.DEFINE_float("observation_scale", 1.0,
                            "The network sees the position times this.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if min(_STEPS.value, _WIDTH.value, _BATCH.value) < 1 or not (
            _LR.value > 0 and _SCALE.value > 0):
        raise app.UsageError("--steps, --width, --batch_size must be >= 1; "
                             "--lr and --observation_scale > 0.")
    fit_key, eval_key = jax.random.split(jax.random.PRNGKey(_SEED.value))
    params, loss = jax.jit(fit, static_argnums=(1, 2, 3, 4, 5))(
        fit_key, _STEPS.value, _WIDTH.value, _BATCH.value, _LR.value,
        _SCALE.value)
    net, scale = network(_WIDTH.value), _SCALE.value
    q_fn = lambda s, a: net.apply(params, s * scale, a)  # noqa: E731
    errors = np.degrees(np.asarray(direction_errors(q_fn, eval_key)))
    print(f"steps {_STEPS.value}, width {_WIDTH.value}, observation scale "
          f"{_SCALE.value}: final loss {float(loss):.1f}; best-direction "
          f"error median {np.median(errors):.0f} deg, within 45 deg "
          f"{np.mean(errors < 45):.0%}")


if __name__ == "__main__":
    app.run(main)

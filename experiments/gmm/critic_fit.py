r"""How well can DQS's critic network resolve the GMM-40 direction
preference? A supervised check outside RL (the GMM diagnosis, docs/results/gmm.md): regress
the one-step reward `r(s, a) = log p(clip(s + a / |a|))` with the critic
architecture (`networks.Critic`, ReLU, the `DQSConfig` default
initialisation) on uniform states and actions, then compare its argmax
direction with the exact one at random states.

    python -m experiments.gmm.critic_fit --steps=8000 --width=128

Prints the final loss and the median angle between the network's and the
exact best direction (72 directions, 2000 states in `[-45, 45]^2`).
"""

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.gmm import direction_density as dd
from dqs_jax.dqs_config import DQSConfig
from dqs_jax.envs import gmm
from dqs_jax.networks import Critic


def one_step_reward(states: jax.Array, actions: jax.Array) -> jax.Array:
    """`[N, 2], [N, 2] -> [N]`: the env's reward for that step (`gmm.step`
    from those positions)."""
    env_states = gmm.GMMEnvState(states, jnp.zeros(states.shape[:1],
                                                   jnp.int32))
    return jax.vmap(gmm.step)(env_states, actions)[2]


def network(width: int) -> Critic:
    """The critic architecture of DQS, 2 layers of `width`."""
    return Critic((width, width), "relu", DQSConfig().kernel_init)


def fit(key: jax.Array, steps: int, width: int, batch_size: int, lr: float,
        scale: float):
    """`(params, final loss)` after `steps` Adam steps (static sizes)."""
    net = network(width)
    init_key, data_key = jax.random.split(key)
    params = net.init(init_key, jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    opt = optax.adam(lr)

    def loss_fn(params, k):
        s_key, a_key = jax.random.split(k)
        states = jax.random.uniform(s_key, (batch_size, 2), minval=-gmm.BOX,
                                    maxval=gmm.BOX)
        actions = jax.random.uniform(a_key, (batch_size, 2), minval=-1.0,
                                     maxval=1.0)
        q = net.apply(params, states * scale, actions)
        return jnp.mean((q - one_step_reward(states, actions)) ** 2)

    def step(carry, k):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, k)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(
        step, (params, opt.init(params)), jax.random.split(data_key, steps))
    return params, losses[-1]


def direction_errors(q_fn, key: jax.Array, num_states: int = 2000,
                     num_angles: int = 72) -> jax.Array:
    """`[num_states]` angles (radians) between `q_fn`'s argmax direction and
    the exact reward's, at uniform states 5 units inside the walls."""
    states = jax.random.uniform(key, (num_states, 2), minval=-gmm.BOX + 5,
                                maxval=gmm.BOX - 5)
    learned = dd.boltzmann_direction_density(q_fn, states, 1.0, num_angles)
    exact = dd.boltzmann_direction_density(one_step_reward, states, 1.0,
                                           num_angles)
    gap = (learned.angles[jnp.argmax(learned.q_values, -1)]
           - exact.angles[jnp.argmax(exact.q_values, -1)])
    return jnp.abs(jnp.angle(jnp.exp(1j * gap)))


FLAGS = flags.FLAGS


def _define_flags():
    """The binary's flags (defined only when it runs, so that importing
    this module defines none)."""
    flags.DEFINE_integer("steps", 8000, "Adam steps.")
    flags.DEFINE_integer("width", 128, "Units in each of 2 layers.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_float("lr", DQSConfig().critic_lr, "Adam learning rate.")
    flags.DEFINE_float("observation_scale", 1.0,
                       "The network sees the position times this.")
    flags.DEFINE_integer("seed", 0, "Seed.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if min(FLAGS.steps, FLAGS.width, FLAGS.batch_size) < 1 or not (
            FLAGS.lr > 0 and FLAGS.observation_scale > 0):
        raise app.UsageError("--steps, --width, --batch_size must be >= 1; "
                             "--lr and --observation_scale > 0.")
    fit_key, eval_key = jax.random.split(jax.random.PRNGKey(FLAGS.seed))
    params, loss = jax.jit(fit, static_argnums=(1, 2, 3, 4, 5))(
        fit_key, FLAGS.steps, FLAGS.width, FLAGS.batch_size, FLAGS.lr,
        FLAGS.observation_scale)
    net, scale = network(FLAGS.width), FLAGS.observation_scale
    q_fn = lambda s, a: net.apply(params, s * scale, a)  # noqa: E731
    errors = np.degrees(np.asarray(direction_errors(q_fn, eval_key)))
    print(f"steps {FLAGS.steps}, width {FLAGS.width}, observation scale "
          f"{FLAGS.observation_scale}: final loss {float(loss):.1f}; best-direction "
          f"error median {np.median(errors):.0f} deg, within 45 deg "
          f"{np.mean(errors < 45):.0%}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)

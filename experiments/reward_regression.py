"""The logic of `experiments.gmm_critic_fit` (importable without its
flags): regress GMM-40's one-step reward with DQS's critic network and
measure how well its argmax direction matches the exact one."""

import jax
import jax.numpy as jnp
import optax

from dqs_jax import direction_density as dd
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

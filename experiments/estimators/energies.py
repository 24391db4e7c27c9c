"""The two energies of `experiments.bench.estimator`: a closed-form
Gaussian mixture with an exact noised score, and a trained DQS critic."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agent as dqs_agent
from dqs_jax import training
from dqs_jax.training import files


def gmm_energy(dim: int, modes: int, std: float, seed: int):
    """`(value_and_grad, noised_score, sample)` of an isotropic mixture."""
    rng = np.random.default_rng(seed)
    means = jnp.asarray(rng.uniform(-0.8, 0.8, (modes, dim)), jnp.float32)

    def log_mix(x, var):
        sq = jnp.sum(jnp.square(x - means), -1)
        return jax.scipy.special.logsumexp(-0.5 * sq / var
                                           - 0.5 * dim * jnp.log(var))

    point_vg = jax.vmap(jax.vmap(jax.value_and_grad(
        lambda x: log_mix(x, std**2))))

    def value_and_grad(_, points):  # points [B, M, d]
        return point_vg(points)

    noised_score = jax.vmap(jax.grad(lambda x, h: log_mix(x, std**2 + h)))

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        idx = jax.random.randint(k1, (n,), 0, modes)
        return means[idx] + std * jax.random.normal(k2, (n, dim))

    return value_and_grad, noised_score, sample


def latest_checkpoint(workdir: str) -> str:
    root = os.path.join(workdir, "checkpoints")
    steps = sorted(int(s) for s in os.listdir(root) if s.isdigit()) if (
        os.path.isdir(root)) else []
    if not steps:
        raise FileNotFoundError(f"No checkpoint under {root}.")
    return os.path.join(root, str(steps[-1]), "default")


def train_critic(workdir: str, env: str, steps: int, seed: int) -> None:
    """A short DQS run on `env` with the paper's 2x256 critic (a 2x128
    score network, K = 16, 10 sampling steps, batch 128), resumed if
    `workdir` holds it already."""
    from dqs_jax import training
    config = dqs_agent.DQSConfig(hidden_dims=(128, 128),
                                 critic_hidden_dims=(256, 256),
                                 num_mc_samples=16, num_sampling_steps=10)
    print(f"Training a DQS critic: {steps} steps of {env} in {workdir} ...",
          flush=True)
    training.train(training.RunSettings(
        env=env, agent="dqs", seed=seed, max_steps=steps,
        seed_steps=min(1000, steps // 3), batch_size=128,
        replay_size=steps, eval_every=steps, eval_episodes=1,
        checkpoint_every=steps, log_interval=max(steps // 3, 1),
        workdir=workdir, agent_config=config))


def critic_energy(workdir: str):
    """`(params, config, temperature, observations, actions)`: the critic in
    `workdir`'s newest checkpoint, its run's config and temperature, and
    the replay's observations and actions."""
    import orbax.checkpoint as ocp
    flat = files.read_json(os.path.join(workdir, "config.json"))[
        "flat_config"]
    if flat.get("agent", "dqs") != "dqs":
        raise ValueError(f"{workdir} is a {flat['agent']} run; a DQS run is "
                         "needed.")
    config = training.agent_config_from_flat(flat)
    tree = ocp.StandardCheckpointer().restore(latest_checkpoint(workdir))
    params = jax.tree_util.tree_map(jnp.asarray,
                                    tree["agent"]["critic_params"])
    size = int(tree["replay"]["size"])
    temperature = float(config.temperature(int(tree["agent"]["step"])))
    replay = tree["replay"]
    return (params, config, temperature,
            np.asarray(replay["observations"][:size], np.float32),
            np.asarray(replay["actions"][:size], np.float32))

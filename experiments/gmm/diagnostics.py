r"""Diagnostics of the trained DQS agent on GMM-40 (docs/results/gmm.md), used by
`experiments.gmm`: the critic's log-partition map, and at three fixed probe
states its Boltzmann density over directions against the policy's sampled
directions (`dqs_jax.direction_density`; why the critic is evaluated at unit
actions is said there).

Probe states (`PROBES`), fixed from the mixture's means
(`dqs_jax/data/gmm40_means.csv`, row `k` = mode `k`):
- `near_mode`: 3 units west of mode 13 (36.22, -37.11), the most isolated
  mode (16.5 from its nearest neighbour): one bump, towards +x, expected;
- `between_modes`: the midpoint of modes 26 (15.88, 5.40) and 32 (21.96,
  -5.05), 6.0 from each and >= 15.9 from every other mode: two bumps in
  opposite directions (about 120 and -60 degrees) expected;
- `far`: (45, 6.5), the point of the grid of step 0.5 on `[-45, 45]^2` (5
  from the walls) farthest from every mean (25.8 from the nearest, mode 32).

DQS only (SAC's directions would need its own critic and temperature).
"""

import dataclasses
from typing import Dict, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agent as dqs_agent
from dqs_jax import agents, loop
from experiments.gmm import metrics
from experiments.gmm import direction_density as dd
from dqs_jax.agent import energy_q
from dqs_jax.envs import gmm


def _probe_positions() -> Dict[str, np.ndarray]:
    means = gmm.gmm_means()
    return {"near_mode": means[13] + np.float32([-3.0, 0.0]),
            "between_modes": (means[26] + means[32]) / 2,
            "far": np.float32([45.0, 6.5])}


PROBES = {name: np.asarray(p, np.float32)
          for name, p in _probe_positions().items()}
_CORNER = 0.95  # |a_i| above this in both coordinates: a saturated corner.
COLORS = {"near_mode": "tab:red", "between_modes": "tab:purple",
          "far": "tab:orange"}


def critic_q_fn(agent_state: dqs_agent.TrainState) -> metrics.BatchedQFn:
    """`q(states [K, 2], actions [K, 2]) -> [K]`: the Q of DQS's iDEM
    energy (min over the ensemble), i.e. the Q its policy samples from."""
    energy = energy_q(agent_state.config, agent_state.critic_params)
    return lambda states, actions: energy(states, actions[:, None])[:, 0]


def seed_zero(agent_states):
    """The first seed's state of a seed-stacked pytree."""
    return jax.tree_util.tree_map(lambda x: x[0], agent_states)


def log_partition_map(agent_states, key, resolution: int = 60,
                      observation_scale: float = 1.0):
    """`log ∫ exp(Q(s, a) / alpha) da` of seed 0's DQS critic on a grid of
    positions (observed as `observation_scale * position`): `(xs [R],
    values [R, R])`."""
    params = seed_zero(agent_states)
    xs = np.linspace(-gmm.BOX, gmm.BOX, resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    values = jax.jit(lambda g, k: metrics.log_partition(
        critic_q_fn(params), g, params.temperature, k, num_actions=256))(
            grid * observation_scale, key)
    return xs, np.asarray(values).reshape(resolution, resolution)


class Directions(NamedTuple):
    """Per seed (leading axis `[seeds]`) at the `S` probes, `G` angles."""

    angles: np.ndarray  # [G] bin centres
    density: np.ndarray  # [seeds, S, G] critic's exp(Q(s, u) / alpha)
    density_half: np.ndarray  # [seeds, S, G] the same at |a| = 0.5
    q_values: np.ndarray  # [seeds, S, G] Q(s, u(theta))
    sampled: np.ndarray  # [seeds, S, N] policy directions atan2(a)
    action_norm: np.ndarray  # [seeds, S] mean |a| of the policy's actions
    corner_fraction: np.ndarray  # [seeds, S] actions with both |a_i| > 0.95
    temperature: np.ndarray  # [seeds]
    tv: np.ndarray  # [seeds, S] policy histogram vs critic density
    tv_floor: np.ndarray  # [seeds, S] the same for exact draws
    critic_modes: np.ndarray  # [seeds, S] bumps of the critic's density


def directions(agent_states, key, num_angles: int = 72,
               num_samples: int = 1000,
               observation_scale: float = 1.0) -> Directions:
    """The direction diagnostic of every seed's DQS agent at `PROBES`.

    Args:
      agent_states: seed-stacked DQS `TrainState`s.
      key: PRNG key (policy samples and the TV floor).
      num_angles: `G`, bins of the circle.
      num_samples: `N`, policy samples per probe.
      observation_scale: the agent observes `observation_scale * position`.
    """
    probes = jnp.asarray(np.stack(list(PROBES.values()))) * observation_scale
    num_probes = probes.shape[0]

    def one_seed(state, key):
        q_fn, temperature = critic_q_fn(state), state.temperature
        act_key, floor_key = jax.random.split(key)
        critic = dd.boltzmann_direction_density(q_fn, probes, temperature,
                                                num_angles)
        half = dd.boltzmann_direction_density(q_fn, probes, temperature,
                                              num_angles, radius=0.5)
        actions = dqs_agent.act(state, jnp.repeat(probes, num_samples, 0),
                                act_key).reshape(num_probes, num_samples, 2)
        sampled = dd.direction_angles(actions)
        return dict(
            density=critic.density, density_half=half.density,
            q_values=critic.q_values, sampled=sampled,
            action_norm=jnp.mean(jnp.linalg.norm(actions, axis=-1), -1),
            corner_fraction=jnp.mean(
                jnp.all(jnp.abs(actions) > _CORNER, axis=-1), -1),
            temperature=temperature,
            tv=dd.total_variation(critic.density, sampled),
            tv_floor=dd.sampling_floor(floor_key, critic.density,
                                       num_samples),
            critic_modes=dd.count_modes(critic.density))

    num_seeds = jax.tree_util.tree_leaves(agent_states)[0].shape[0]
    out = jax.jit(jax.vmap(one_seed))(agent_states,
                                      jax.random.split(key, num_seeds))
    return Directions(angles=np.asarray(dd.angle_grid(num_angles)),
                      **{k: np.asarray(v) for k, v in out.items()})


def summary(d: Directions) -> dict:
    """results.json's `direction_diagnostic`: per probe, lists over seeds."""
    q_min, q_max = d.q_values.min(-1), d.q_values.max(-1)
    radial = 0.5 * np.abs(d.density - d.density_half).sum(-1) * (
        2 * np.pi / d.angles.size)
    states = {}
    for i, (name, position) in enumerate(PROBES.items()):
        states[name] = {
            "position": [float(x) for x in position],
            "tv": d.tv[:, i].tolist(), "tv_floor": d.tv_floor[:, i].tolist(),
            "critic_modes": d.critic_modes[:, i].tolist(),
            "q_min": q_min[:, i].tolist(), "q_max": q_max[:, i].tolist(),
            "q_range_over_temperature":
                ((q_max - q_min)[:, i] / d.temperature).tolist(),
            "radial_tv": radial[:, i].tolist(),
            "action_norm_mean": d.action_norm[:, i].tolist(),
            "corner_fraction": d.corner_fraction[:, i].tolist(),
        }
    return {"temperature": d.temperature.tolist(),
            "num_angles": int(d.angles.size),
            "num_samples": int(d.sampled.shape[-1]),
            "states": states,
            "about": "Per probe state and seed: tv = total variation between "
                     "the histogram of the DQS policy's sampled directions "
                     "and exp(Q(s, u(theta))/alpha) on the same bins (tv_floor"
                     ": what exact draws score); critic_modes: bumps above "
                     "10% of the peak; radial_tv: the critic's density at "
                     "|a| = 0.5 vs 1 (0 for a ray-constant critic); "
                     "corner_fraction: policy actions with both |a_i| > "
                     f"{_CORNER} (tanh saturated: a diagonal direction "
                     "whatever the critic; 0.0025 for uniform actions)."}


def critic_policy_positions(agent_states, key, num_rollouts: int,
                            greedy: bool = False, num_angles: int = 72,
                            observation_scale: float = 1.0) -> np.ndarray:
    """Final positions of `num_rollouts` episodes per seed of the critic's
    own Boltzmann policy over directions, sampled exactly on a grid of
    `num_angles` (`dd.sample_directions`) instead of by the score network:
    what DQS's final states would be with a perfect sampler (`greedy`: the
    critic's argmax direction). `[seeds, N, 2]`."""
    def act(state, observations, act_key, deterministic=False):
        del deterministic
        return dd.sample_directions(critic_q_fn(state), observations,
                                    state.temperature, act_key, num_angles,
                                    greedy)

    agent = dataclasses.replace(agents.get_agent("dqs"), act=act)
    env = gmm.environment(observation_scale)
    num_seeds = jax.tree_util.tree_leaves(agent_states)[0].shape[0]
    run = jax.jit(jax.vmap(lambda st, k: loop.evaluate(
        agent, env, st, k, num_rollouts).final_env_states.position))
    return np.asarray(run(agent_states, jax.random.split(key, num_seeds)))


def critic_policy_summary(agent_states, key, num_rollouts: int,
                          ground_truth, bandwidth,
                          observation_scale: float = 1.0) -> dict:
    """results.json's `critic_policy`: squared MMD and modes covered per
    seed of `critic_policy_positions`, sampled and greedy, scored like the
    methods (separates the critic's quality from the sampler's)."""
    means = jnp.asarray(gmm.gmm_means())
    out = {}
    for name, greedy in (("boltzmann", False), ("greedy", True)):
        positions = critic_policy_positions(
            agent_states, key, num_rollouts, greedy,
            observation_scale=observation_scale)
        out[name] = {
            "mmd": [float(metrics.mmd(p, ground_truth, bandwidth))
                    for p in positions],
            "coverage": [int(metrics.mode_coverage(p, means, gmm.MODE_STD))
                         for p in positions]}
    out["about"] = ("Final states of the DQS critic's own policy over "
                    "directions, drawn exactly on a 72-bin grid of the "
                    "circle (boltzmann) or its argmax (greedy), instead of "
                    "by the score network: the sampler's share of the gap.")
    return out


def mark_probes(ax) -> None:
    """The probe states as crosses on a map of the box."""
    for name, (x, y) in PROBES.items():
        ax.plot(x, y, "x", color=COLORS[name], markersize=9, mew=2.5)


def direction_panel(ax, d: Directions) -> None:
    """Seed 0: each probe's critic density (line) and the policy's
    direction histogram (filled), both per radian, each probe scaled to its
    own peak (so that one sharp probe does not flatten the others)."""
    width = 2 * np.pi / d.angles.size
    edges = np.concatenate([d.angles - width / 2, [np.pi]])
    for i, name in enumerate(PROBES):
        color = COLORS[name]
        hist = dd.direction_histogram(jnp.asarray(d.sampled[0, i:i + 1]),
                                      d.angles.size)
        hist = np.asarray(hist[0]) / width
        density = np.asarray(d.density[0, i])
        peak = max(float(np.max(hist)), float(np.max(density)), 1e-12)
        ax.stairs(hist / peak, edges, color=color, alpha=0.35, fill=True)
        ax.plot(d.angles, density / peak, color=color, lw=2,
                label=f"{name}: TV {d.tv[0, i]:.2f} "
                      f"(floor {d.tv_floor[0, i]:.2f}), peak {peak:.2g}/rad")
    ax.set_xlim(-np.pi, np.pi)
    ax.set_xticks(np.linspace(-np.pi, np.pi, 5),
                  ["-180", "-90", "0", "90", "180"])
    ax.set_xlabel("direction θ (degrees)")
    ax.set_ylabel("density per radian / the probe's peak")
    ax.set_ylim(0, 1.25)  # Room for the legend above the curves.
    ax.yaxis.set_label_position("right")  # Clear of a colorbar on the left.
    ax.yaxis.tick_right()
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"DQS seed 0: exp(Q(s,u(θ))/α) (line), policy (filled); "
                 f"α = {d.temperature[0]:.3g}", fontsize=10)

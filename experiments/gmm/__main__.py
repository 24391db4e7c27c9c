r"""The paper's illustrative experiment (Sec. 4.2, Fig. 2; docs/results/gmm.md): GMM-40 navigation,
DQS against SAC (or any registered agents, `--methods`) with equal budgets
over several seeds.

    python -m experiments.gmm --preset=cpu --workdir=runs/gmm

Each method trains `--num_seeds` seeds at once (vmapped, fully jitted loop),
then runs `--num_rollouts` episodes of its stochastic policy per seed (the
paper samples the policy). The final positions are compared with as many
samples of the mixture: squared MMD (RBF kernel; bandwidth = median pairwise
distance of the ground-truth samples, the same for every method) and mode
coverage (components with a final position within 3 std of their mean).

Writes under `--workdir`: results.json (per method and seed, mean ± std,
wall times; reference scores, `experiments.gmm_references`; with `--curve`
the metrics after every chunk, `curves`; with DQS, `direction_diagnostic`
and `critic_policy`, `experiments.gmm_diagnostics`), final_positions.npz,
gmm_curves.png (with `--curve`) and gmm_figure.png (contours with
ground-truth samples, each method's final positions, and the log-partition
heat map of the DQS critic, as in the paper's Fig. 2; with DQS a fifth
panel: at three fixed states, the critic's Boltzmann density over
directions against the policy's sampled directions).

DQS's temperature is constant (`--dqs_temperature`) or, with
`--dqs_temperature_anneal_steps=T > 0`, annealed log-linearly from
`--dqs_temperature` to `--dqs_final_temperature` over T updates.

Every agent gets the preset's widths (`--hidden_dim`) and its own defaults
otherwise; on-policy agents (PPO) collect `--rollout_length` steps per
update and take no seed phase.
"""

import dataclasses
import functools
import json
import os
import sys
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agents, loop, score_targets
from dqs_jax.envs import gmm
from dqs_jax.training import files
from experiments import plotting
from experiments.configs import agent_flags, loader
from experiments.gmm import curves as gmm_curves
from experiments.gmm import diagnostics as gmm_diagnostics
from experiments.gmm import metrics
from experiments.gmm import references as gmm_references
from experiments.gmm.settings import GMMSettings

_SETTINGS = agent_flags.PresetFlags("gmm", GMMSettings)
flags.adopt_module_key_flags(agent_flags)  # Listed by --help.
_WORKDIR = flags.DEFINE_string("workdir", "runs/gmm", "Output folder.")
_SEED = flags.DEFINE_integer("seed", 0, "Base seed.")
_METHODS = flags.DEFINE_list("methods", ["dqs", "sac"], "Agents to run.")
_ESTIMATOR = flags.DEFINE_enum(
    "estimator", "idem", list(score_targets.ESTIMATORS),
    "DQS's score estimate (DQSConfig.estimator); adaptive also stratifies "
    "the diffusion times.")
_CURVE = flags.DEFINE_boolean(
    "curve", True, "Also evaluate every method after each training chunk "
    "(--chunk_size steps): results.json's `curves` and gmm_curves.png.")
_SPREAD = flags.DEFINE_boolean(
    "spread_seeds", False, "Spread the seeds over all devices (their count "
    "must divide --num_seeds).")


def settings() -> dict:
    """The preset (or `--config`) with the field flags set applied,
    validated by `GMMSettings`; UsageError on a bad value."""
    try:
        base, overrides = _SETTINGS.values()
        s = dataclasses.asdict(GMMSettings(**{**base, **overrides}))
    except (TypeError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    unknown = set(_METHODS.value) - set(agents.agent_names())
    if unknown or not _METHODS.value:
        raise app.UsageError(f"--methods: unknown {sorted(unknown)}; choose "
                             f"from {', '.join(agents.agent_names())}.")
    for method in _METHODS.value:
        if agents.get_agent(method).on_policy and (
                s["num_steps"] % s["rollout_length"]
                or s["chunk_size"] % s["rollout_length"]):
            raise app.UsageError(
                f"{method} is on-policy: --num_steps and --chunk_size must be "
                f"multiples of --rollout_length ({s['rollout_length']}).")
    return s


def agent_config(method: str, s: dict):
    """`method`'s config: its defaults, the preset's widths and discount,
    DQS's K and temperature (constant, or annealed when
    `dqs_temperature_anneal_steps > 0`), the on-policy rollout length."""
    spec = agents.get_agent(method)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    hidden = (s["hidden_dim"],) * 2
    overrides = {k: hidden for k in ("hidden_dims", "critic_hidden_dims")
                 if k in fields}
    if "discount" in fields:
        overrides["discount"] = s["discount"]
    if method == "dqs":
        anneal = s["dqs_temperature_anneal_steps"]
        overrides.update(num_mc_samples=s["num_mc_samples"],
                         num_sampling_steps=s["num_sampling_steps"],
                         init_temperature=s["dqs_temperature"],
                         final_temperature=s["dqs_final_temperature"]
                         if anneal else s["dqs_temperature"],
                         temperature_anneal_steps=anneal,
                         estimator=_ESTIMATOR.value,
                         energy_action=s["dqs_energy_action"])
        if _ESTIMATOR.value == "adaptive":
            overrides["stratified_times"] = True
    if spec.on_policy:
        overrides["rollout_length"] = s["rollout_length"]
        if "num_minibatches" in fields:  # Minibatches of about 64 (CleanRL).
            overrides["num_minibatches"] = min(
                (m for m in range(1, s["rollout_length"] + 1)
                 if s["rollout_length"] % m == 0),
                key=lambda m: abs(s["rollout_length"] / m - 64))
    return spec.make_config(**overrides)


def train_method(method: str, s: dict, key: jax.Array, on_state=None):
    """Trains `num_seeds` seeds; returns (final states, seconds of training
    and of `on_state`, `loop.train_in_chunks`'s per-chunk hook)."""
    agent = agents.get_agent(method)
    config = agent_config(method, s)
    env = gmm.environment(s["observation_scale"])
    loop_config = loop.LoopConfig(seed_steps=0 if agent.on_policy
                                  else s["seed_steps"],
                                  batch_size=s["batch_size"],
                                  replay_size=s["replay_size"])
    start = time.time()
    last = [start, 0]

    def progress(done, info):
        info = jax.device_get(info)
        finished = info.done.astype(bool)
        ret = (float(info.episode_return[finished].mean())
               if finished.any() else float("nan"))
        now = time.time()
        rate = (done - last[1]) / max(now - last[0], 1e-9)
        eta = (s["num_steps"] - done) / max(rate, 1e-9)
        print(f"[{method}] step {done}/{s['num_steps']} | mean episode "
              f"return {ret:.0f} | {rate * s['num_seeds']:.0f} env steps/s "
              f"({s['num_seeds']} seeds) | ETA {eta / 60:.1f} min", flush=True)
        last[:] = [now, done]

    keys = jax.random.split(key, s["num_seeds"])
    state = loop.train_in_chunks(agent, config, env, loop_config,
                                 s["num_steps"], keys, s["chunk_size"],
                                 progress,
                                 devices=jax.devices() if _SPREAD.value
                                 else None, on_state=on_state)
    jax.block_until_ready(state)
    return state, time.time() - start


@functools.lru_cache(maxsize=None)
def _evaluator(method: str, num_rollouts: int, observation_scale: float):
    """Jitted `(agent states [S], keys [S]) -> EvalResult` of `method`'s
    stochastic policy, one compilation per method (curves call it often)."""
    agent = agents.get_agent(method)
    env = gmm.environment(observation_scale)
    return jax.jit(jax.vmap(
        lambda st, k: loop.evaluate(agent, env, st, k, num_rollouts)))


def evaluate_method(method: str, state, s: dict, key: jax.Array,
                    ground_truth: jax.Array, bandwidth) -> dict:
    evaluate = _evaluator(method, s["num_rollouts"], s["observation_scale"])
    keys = jax.random.split(key, s["num_seeds"])
    result = evaluate(state.agent_state, keys)
    positions = result.final_env_states.position  # [S, N, 2]
    means = jnp.asarray(gmm.gmm_means())
    mmd = [float(metrics.mmd(p, ground_truth, bandwidth)) for p in positions]
    coverage = [int(metrics.mode_coverage(p, means, gmm.MODE_STD))
                for p in positions]
    return {
        "mmd": mmd, "mmd_mean": float(np.mean(mmd)),
        "mmd_std": float(np.std(mmd)),
        "coverage": coverage, "coverage_mean": float(np.mean(coverage)),
        "coverage_std": float(np.std(coverage)),
        "eval_return_mean": float(jnp.mean(result.returns)),
        "positions": np.asarray(positions),
    }


_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "tab:gray")


def figure(path, ground_truth, results, log_z, directions):
    """Ground truth, each method's final states (seed 0), the DQS critic's
    log-partition map and its direction diagnostic, one panel each (the
    last two only with DQS)."""
    panels = [("Ground truth", ground_truth, "tab:green")]
    for (method, r), color in zip(results.items(), _COLORS):
        panels.append((f"{method.upper()} final states (seed 0): MMD "
                       f"{r['mmd'][0]:.4f}, {r['coverage'][0]}/40 modes",
                       r["positions"][0], color))
    num = len(panels) + (log_z is not None) + (directions is not None)
    fig, axes = plotting.plt.subplots(1, num, figsize=(5 * num, 5),
                                      squeeze=False)
    axes = axes[0]
    lims = (-gmm.BOX, gmm.BOX)
    log_density = jax.jit(gmm.log_density)
    for ax, (title, points, color) in zip(axes, panels):
        plotting.density_contours(ax, log_density, lims, resolution=300,
                                  levels=30)
        plotting.scatter(ax, points, color=color, size=4)
        ax.set_title(title, fontsize=10)
    if log_z is not None:
        ax = axes[len(panels)]
        xs, values = log_z
        image = ax.imshow(values, origin="lower", cmap="viridis",
                          extent=(xs[0], xs[-1], xs[0], xs[-1]))
        fig.colorbar(image, ax=ax, fraction=0.046)
        gmm_diagnostics.mark_probes(ax)
        ax.set_title("DQS log partition log ∫exp(Q/α)da (x: probe states)",
                     fontsize=10)
    if directions is not None:
        gmm_diagnostics.direction_panel(axes[-1], directions)
    return plotting.save(fig, path)


def dqs_diagnostics(agent_states, s: dict, key: jax.Array,
                    ground_truth: jax.Array, bandwidth, summary: dict):
    """The trained DQS seeds' log-partition map and direction diagnostic
    (returned for the figure) and the critic's own policy; adds
    `direction_diagnostic` and `critic_policy` to `summary` and prints
    them."""
    scale = s["observation_scale"]
    log_z = gmm_diagnostics.log_partition_map(agent_states, key,
                                              observation_scale=scale)
    directions = gmm_diagnostics.directions(
        agent_states, jax.random.fold_in(key, 1), observation_scale=scale)
    summary["direction_diagnostic"] = gmm_diagnostics.summary(directions)
    summary["critic_policy"] = gmm_diagnostics.critic_policy_summary(
        agent_states, jax.random.fold_in(key, 2), s["num_rollouts"],
        ground_truth, bandwidth, scale)
    for name in ("boltzmann", "greedy"):
        r = summary["critic_policy"][name]
        print(f"[dqs] critic's own {name} policy: MMD "
              f"{np.round(r['mmd'], 4)}, modes {r['coverage']}", flush=True)
    for name, r in summary["direction_diagnostic"]["states"].items():
        print(f"[dqs] directions at {name}: TV {np.round(r['tv'], 3)} "
              f"(floor {np.round(r['tv_floor'], 3)}), critic modes "
              f"{r['critic_modes']}, Q range / alpha "
              f"{np.round(r['q_range_over_temperature'], 1)}", flush=True)
    return log_z, directions


def main(argv):
    del argv
    s = settings()
    os.makedirs(_WORKDIR.value, exist_ok=True)
    root = jax.random.PRNGKey(_SEED.value)
    gt_key, eval_key, logz_key, *method_keys = jax.random.split(
        root, 3 + len(_METHODS.value))
    ground_truth = gmm.sample_gmm(gt_key, s["num_rollouts"])
    bandwidth = metrics.median_heuristic_bandwidth(ground_truth)
    print(f"GMM-40 experiment, preset {_SETTINGS.name()}: {s}", flush=True)

    results, wall, states, curves = {}, {}, {}, {}
    for method, key in zip(_METHODS.value, method_keys):
        on_state = None
        if _CURVE.value:
            def on_state(done, state, method=method):
                r = evaluate_method(method, state, s, eval_key, ground_truth,
                                    bandwidth)
                gmm_curves.record(curves, method, done, r)
                print(f"[{method}] step {done}: MMD {np.round(r['mmd'], 4)}"
                      f", modes {r['coverage']}", flush=True)
        states[method], wall[method] = train_method(method, s, key, on_state)
        results[method] = evaluate_method(method, states[method], s,
                                          eval_key, ground_truth, bandwidth)
        print(f"[{method}] trained in {wall[method] / 60:.1f} min; MMD "
              f"{results[method]['mmd_mean']:.4f} ± "
              f"{results[method]['mmd_std']:.4f}, coverage "
              f"{results[method]['coverage_mean']:.1f} ± "
              f"{results[method]['coverage_std']:.1f} / 40", flush=True)

    baselines = gmm_references.reference_scores(gt_key, ground_truth,
                                                bandwidth)
    summary = {
        "preset": _SETTINGS.name(),
        "settings": s,
        "mmd_bandwidth": float(bandwidth),
        "agent_configs": {m: dataclasses.asdict(agent_config(m, s))
                          for m in results},
        "methods": {m: {k: v for k, v in r.items() if k != "positions"}
                    for m, r in results.items()},
        "train_seconds": wall,  # With --curve, its evaluations included.
        "baselines": baselines,
        "versions": files.versions(),
        "devices": [str(d) for d in jax.devices()],
    }
    if curves:
        summary["curves"] = curves
    if {"dqs", "sac"} <= set(results):
        d, c = results["dqs"], results["sac"]
        summary["dqs_lower_mmd_every_seed"] = all(
            a < b for a, b in zip(d["mmd"], c["mmd"]))
        summary["dqs_more_modes_every_seed"] = all(
            a > b for a, b in zip(d["coverage"], c["coverage"]))
    log_z = directions = None
    if "dqs" in states:
        log_z, directions = dqs_diagnostics(
            states["dqs"].agent_state, s, logz_key, ground_truth, bandwidth,
            summary)
    results_path = os.path.join(_WORKDIR.value, "results.json")
    files.write_json(results_path, summary)
    np.savez(os.path.join(_WORKDIR.value, "final_positions.npz"),
             ground_truth=np.asarray(ground_truth),
             **{m: r["positions"] for m, r in results.items()})
    png = figure(os.path.join(_WORKDIR.value, "gmm_figure.png"),
                 np.asarray(ground_truth), results, log_z, directions)
    if curves:
        png += " and " + gmm_curves.plot(
            os.path.join(_WORKDIR.value, "gmm_curves.png"), curves,
            baselines["uniform_in_box"]["mmd"], gmm.NUM_MODES)
    print(json.dumps(summary["methods"], indent=1))
    print(f"Wrote {os.path.abspath(results_path)} and {png}")


if __name__ == "__main__":
    loader.check_config_argv(sys.argv)
    app.run(main)

r"""Error against wall time of every score estimator (`DQSConfig.estimator`).

    python -m experiments.bench.estimator
    python -m experiments.bench.estimator --critic_run=runs/my_dqs_run

For each estimator and K in `--num_samples`, the relative RMSE of its score
targets against a reference, per bin of the diffusion time t (`--num_bins`
equal bins of [0, 1], as training draws t) and overall, on two energies:

- `gmm`: a closed-form 6-D isotropic Gaussian mixture (`--gmm_modes` modes
  in [-0.8, 0.8]^6, std `--gmm_std`), whose noised score is exact (the
  components' variances grow by h). The K = `--reference_samples` iDEM
  estimate's own error against the truth is reported beside it.
- `critic`: `min_j Q_j / alpha` of a DQS critic trained by this script
  (`--critic_steps` on `--critic_env`, 2x256 critic, kept in
  `<workdir>/critic_run` and reused) or read from `--critic_run` (any
  `experiments.train` DQS workdir). Rows are replay states and actions;
  the reference is the control-variate estimate at K = `--reference_samples`,
  and its disagreement with iDEM at the same K is reported.

Wall time: one batch of B = `--batch_size` targets on the critic at the
paper's shape (the estimate alone, jitted and warm, median of `--repeats`;
"adaptive" with stratified times as in training), so times compare across
estimators on one machine. The 2048^2 matmul rate is printed beside them.

Writes `<workdir>/estimator_error.json` and `estimator_error.png` (log-log
error vs time, one line per estimator over K), and prints, per energy, the
cheapest configuration that matches iDEM at the largest K within
`--match_tolerance` overall and in every t-bin, with its time ratio.
"""

import dataclasses
import functools
import os
import time
from typing import Callable, Dict, Tuple

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agent as dqs_agent
from dqs_jax import batched_estimator, score_targets
from dqs_jax.schedule import GeometricSchedule
from dqs_jax.training import files
from experiments.estimators.energies import (critic_energy, gmm_energy,
                                            train_critic)
from experiments.estimators.metrics import matches, relative_rmse
from experiments.bench.timing import dot_rate

_WORKDIR = flags.DEFINE_string("workdir", "runs/bench_estimator",
                               "Output folder.")
_ESTIMATORS = flags.DEFINE_list("estimators", list(score_targets.ESTIMATORS),
                                "Estimators to compare.")
_K = flags.DEFINE_list("num_samples", ["8", "16", "32", "100", "300", "1000"],
                       "K values.")
_REFERENCE_K = flags.DEFINE_integer("reference_samples", 100_000,
                                    "K of the reference estimate.")
_NUM_BINS = flags.DEFINE_integer("num_bins", 5, "Bins of t.")
_GMM_ROWS = flags.DEFINE_integer("gmm_rows_per_bin", 64, "GMM rows per bin.")
_CRITIC_ROWS = flags.DEFINE_integer("critic_rows_per_bin", 16,
                                    "Critic rows per bin.")
_GMM_MODES = flags.DEFINE_integer("gmm_modes", 8, "Modes of the GMM.")
_GMM_STD = flags.DEFINE_float("gmm_std", 0.1, "Component std of the GMM.")
_CRITIC_RUN = flags.DEFINE_string(
    "critic_run", None, "A DQS run's workdir to read the critic from "
    "(default: train one in <workdir>/critic_run).")
_CRITIC_ENV = flags.DEFINE_string("critic_env", "dmc:cheetah-run",
                                  "Task of the critic this script trains.")
_CRITIC_STEPS = flags.DEFINE_integer("critic_steps", 3000,
                                     "Env steps of the critic it trains.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Rows per timed batch.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per config.")
_TOLERANCE = flags.DEFINE_float("match_tolerance", 0.1,
                                "Allowed relative excess error of a match.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of rows and draws.")

SCHEDULE = GeometricSchedule(1e-5, 1.0)  # DQSConfig's default.
MC_CHUNK = 32


# --- Estimates --------------------------------------------------------------

def batched_estimate(name: str, value_and_grad, obs, x_t, h, t, key,
                     num_samples: int, config) -> jax.Array:
    """`[N, d]` targets of estimator `name` (adaptive: by each row's t)."""
    def run(estimator, k, key_):
        return score_targets.estimate_targets(
            estimator, k, MC_CHUNK, value_and_grad, obs, x_t, h, key_)

    if name != "adaptive":
        return run(name, num_samples, key)
    keys = jax.random.split(key, 3)
    low = run("antithetic", config.adaptive_low_samples, keys[0])
    mid = run("antithetic", config.adaptive_mid_samples, keys[1])
    high = run("control_variate", num_samples, keys[2])
    pick_low = (t < config.adaptive_low_time)[:, None]
    pick_mid = (t < config.adaptive_mid_time)[:, None]
    return jnp.where(pick_low, low, jnp.where(pick_mid, mid, high))


def in_groups(fn: Callable, arrays: Tuple[jax.Array, ...], key, size: int):
    """`fn(*arrays_slice, key_i)` over row groups of `size`, concatenated."""
    n = arrays[0].shape[0]
    outs = []
    for i, start in enumerate(range(0, n, size)):
        part = tuple(a[start:start + size] for a in arrays)
        outs.append(fn(*part, jax.random.fold_in(key, i)))
    return jnp.concatenate(outs)


def rows(key, num_bins: int, per_bin: int, x0, schedule=SCHEDULE):
    """Times stratified into `num_bins` bins, `x_t = x0 + sqrt(h) eps`."""
    n = num_bins * per_bin
    bins = np.repeat(np.arange(num_bins), per_bin)
    t_key, e_key = jax.random.split(key)
    t = (jnp.asarray(bins) + jax.random.uniform(t_key, (n,))) / num_bins
    h = schedule.h(t)
    x_t = x0 + jnp.sqrt(h)[:, None] * jax.random.normal(e_key, x0.shape)
    return t, h, x_t, bins


def error_table(value_and_grad, obs, x_t, h, t, bins, reference, key,
                config) -> Dict[str, Dict[str, dict]]:
    """Relative RMSE of every estimator and K against `reference`."""
    table: Dict[str, Dict[str, dict]] = {}
    for name in _ESTIMATORS.value:
        table[name] = {}
        for k in (int(v) for v in _K.value):
            fn = jax.jit(functools.partial(
                batched_estimate, name, value_and_grad, num_samples=k,
                config=config))
            est = fn(obs, x_t, h, t, jax.random.fold_in(key, k))
            table[name][str(k)] = relative_rmse(est, reference, bins,
                                                _NUM_BINS.value)
    return table


# --- Timing -----------------------------------------------------------------

def time_estimators(params, config, obs_pool, act_pool, temperature
                    ) -> Dict[str, Dict[str, float]]:
    """Median seconds of one batch of `--batch_size` targets (the jitted
    `score_targets.idem_target_fn`) per estimator and K."""
    b = _BATCH.value
    rng = np.random.default_rng(_SEED.value)
    idx = rng.integers(0, len(obs_pool), b)
    obs = jnp.asarray(obs_pool[idx])
    h = SCHEDULE.h((jnp.arange(b) + 0.5) / b)  # Stratified ("adaptive").
    x_t = jnp.asarray(act_pool[idx]) + jnp.sqrt(h)[:, None] * jnp.asarray(
        rng.normal(size=act_pool[idx].shape), jnp.float32)
    temp = jnp.full((b,), temperature, jnp.float32)
    times: Dict[str, Dict[str, float]] = {}
    for name in _ESTIMATORS.value:
        times[name] = {}
        for k in (int(v) for v in _K.value):
            cfg = dataclasses.replace(
                config, num_mc_samples=k, estimator=name,
                stratified_times=name == "adaptive", small_noise_threshold=0.0,
                mc_chunk_size=MC_CHUNK)
            fn = jax.jit(score_targets.idem_target_fn(cfg, params))
            key = jax.random.PRNGKey(k)
            jax.block_until_ready(fn(obs, x_t, h, temp, key))
            samples = []
            for r in range(_REPEATS.value):
                start = time.perf_counter()
                jax.block_until_ready(fn(obs, x_t, h, temp,
                                         jax.random.fold_in(key, r)))
                samples.append(time.perf_counter() - start)
            times[name][str(k)] = float(np.median(samples))
            print(f"  {name:16s} K={k:5d}: {1e3 * times[name][str(k)]:9.1f} "
                  "ms per batch", flush=True)
    return times


# --- Report -----------------------------------------------------------------

def plot(path: str, results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    energies = [e for e in ("gmm", "critic") if e in results["errors"]]
    fig, axes = plt.subplots(1, len(energies), figsize=(6 * len(energies), 4.5),
                             squeeze=False)
    times = results["times_s"]
    k_max = str(max(int(k) for k in _K.value))
    for ax, energy in zip(axes[0], energies):
        errors = results["errors"][energy]
        for name, per_k in errors.items():
            ks = sorted(per_k, key=int)
            ax.plot([times[name][k] for k in ks],
                    [per_k[k]["overall"] for k in ks], "o-", label=name)
            for k in ks:
                ax.annotate(k, (times[name][k], per_k[k]["overall"]),
                            fontsize=7, alpha=0.6)
        if "idem" in errors:
            ax.axhline(errors["idem"][k_max]["overall"]
                       * (1 + _TOLERANCE.value), ls="--", c="gray", lw=1,
                       label=f"target error: iDEM at K={k_max} "
                       f"+{100 * _TOLERANCE.value:.0f}%")
            ax.axvline(times["idem"][k_max] / 10, ls=":", c="gray", lw=1,
                       label=f"target time: iDEM at K={k_max} / 10")
        ax.set(xscale="log", yscale="log", xlabel="seconds per batch "
               f"(B={_BATCH.value})", ylabel="relative RMSE (score estimate)",
               title=f"{energy} energy: estimator error against cost "
               "(points labelled by K)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- Main -------------------------------------------------------------------

def gmm_errors(key) -> Tuple[dict, dict]:
    value_and_grad, noised_score, sample = gmm_energy(
        6, _GMM_MODES.value, _GMM_STD.value, _SEED.value)
    n = _NUM_BINS.value * _GMM_ROWS.value
    x0_key, row_key, ref_key, est_key = jax.random.split(key, 4)
    t, h, x_t, bins = rows(row_key, _NUM_BINS.value, _GMM_ROWS.value,
                           sample(x0_key, n))
    obs = jnp.zeros((n, 1))
    truth = noised_score(x_t, h)
    reference = in_groups(jax.jit(functools.partial(
        batched_estimator.chunked_idem_targets, value_and_grad,
        num_samples=_REFERENCE_K.value, chunk_size=1000)),
        (obs, x_t, h), ref_key, 16)
    config = dqs_agent.DQSConfig()
    errors = error_table(value_and_grad, obs, x_t, h, t, bins, truth,
                         est_key, config)
    reference_error = relative_rmse(reference, truth, bins, _NUM_BINS.value)
    return errors, {"against": "exact noised score",
                    "reference_idem_error": reference_error}


def critic_errors(key, params, config, temperature, obs_pool, act_pool
                  ) -> Tuple[dict, dict]:
    n = _NUM_BINS.value * _CRITIC_ROWS.value
    idx = np.random.default_rng(_SEED.value + 1).integers(0, len(obs_pool), n)
    obs = jnp.asarray(obs_pool[idx])
    row_key, ref_key, est_key = jax.random.split(key, 3)
    t, h, x_t, bins = rows(row_key, _NUM_BINS.value, _CRITIC_ROWS.value,
                           jnp.asarray(act_pool[idx]))
    # The energy as `update` evaluates it (hand-written ensemble backward).
    value_and_grad = score_targets.energy_value_and_grad(
        config, params, jnp.full((n,), temperature, jnp.float32))

    def group_vg(temp_rows):
        return score_targets.energy_value_and_grad(
            config, params, jnp.full((temp_rows,), temperature, jnp.float32))

    group = 8

    def reference(kind):
        def fn(o, x, hh, k):
            return score_targets.estimate_targets(
                kind, _REFERENCE_K.value, 1000, group_vg(o.shape[0]), o, x,
                hh, k)
        return in_groups(jax.jit(fn), (obs, x_t, h), ref_key, group)

    print(f"Critic reference: K={_REFERENCE_K.value} on {n} rows ...",
          flush=True)
    ref_cv = reference("control_variate")
    ref_idem = reference("idem")
    errors = error_table(value_and_grad, obs, x_t, h, t, bins, ref_cv,
                         est_key, config)
    return errors, {"against": f"control_variate at K={_REFERENCE_K.value}",
                    "reference_idem_vs_cv": relative_rmse(
                        ref_idem, ref_cv, bins, _NUM_BINS.value),
                    "temperature": temperature}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = set(_ESTIMATORS.value) - set(score_targets.ESTIMATORS)
    if unknown or not _ESTIMATORS.value:
        raise app.UsageError(f"--estimators: unknown {sorted(unknown)}; "
                             f"valid: {', '.join(score_targets.ESTIMATORS)}.")
    try:
        ks = [int(k) for k in _K.value]
    except ValueError:
        raise app.UsageError("--num_samples must be integers.") from None
    for name in ("reference_samples", "num_bins", "gmm_rows_per_bin",
                 "critic_rows_per_bin", "batch_size", "repeats"):
        if flags.FLAGS[name].value < 1 or min(ks) < 1:
            raise app.UsageError(f"--{name} and --num_samples must be >= 1.")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Quiet orbax's INFO lines.
    os.makedirs(_WORKDIR.value, exist_ok=True)
    started = time.time()
    rate = dot_rate()
    print(f"2048^2 float32 matmul: {rate:.0f} GFLOP/s", flush=True)

    critic_run = _CRITIC_RUN.value or os.path.join(_WORKDIR.value,
                                                   "critic_run")
    if _CRITIC_RUN.value is None:
        train_critic(critic_run, _CRITIC_ENV.value, _CRITIC_STEPS.value,
                     _SEED.value)
    try:
        params, config, temperature, obs_pool, act_pool = critic_energy(
            critic_run)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(f"--critic_run={critic_run}: {e}") from None
    key = jax.random.PRNGKey(_SEED.value)
    print("Errors on the closed-form GMM ...", flush=True)
    gmm_err, gmm_info = gmm_errors(jax.random.fold_in(key, 0))
    print("Errors on the trained critic ...", flush=True)
    critic_err, critic_info = critic_errors(
        jax.random.fold_in(key, 1), params, config, temperature, obs_pool,
        act_pool)
    print(f"Timing (B={_BATCH.value}, critic "
          f"{'x'.join(map(str, config.critic_hidden_dims))}, obs "
          f"{obs_pool.shape[1]}, act {act_pool.shape[1]}):", flush=True)
    times = time_estimators(params, config, obs_pool, act_pool, temperature)
    results = {
        "matmul_gflops": rate, "versions": files.versions(),
        "settings": {name: flags.FLAGS[name].value for name in (
            "estimators", "num_samples", "reference_samples", "num_bins",
            "gmm_rows_per_bin", "critic_rows_per_bin", "gmm_modes", "gmm_std",
            "critic_env", "critic_steps", "batch_size", "repeats",
            "match_tolerance", "seed")},
        "critic_run": critic_run,
        "bins": [[b / _NUM_BINS.value, (b + 1) / _NUM_BINS.value]
                 for b in range(_NUM_BINS.value)],
        "times_s": times,
        "errors": {"gmm": gmm_err, "critic": critic_err},
        "references": {"gmm": gmm_info, "critic": critic_info},
        "matches": {"gmm": matches(gmm_err, times, _TOLERANCE.value),
                    "critic": matches(critic_err, times, _TOLERANCE.value)},
        "wall_time_s": time.time() - started,
    }
    path = os.path.join(_WORKDIR.value, "estimator_error.json")
    files.write_json(path, results)
    plot(os.path.join(_WORKDIR.value, "estimator_error.png"), results)
    for energy, m in results["matches"].items():
        best = m.get("best")
        print(f"{energy}: " + (
            f"best match of iDEM K={m['baseline']['num_samples']}: "
            f"{best['estimator']} K={best['num_samples']} at "
            f"{best['time_ratio']:.3f}x its time" if best else
            "no configuration matches iDEM at the largest K"))
    print(f"Wrote {path} and estimator_error.png in "
          f"{(time.time() - started) / 60:.1f} min.")


if __name__ == "__main__":
    app.run(main)

r"""Demo: a diffusion sampler fitted by iDEM to a 2-D four-mode energy.

    python -m experiments.gmm.demo --workdir=runs/gmm_demo

Trains `dqs_jax.energy_sampler` on the unnormalised log-density of the
four-mode mixture in `dqs_jax.mixtures`, samples it with the reverse SDE,
and writes `samples.png` (samples over the density contours) and
`summary.json` (mode proportions against the truth) under `--workdir`.
"""

import json
import os
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import energy_sampler, mixtures
from experiments import plotting

_WORKDIR = flags.DEFINE_string("workdir", "runs/gmm_demo",
                               "Folder for the outputs.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_NUM_UPDATES = flags.DEFINE_integer("num_updates", 3000,
                                    "Score network updates.")
_NUM_MC_SAMPLES = flags.DEFINE_integer("num_mc_samples", 256,
                                       "K of the iDEM estimate.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 4000, "Samples drawn.")


def main(argv):
    del argv
    for flag in (_NUM_UPDATES, _NUM_MC_SAMPLES, _NUM_SAMPLES):
        if flag.value < 1:
            raise app.UsageError(f"--{flag.name} must be >= 1, got {flag.value}.")
    config = energy_sampler.EnergySamplerConfig(
        num_updates=_NUM_UPDATES.value, num_mc_samples=_NUM_MC_SAMPLES.value)
    target = mixtures.four_mode_gmm()
    fit_key, sample_key = jax.random.split(jax.random.PRNGKey(_SEED.value))

    print(f"Training the score network: {config.num_updates} updates, "
          f"K={config.num_mc_samples}, batch {config.batch_size} ...",
          flush=True)
    start = time.time()
    fit = jax.jit(lambda k: energy_sampler.fit_energy_sampler(
        target.log_prob, 2, k, config))
    params, losses = jax.block_until_ready(fit(fit_key))
    train_seconds = time.time() - start
    samples = jax.jit(lambda p, k: energy_sampler.sample_energy_sampler(
        p, _NUM_SAMPLES.value, 2, k, config))(params, sample_key)
    samples = np.asarray(samples)
    proportions = np.asarray(
        mixtures.mode_proportions(jnp.asarray(samples),
                                  mixtures.FOUR_MODE_MEANS))

    fig, axes = plotting.plt.subplots(1, 2, figsize=(10, 4.5))
    lims = (-3.0, 3.0)
    plotting.density_contours(axes[0], jax.jit(jax.vmap(target.log_prob)),
                              lims)
    plotting.scatter(axes[0], samples, label="DQS sampler")
    axes[0].set_title("Samples over the target density")
    axes[0].legend(loc="upper right", markerscale=5)
    axes[1].plot(np.asarray(losses), lw=0.5)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("update")
    axes[1].set_title("iDEM score loss")
    os.makedirs(_WORKDIR.value, exist_ok=True)
    png = plotting.save(fig, os.path.join(_WORKDIR.value, "samples.png"))

    summary = {
        "mode_means": mixtures.FOUR_MODE_MEANS,
        "true_proportions": mixtures.FOUR_MODE_WEIGHTS,
        "sample_proportions": proportions.tolist(),
        "max_abs_error": float(np.max(np.abs(
            proportions - np.asarray(mixtures.FOUR_MODE_WEIGHTS)))),
        "train_seconds": train_seconds,
        "final_loss": float(np.mean(np.asarray(losses)[-100:])),
    }
    summary_path = os.path.join(_WORKDIR.value, "summary.json")
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)
    shown = ", ".join(f"{p:.3f}" for p in proportions)
    print(f"Trained in {train_seconds:.1f} s. Mode proportions [{shown}] vs "
          f"true {list(mixtures.FOUR_MODE_WEIGHTS)}.")
    print(f"Wrote {png} and {os.path.abspath(summary_path)}")


if __name__ == "__main__":
    app.run(main)

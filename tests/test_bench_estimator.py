"""The estimator benchmark: its closed-form energy, its verdict, a run."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax import mixtures
from experiments.estimators import metrics as estimator_metrics
from experiments.estimators.energies import gmm_energy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gmm_energy_and_its_exact_noised_score():
    value_and_grad, noised_score, sample = gmm_energy(6, 4, 0.1, seed=0)
    x = sample(jax.random.PRNGKey(0), 5)
    assert x.shape == (5, 6)
    values, grads = value_and_grad(None, x[:, None])
    # Against distrax's mixture with the widened components (h = 0.05).
    means = np.random.default_rng(0).uniform(-0.8, 0.8, (4, 6))
    h = 0.05
    wide = mixtures.isotropic_gmm(means, float(np.sqrt(0.01 + h)))
    expected = jax.vmap(jax.grad(wide.log_prob))(x)
    np.testing.assert_allclose(noised_score(x, jnp.full((5,), h)), expected,
                               rtol=1e-4, atol=1e-4)
    narrow = mixtures.isotropic_gmm(means, 0.1)
    np.testing.assert_allclose(grads[:, 0], jax.vmap(jax.grad(
        narrow.log_prob))(x), rtol=1e-4, atol=1e-3)
    # log_prob up to the mixture's constant: differences agree.
    lp = jax.vmap(narrow.log_prob)(x)
    np.testing.assert_allclose(values[:, 0] - values[0, 0], lp - lp[0],
                               rtol=1e-4, atol=1e-3)


def test_matches_picks_the_cheapest_within_tolerance():
    def e(overall, bins):
        return {"overall": overall, "per_bin": bins}

    errors = {"idem": {"100": e(1.0, [1.0, 1.0]), "10": e(3.0, [3.0, 3.0])},
              "cv": {"10": e(1.05, [1.0, 1.09]), "5": e(0.5, [0.1, 1.2])},
              "qmc": {"10": e(0.9, [0.9, 0.9])}}
    times = {"idem": {"100": 1.0, "10": 0.1}, "cv": {"10": 0.2, "5": 0.05},
             "qmc": {"10": 0.1}}
    m = estimator_metrics.matches(errors, times, 0.1)
    assert m["baseline"] == {"estimator": "idem", "num_samples": 100}
    # cv K=5 fails one bin (1.2 > 1.1); idem K=100 matches itself.
    assert [(x["estimator"], x["num_samples"]) for x in m["matching"]] == [
        ("qmc", 10), ("cv", 10), ("idem", 100)]
    assert m["best"]["time_ratio"] == pytest.approx(0.1)
    assert estimator_metrics.matches({"cv": errors["cv"]}, times, 0.1) == {}


@pytest.mark.slow
def test_a_small_run_writes_json_and_plot(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.bench.estimator",
         f"--workdir={tmp_path}", "--critic_steps=300", "--num_samples=4,16",
         "--reference_samples=512", "--gmm_rows_per_bin=4",
         "--critic_rows_per_bin=2", "--batch_size=16", "--repeats=1",
         "--estimators=idem,control_variate,adaptive"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.load(open(tmp_path / "estimator_error.json"))
    for energy in ("gmm", "critic"):
        per_k = results["errors"][energy]["control_variate"]
        assert set(per_k) == {"4", "16"}
        assert len(per_k["16"]["per_bin"]) == 5
        assert all(np.isfinite(per_k["16"]["per_bin"]))
    assert results["times_s"]["idem"]["16"] > 0
    assert os.path.getsize(tmp_path / "estimator_error.png") > 10_000

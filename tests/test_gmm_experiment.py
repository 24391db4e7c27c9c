"""End-to-end: the GMM-40 experiment binary writes its results and figure."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.gmm import metrics
from dqs_jax.envs import gmm
from experiments.gmm import diagnostics as gmm_diagnostics
from experiments.gmm import references as gmm_references
from experiments import plotting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # ~50 s cold; the loop, diagnostics and references it
# runs have their own fast tests (test_loop.py, the tests below).
def test_gmm_experiment_small_run(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.gmm", "--num_steps=600",
         "--seed_steps=300", "--chunk_size=300", "--num_seeds=2",
         "--num_rollouts=100", "--hidden_dim=32", "--num_mc_samples=8",
         "--num_sampling_steps=5", "--dqs_temperature_anneal_steps=300",
         "--dqs_final_temperature=3", "--dqs_energy_action=clip",
         "--observation_scale=0.02", "--discount=0.9", "--curve",
         f"--workdir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.load(open(tmp_path / "results.json"))
    for method in ("dqs", "sac"):
        r = results["methods"][method]
        assert len(r["mmd"]) == 2 and len(r["coverage"]) == 2
        assert all(m >= 0 for m in r["mmd"])
        assert all(0 <= c <= 40 for c in r["coverage"])
        # One learning chunk (300 -> 600): its curve point is the final
        # evaluation (same states, same key).
        curve = results["curves"][method]
        assert curve["steps"] == [600]
        assert curve["mmd"] == [r["mmd"]]
        assert curve["coverage"] == [r["coverage"]]
    assert results["settings"]["observation_scale"] == 0.02
    for name in ("boltzmann", "greedy"):
        own = results["critic_policy"][name]
        assert len(own["mmd"]) == 2 and all(m >= 0 for m in own["mmd"])
        assert all(0 <= c <= 40 for c in own["coverage"])
    assert os.path.getsize(tmp_path / "gmm_curves.png") > 10_000
    assert results["baselines"]["ground_truth_resample"]["coverage"] == 40
    assert (results["baselines"]["ground_truth_resample"]["mmd"]
            < results["baselines"]["uniform_in_box"]["mmd"])
    assert set(results["baselines"]) == {
        "ground_truth_resample", "uniform_in_box", "gradient_ascent",
        "random_directions"}
    # Annealed 30 -> 3 over the 300 updates: at 3 when the diagnostic runs.
    assert results["agent_configs"]["dqs"]["temperature_anneal_steps"] == 300
    assert results["agent_configs"]["dqs"]["energy_action"] == "clip"
    assert [results["agent_configs"][m]["discount"] for m in (
        "dqs", "sac")] == [0.9, 0.9]
    directions = results["direction_diagnostic"]
    assert directions["temperature"] == [3.0, 3.0]
    assert set(directions["states"]) == set(gmm_diagnostics.PROBES)
    for r in directions["states"].values():
        assert all(0 <= tv <= 1 for tv in r["tv"] + r["tv_floor"])
        assert all(lo <= hi for lo, hi in zip(r["q_min"], r["q_max"]))
        assert len(r["critic_modes"]) == 2 and min(r["critic_modes"]) >= 1
    assert os.path.getsize(tmp_path / "gmm_figure.png") > 10_000
    height, width = plotting.plt.imread(tmp_path / "gmm_figure.png").shape[:2]
    # Five 5-inch panels at 120 dpi (cropped); four give about 1980 pixels.
    assert width > 2200, (height, width)
    assert os.path.exists(tmp_path / "final_positions.npz")


def test_probe_states_are_as_documented():
    means = gmm.gmm_means()

    def distances(name):
        return np.sort(np.linalg.norm(means - gmm_diagnostics.PROBES[name],
                                      axis=1))

    near, between, far = (distances(n) for n in
                          ("near_mode", "between_modes", "far"))
    np.testing.assert_allclose(near[:2], [3.0, 15.0], atol=0.05)
    np.testing.assert_allclose(between[:2], [6.05, 6.05], atol=0.01)
    assert between[2] > 15.9
    np.testing.assert_allclose(far[0], 25.8, atol=0.05)


def test_bad_flags_are_refused(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.gmm", "--num_seeds=0",
         f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
        timeout=120)
    assert out.returncode != 0 and "num_seeds" in out.stderr


def test_reference_policies():
    """Gradient ascent on log p ends every episode at a mode (well inside 3
    std, unit steps oscillate across it) and covers them all; a random walk
    does not concentrate; the scores rank as the module says."""
    key = jax.random.PRNGKey(4)
    means = gmm.gmm_means()
    climb = np.asarray(gmm_references.policy_final_positions(key, 400, True))
    walk = np.asarray(gmm_references.policy_final_positions(key, 400, False))

    def to_nearest_mode(points):
        return np.min(np.linalg.norm(points[:, None] - means[None], axis=-1),
                      axis=1)

    assert np.quantile(to_nearest_mode(climb), 0.99) < 1.5
    assert np.median(to_nearest_mode(walk)) > 3.0
    ground_truth = gmm.sample_gmm(jax.random.PRNGKey(5), 400)
    bandwidth = metrics.median_heuristic_bandwidth(ground_truth)
    scores = gmm_references.reference_scores(key, ground_truth, bandwidth)
    assert scores["gradient_ascent"]["coverage"] >= 38
    assert (scores["ground_truth_resample"]["mmd"]
            < scores["gradient_ascent"]["mmd"]
            < scores["uniform_in_box"]["mmd"])


def test_critic_fit_direction_error():
    """The supervised check's metric: zero for the exact reward, about 180
    degrees for its negation; a short fit runs and lowers the loss."""
    from experiments.gmm import critic_fit as cf
    key = jax.random.PRNGKey(0)
    exact = np.asarray(cf.direction_errors(cf.one_step_reward, key, 200))
    np.testing.assert_allclose(exact, 0.0, atol=1e-6)
    flipped = np.asarray(cf.direction_errors(
        lambda s, a: -cf.one_step_reward(s, a), key, 200))
    assert np.median(np.degrees(flipped)) > 150
    _, short = cf.fit(key, 10, 16, 32, 1e-3, 1.0)
    _, longer = cf.fit(key, 300, 16, 32, 1e-3, 1.0)
    assert np.isfinite(short) and float(longer) < float(short)

"""End-to-end: the GMM-40 experiment binary writes its results and figure."""

import json
import os
import subprocess
import sys

import numpy as np

from dqs_jax.envs import gmm
from experiments import gmm_diagnostics, plotting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gmm_experiment_small_run(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.gmm", "--num_steps=600",
         "--seed_steps=300", "--chunk_size=300", "--num_seeds=2",
         "--num_rollouts=100", "--hidden_dim=32", "--num_mc_samples=8",
         "--num_sampling_steps=5", "--dqs_temperature_anneal_steps=300",
         "--dqs_final_temperature=3", "--dqs_energy_action=clip",
         f"--workdir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.load(open(tmp_path / "results.json"))
    for method in ("dqs", "sac"):
        r = results["methods"][method]
        assert len(r["mmd"]) == 2 and len(r["coverage"]) == 2
        assert all(m >= 0 for m in r["mmd"])
        assert all(0 <= c <= 40 for c in r["coverage"])
    assert results["baselines"]["ground_truth_resample"]["coverage"] == 40
    assert (results["baselines"]["ground_truth_resample"]["mmd"]
            < results["baselines"]["uniform_in_box"]["mmd"])
    # Annealed 30 -> 3 over the 300 updates: at 3 when the diagnostic runs.
    assert results["agent_configs"]["dqs"]["temperature_anneal_steps"] == 300
    assert results["agent_configs"]["dqs"]["energy_action"] == "clip"
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

"""End-to-end: the GMM-40 experiment binary writes its results and figure."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gmm_experiment_small_run(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.gmm", "--num_steps=600",
         "--seed_steps=300", "--chunk_size=300", "--num_seeds=2",
         "--num_rollouts=100", "--hidden_dim=32", "--num_mc_samples=8",
         "--num_sampling_steps=5", f"--workdir={tmp_path}"],
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
    assert os.path.getsize(tmp_path / "gmm_figure.png") > 10_000
    assert os.path.exists(tmp_path / "final_positions.npz")


def test_bad_flags_are_refused(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.gmm", "--num_seeds=0",
         f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
        timeout=120)
    assert out.returncode != 0 and "num_seeds" in out.stderr

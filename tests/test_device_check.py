"""The device check runs on CPU at tiny sizes and writes what it measured."""

import json
import os
import subprocess
import sys

from tests.test_train import ROOT


def test_device_check_tiny_writes_its_json_and_table(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.bench.device_check", "--tiny",
         "--num_seeds=2", f"--out={tmp_path}"], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (name,) = [n for n in os.listdir(tmp_path) if n.endswith(".json")]
    assert name == "cpu_cpu_tiny.json"
    result = json.load(open(tmp_path / name))
    assert result["device"]["backend"] == "cpu" and result["tiny"]
    assert result["matmul_gflops"]["float32"] > 0
    updates = {(u["agent"], u["num_mc_samples"], u["precision"]): u
               for u in result["updates"]}
    assert {("dqs", 4, "float32"), ("dqs", 4, "bfloat16")} <= set(updates)
    assert {a for a, _, _ in updates} == {"dqs", "sac", "td3", "qsm"}
    assert all(u["finite"] and u["update_s_median"] > 0
               for u in result["updates"])
    one, many = result["loops"]
    assert (one["num_seeds"], many["num_seeds"]) == (1, 2)
    for loop in (one, many):
        assert set(loop["ms_per_step"]) == {"env", "act", "update", "host"}
        assert all(v > 0 for k, v in loop["ms_per_step"].items()
                   if k != "host")
    p = result["projections"]
    # Consistent with its parts: the sweep total sums the agents' hours.
    assert abs(p["paper_sweep_total_hours"]
               - sum(p["paper_sweep_hours"].values())) < 1e-9
    assert p["paper_sweep_hours"]["dqs"] > 0 and p["maze_paper_total_hours"] > 0
    table = (tmp_path / "cpu_cpu_tiny.md").read_text()
    assert "Projected device-hours" in table and "| dqs | 4 |" in table

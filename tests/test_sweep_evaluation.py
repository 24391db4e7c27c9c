"""experiments.sweep_evaluation: pairing, caching and the paired summary."""

import json
import os

import numpy as np
import pytest

from experiments.dmc import evaluate_sweep as sweep_evaluation
from dqs_jax.training import files
from experiments.dmc import sweep


def make_sweep(root, finished, max_steps=100):
    """A sweep.json of 2 agents x 1 task x 3 seeds; `finished[(agent,
    seed)]` is the last evaluation's mean return (others stop early)."""
    agents_, seeds = ["dqs@a", "dqs@b"], [0, 1, 2]
    files.write_json(os.path.join(root, "sweep.json"), dict(
        tasks=["dmc:t"], agents=agents_, seeds=seeds, max_steps=max_steps,
        eval_episodes=3))
    for agent in agents_:
        for seed in seeds:
            run = sweep.sweep_run_dir(root, agent, "dmc:t", seed)
            os.makedirs(run)
            last = (max_steps if (agent, seed) in finished
                    else max_steps // 2)
            with open(os.path.join(run, "metrics.jsonl"), "w") as f:
                f.write(json.dumps({"kind": "eval", "step": last,
                                    "eval_return_mean": finished.get(
                                        (agent, seed), 0.0)}) + "\n")


def test_pairs_caches_and_summarises(tmp_path):
    trained = {("dqs@a", 0): 10.0, ("dqs@a", 1): 20.0, ("dqs@a", 2): 30.0,
               ("dqs@b", 1): 5.0}
    make_sweep(str(tmp_path), trained)
    calls = []

    def fake(workdir, episodes, overrides):
        calls.append(workdir)
        seed = int(workdir[-1])
        return {"step": 100, "mean": 2.0 * (seed + 1) + 10.0 * seed,
                "returns": [0.0] * episodes}

    overrides = {"eval_start": "hashed"}
    result = sweep_evaluation.reevaluate_sweep(str(tmp_path), overrides,
                                               evaluate=fake, log=lambda s: 0)
    assert len(calls) == 4 and len(result["runs"]) == 4
    assert result["eval_episodes"] == 3
    a = next(s for s in result["summary"] if s["agent"] == "dqs@a")
    changed = np.array([2.0, 14.0, 26.0])
    diff = changed - np.array([10.0, 20.0, 30.0])
    assert a["runs"] == 3
    assert a["changed_mean"] == pytest.approx(changed.mean())
    assert a["trained_std"] == pytest.approx(10.0)
    assert a["diff_mean"] == pytest.approx(diff.mean())
    assert a["diff_t"] == pytest.approx(
        diff.mean() / (diff.std(ddof=1) / np.sqrt(3)))
    b = next(s for s in result["summary"] if s["agent"] == "dqs@b")
    assert b["runs"] == 1 and np.isnan(b["diff_t"])
    everything = next(s for s in result["summary"] if s["agent"] == "all")
    assert everything["runs"] == 4
    assert "eval_start-hashed" in sweep_evaluation.markdown_table(result)
    # Cached: a rerun evaluates nothing again.
    again = sweep_evaluation.reevaluate_sweep(str(tmp_path), overrides,
                                              evaluate=fake, log=lambda s: 0)
    assert len(calls) == 4 and again["runs"] == result["runs"]


def test_checkpoint_and_evaluation_steps_must_agree(tmp_path):
    make_sweep(str(tmp_path), {("dqs@a", 0): 1.0})
    with pytest.raises(ValueError, match="newest checkpoint"):
        sweep_evaluation.reevaluate_sweep(
            str(tmp_path), {"eval_start": "hashed"},
            evaluate=lambda *a: {"step": 50, "mean": 0.0}, log=lambda s: 0)
    with pytest.raises(ValueError, match="at least one"):
        sweep_evaluation.settings_tag({})

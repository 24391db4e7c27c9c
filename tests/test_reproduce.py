"""experiments.reproduce: the sweep's runs, presets, status and skipping."""

import json
import os
import subprocess
import sys

from absl import app
import pytest

from dqs_jax import agents
from experiments.dmc import sweep as reproduce


def write_evals(run_dir, steps, returns):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        for step, ret in zip(steps, returns):
            f.write(json.dumps({"kind": "eval", "step": step,
                                "eval_return_mean": ret,
                                "wall_time": step / 100}) + "\n")


def test_paper_preset_is_the_full_grid():
    spec = reproduce.resolve("paper")
    runs = reproduce.commands(spec, "W")
    assert len(runs) == 8 * len(agents.agent_names()) * 5
    assert spec["max_steps"] == 250_000
    # Evaluations land exactly on 100k and 250k.
    assert 100_000 % spec["eval_every"] == 0
    assert 250_000 % spec["eval_every"] == 0
    cmd = runs[0]["cmd"]
    assert "--env=dmc:cheetah-run" in cmd and "--max_steps=250000" in cmd
    assert runs[0]["workdir"] == os.path.join("W", runs[0]["agent"],
                                              "dmc_cheetah-run", "seed_0")
    assert len({r["workdir"] for r in runs}) == len(runs)


def test_cpu_preset_is_the_100k_comparison():
    runs = reproduce.commands(reproduce.resolve("cpu"), "W")
    assert len(runs) == 2 * 3 * 3
    assert {r["agent"] for r in runs} == {"dqs", "sac", "td3"}
    assert all("--max_steps=100000" in r["cmd"] and "--eval_every=10000"
               in r["cmd"] and "--hidden_dims=128,128" in r["cmd"]
               for r in runs)


def test_overrides_and_validation():
    spec = reproduce.resolve("cpu", tasks=["dmc:cartpole-balance"],
                             agent_names=["sac"], seeds=["4"], max_steps=7)
    runs = reproduce.commands(spec, "W", extra=["--log_interval=5"])
    assert len(runs) == 1
    assert {"--agent=sac", "--seed=4", "--max_steps=7",
            "--log_interval=5"} <= set(runs[0]["cmd"])
    # The DQS-only flag of the preset is not given to SAC.
    assert "--num_mc_samples=32" not in runs[0]["cmd"]
    dqs = reproduce.commands(reproduce.resolve("cpu"), "W")
    assert all("--num_mc_samples=32" in r["cmd"] for r in dqs
               if r["agent"] == "dqs")
    with pytest.raises(app.UsageError, match="unknown agents"):
        reproduce.resolve("cpu", agent_names=["dqn"])
    with pytest.raises(app.UsageError, match="seeds"):
        reproduce.resolve("cpu", seeds=["x"])


def test_variants_add_their_flags_and_folders():
    runs = reproduce.commands(reproduce.resolve(
        "parity", tasks=["dmc:walker-walk"], seeds=["2"]), "W")
    assert [r["agent"] for r in runs] == ["dqs@reference", "dqs@previous"]
    reference, previous = (set(r["cmd"]) for r in runs)
    assert {"--agent=dqs", "--num_mc_samples=32", "--seed=2"} <= reference
    assert previous - reference == {
        "--kernel_init=lecun_normal", "--score_input_activation=none",
        f"--workdir={runs[1]['workdir']}"}
    assert runs[1]["workdir"] == os.path.join(
        "W", "dqs@previous", "dmc_walker-walk", "seed_2")
    with pytest.raises(app.UsageError, match="unknown variants"):
        reproduce.resolve("cpu", agent_names=["dqs@previous"])
    with pytest.raises(app.UsageError, match="unknown agents"):
        reproduce.resolve("parity", agent_names=["dqn@previous"])


def test_init_preset_varies_only_the_sac_initialisation():
    runs = reproduce.commands(reproduce.resolve("init", seeds=["1"]), "W")
    assert len(runs) == 4
    by_label = {(r["agent"], r["env"]): set(r["cmd"]) for r in runs}
    flax = by_label[("sac@lecun_normal", "dmc:cheetah-run")]
    ortho = by_label[("sac@orthogonal", "dmc:cheetah-run")]
    assert "--agent=sac" in flax and "--max_steps=30000" in flax
    assert {c.split("=")[0] for c in ortho - flax} == {"--kernel_init",
                                                       "--workdir"}
    assert "--kernel_init=orthogonal" in ortho
    assert agents.get_agent("sac").config_cls().kernel_init == "lecun_normal"


def test_status_and_skipping_finished_runs(tmp_path, capsys):
    spec = reproduce.resolve("smoke", agent_names=["dqs"], seeds=["0", "1"],
                             max_steps=100)
    runs = reproduce.commands(spec, str(tmp_path))
    write_evals(runs[0]["workdir"], [50, 100], [1.0, 2.5])
    write_evals(runs[1]["workdir"], [50], [0.5])
    assert reproduce.progress(runs[0], 100) == dict(state="done", step=100,
                                                    ret=2.5)
    assert reproduce.progress(runs[1], 100)["state"] == "partial"
    table = reproduce.status_table(runs, 100)
    assert "1 done, 1 partial of 2 runs" in table
    # Only the unfinished run is executed (here its command just fails).
    runs[1]["cmd"] = [sys.executable, "-c", "import sys; sys.exit(3)"]
    runs[0]["cmd"] = [sys.executable, "-c", "raise SystemExit('ran')"]
    assert reproduce.execute(runs, 100) == 1
    err = capsys.readouterr().err
    assert "exit 3" in err and "ran" not in err


def test_dry_run_cli():
    out = subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", "--preset=smoke",
         "--workdir=W", "--dry_run"], capture_output=True, text=True,
        timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 6 and all("experiments.train" in l for l in lines)
    assert not os.path.exists("W")


def test_jobs_run_concurrently_single_threaded(tmp_path):
    """With jobs=2 the first run can wait for a file the second writes (in
    series it would give up), and each run sees single-threaded XLA."""
    spec = reproduce.resolve("smoke", agent_names=["dqs"], seeds=["0", "1"],
                             max_steps=100)
    runs = reproduce.commands(spec, str(tmp_path))
    flag, seen = tmp_path / "second_started", tmp_path / "xla_flags"
    runs[0]["cmd"] = [sys.executable, "-c", (
        "import os, sys, time\n"
        f"for _ in range(600):\n"
        f"    if os.path.exists({str(flag)!r}): sys.exit(0)\n"
        "    time.sleep(0.1)\n"
        "sys.exit(4)")]
    runs[1]["cmd"] = [sys.executable, "-c", (
        "import os\n"
        f"open({str(seen)!r}, 'w').write(os.environ.get('XLA_FLAGS', ''))\n"
        f"open({str(flag)!r}, 'w').close()")]
    assert reproduce.execute(runs, 100, jobs=2) == 0
    assert reproduce.SINGLE_THREAD_XLA in seen.read_text()
    with pytest.raises(ValueError, match="jobs"):
        reproduce.execute(runs, 100, jobs=0)
    assert "XLA_FLAGS" not in reproduce.job_environment(1) or (
        reproduce.job_environment(1)["XLA_FLAGS"] == os.environ["XLA_FLAGS"])

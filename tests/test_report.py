"""rl_stats against closed forms; experiments.report on a tiny fake sweep."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from experiments.dmc import stats as rl_stats
from experiments.dmc import report_writer
from experiments.dmc import sweep_results as sr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_iqm_closed_forms():
    x = np.array([9.0, -3.0, 1.0, 100.0, 2.0, 4.0, -50.0, 3.0])
    assert rl_stats.iqm(x) == pytest.approx(np.mean([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(0)
    for n in (4, 12, 40):
        y = rng.normal(size=n)
        assert rl_stats.iqm(y) == pytest.approx(stats.trim_mean(y, 0.25))
    # n = 6: the middle half [1.5, 4.5]: half of 1, all of 2 and 3, half of 4.
    assert rl_stats.iqm(np.arange(6.0)) == pytest.approx(7.5 / 3)
    assert rl_stats.iqm([7.0]) == 7.0
    # A [runs, tasks] matrix is pooled; NaN (missing runs) are ignored.
    assert rl_stats.iqm([[1.0, np.nan], [2.0, 3.0]]) == pytest.approx(2.0)


def test_mean_score_weighs_tasks_equally():
    scores = np.array([[1.0, 10.0], [3.0, np.nan]])
    assert rl_stats.mean_score(scores) == pytest.approx((2.0 + 10.0) / 2)


def test_bootstrap_ci_contains_point_and_shrinks_with_seeds():
    rng = np.random.default_rng(1)
    widths = []
    for runs in (5, 50):
        scores = rng.normal(0.5, 0.1, size=(runs, 4))
        point, lower, upper = rl_stats.stratified_bootstrap_ci(
            scores, rl_stats.iqm, num_samples=500, seed=0)
        assert lower < point < upper
        widths.append(upper - lower)
    assert widths[1] < widths[0] / 2
    again = rl_stats.stratified_bootstrap_ci(scores, rl_stats.iqm, 500, seed=0)
    assert again[1] == lower and again[2] == upper  # fixed seed: reproducible


def test_stratified_resample_never_mixes_tasks():
    # Task 0 scores are 0..2, task 1 scores 100..103 (one run missing): a
    # pooled resample would put values of one task into the other's column.
    scores = np.array([[0.0, 100.0], [1.0, 101.0], [2.0, np.nan],
                       [2.0, 103.0]])
    samples = rl_stats.stratified_resamples(scores, 300,
                                            np.random.default_rng(0))
    assert samples.shape == (300, 4, 2)
    assert set(np.unique(samples[:, :, 0])) <= {0.0, 1.0, 2.0}
    assert set(np.unique(samples[:, [0, 1, 3], 1])) <= {100.0, 101.0, 103.0}
    assert np.isnan(samples[:, 2, 1]).all()
    assert len(np.unique(samples[:, :, 0])) == 3  # it does resample


def test_performance_profile_hand_matrix():
    scores = np.array([[0.1, 0.5], [0.3, 0.9], [0.6, np.nan]])
    profile = rl_stats.performance_profile(scores, [0.0, 0.2, 0.55, 0.6, 1.0])
    # Per task fraction above tau, averaged over the two tasks.
    expected = [(3 / 3 + 2 / 2) / 2, (2 / 3 + 2 / 2) / 2,
                (1 / 3 + 1 / 2) / 2, (0 / 3 + 1 / 2) / 2, 0.0]
    np.testing.assert_allclose(profile, expected)


def test_task_means_ci_per_column():
    mean, lower, upper = rl_stats.task_means_ci(
        np.array([[1.0, 2.0, np.nan], [3.0, 2.0, np.nan]]), num_samples=200)
    np.testing.assert_allclose(mean[:2], [2.0, 2.0])
    assert lower[0] >= 1.0 and upper[0] <= 3.0 and lower[1] == upper[1] == 2.0
    assert np.isnan(mean[2])


SPEC_BEST_OTHER = {  # The paper's Tables 1-2 (docs/algorithm.md §10): DQS, best other agent.
    "cheetah-run": (492.61, 683.64, "dipo", 338.93, "dipo", 650.98),
    "finger-spin": (826.00, 835.00, "qsm", 757.15, "qsm", 874.52),
    "finger-turn_hard": (253.72, 361.46, "sac", 200.02, "td3", 319.80),
    "fish-swim": (224.27, 221.67, "ddpg", 87.40, "qsm", 204.20),
    "hopper-hop": (0.33, 0.66, "td3", 5.34, "sac", 56.47),
    "quadruped-run": (199.26, 277.63, "dacer", 221.39, "dacer", 466.77),
    "reacher-hard": (914.15, 974.05, "dipo", 766.20, "dipo", 894.88),
    "walker-run": (547.39, 679.17, "qsm", 413.53, "qsm", 605.98),
}


def test_paper_numbers_match_spec():
    paper = sr.paper_results()
    assert len(paper) == 8 * 8 * 2
    for task, (d100, d250, a100, o100, a250, o250) in SPEC_BEST_OTHER.items():
        env = "dmc:" + task
        assert paper[(env, "dqs", 100000)] == d100
        assert paper[(env, "dqs", 250000)] == d250
        for step, agent, value in ((100000, a100, o100), (250000, a250, o250)):
            others = {a: r for (t, a, s), r in paper.items()
                      if t == env and s == step and a != "dqs"}
            assert max(others, key=others.get) == agent
            assert others[agent] == value


def _write_run(path, steps, returns):
    os.makedirs(path)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"kind": "train", "step": 1000,
                            "episode_return": 1.0}) + "\n")
        for i, (step, ret) in enumerate(zip(steps, returns)):
            f.write(json.dumps({"kind": "eval", "step": step,
                                "eval_return_mean": ret,
                                "wall_time": 10.0 * (i + 1)}) + "\n")


@pytest.fixture
def fake_sweep(tmp_path):
    """dqs, sac x cheetah-run, walker-run x seeds 0-2, evaluated every 50k.
    Return = base + step / 1000 + 10 * seed. sac/walker-run/seed_2 stopped at
    150k; dqs/walker-run/seed_2 never ran."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({
        "tasks": ["dmc:cheetah-run", "dmc:walker-run"],
        "agents": ["dqs", "sac"], "seeds": [0, 1, 2], "max_steps": 250000}))
    base = {("dqs", "cheetah-run"): 300, ("dqs", "walker-run"): 200,
            ("sac", "cheetah-run"): 150, ("sac", "walker-run"): 100}
    for (agent, task), b in base.items():
        for seed in range(3):
            last = {("sac", "walker-run", 2): 150000}.get(
                (agent, task, seed), 250000)
            if (agent, task, seed) == ("dqs", "walker-run", 2):
                continue
            steps = list(range(50000, last + 1, 50000))
            _write_run(str(sweep / agent / f"dmc_{task}" / f"seed_{seed}"),
                       steps, [b + s / 1000 + 10 * seed for s in steps])
    return sweep


def test_report_end_to_end(fake_sweep, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.report", f"--sweep={fake_sweep}",
         f"--out={out}", "--bootstrap_samples=200"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "report.md").read_text()
    # dqs cheetah-run at 100k: 400, 410, 420 -> 410.0 ± 10.0 (ddof=1).
    assert "| dmc:cheetah-run | 410.0 ± 10.0 | 492.61 |" in md
    # sac walker-run at 250k: seed 2 stopped at 150k -> 250, 260, 270.
    assert "260.0 ± 10.0 (at 150k)" in md
    # dqs walker-run has two seeds: 300, 310 at 100k.
    assert "305.0 ± 7.1 (n=2)" in md
    assert "679.17 (dqs)" in md and "arXiv:2410.01312" in md
    assert "dqs/dmc_walker-run/seed_2 (not started)" in md
    with open(out / "report.csv") as f:
        rows = {(r["target_step"], r["task"]): r for r in csv.DictReader(f)}
    cheetah = rows[("100000", "dmc:cheetah-run")]
    assert float(cheetah["dqs_mean"]) == 410.0
    assert float(cheetah["dqs_std"]) == 10.0 and cheetah["dqs_n"] == "3"
    assert float(cheetah["dqs_paper"]) == 492.61
    walker = rows[("250000", "dmc:walker-run")]
    assert walker["sac_step"] == "150000" and float(walker["sac_mean"]) == 260
    assert float(walker["sac_paper"]) == 569.28
    with open(out / "aggregates.csv") as f:
        agg = {(r["target_step"], r["agent"]): r for r in csv.DictReader(f)}
    dqs = agg[("100000", "dqs")]
    # Cheetah 0.40, 0.41, 0.42 and walker 0.30, 0.31 (normalised).
    assert float(dqs["mean"]) == pytest.approx((0.41 + 0.305) / 2)
    # 5 values: the middle half [1.25, 3.75] -> (.75 * .31 + .40 + .75 * .41)
    assert float(dqs["iqm"]) == pytest.approx(0.94 / 2.5)
    assert float(dqs["iqm_lower"]) <= float(dqs["iqm"]) <= float(
        dqs["iqm_upper"])
    assert float(dqs["paper_mean"]) == pytest.approx((492.61 + 547.39) / 2000)
    assert agg[("250000", "sac")]["short_cells"] == "dmc:walker-run at 150k"
    # Per seed: 400, 410, 420 at 100k; sac walker-run seed 2 at 150k.
    assert "| dmc:cheetah-run | dqs | 400.0 | 410.0 | 420.0 |" in md
    assert "| dmc:walker-run | dqs | 450.0 | 460.0 | – |" in md
    assert "| dmc:walker-run | sac (at 150k) | 250.0 | 260.0 | 270.0 |" in md
    with open(out / "per_seed.csv") as f:
        seeds = [r for r in csv.DictReader(f) if r["agent"] == "sac"
                 and r["task"] == "dmc:walker-run"
                 and r["target_step"] == "250000"]
    assert [(r["seed"], r["step"], float(r["return"])) for r in seeds] == [
        ("0", "150000", 250.0), ("1", "150000", 260.0),
        ("2", "150000", 270.0)]
    # Ordering: ours and the paper's; the margin 410 - 260 with its CI.
    line = next(x for x in md.splitlines() if x.startswith(
        "| dmc:cheetah-run | dqs (410.0) > sac (260.0) |"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[3] == "dqs (492.6) > sac (216.9)" and cells[4] == "yes"
    point, interval = cells[5].split(" [")
    lower, upper = map(float, interval.rstrip("]").split(", "))
    assert float(point) == 150.0 and 130.0 <= lower < 150.0 < upper <= 170.0
    # Wall times (10 s per eval row here) are in wall_times.csv only.
    assert "wall_times.csv" in md and "minutes" not in md
    with open(out / "wall_times.csv") as f:
        walls = {(r["agent"], r["task"], r["seed"]): float(r["wall_minutes"])
                 for r in csv.DictReader(f)}
    assert len(walls) == 11
    assert walls[("sac", "dmc:walker-run", "2")] == pytest.approx(0.5)
    assert walls[("dqs", "dmc:cheetah-run", "0")] == pytest.approx(50 / 60)
    for name in ("learning_curves.png", "performance_profile.png"):
        assert os.path.getsize(out / name) > 10_000


def test_default_steps_stop_at_the_sweeps_length(fake_sweep):
    sweep = sr.load_sweep(str(fake_sweep))
    assert sr.default_targets(sweep) == [100000, 250000]
    for max_steps, expected in ((100000, [100000]), (30000, [30000]),
                                (None, [100000, 250000])):
        sweep.config = {} if max_steps is None else {"max_steps": max_steps}
        assert sr.default_targets(sweep) == expected


def test_missing_or_empty_sweep_is_a_one_line_error(tmp_path):
    # `python -m experiments.report` exits with status 1 and prints the
    # SystemExit message, one line.
    missing = str(tmp_path / "nope")
    with pytest.raises(SystemExit) as error:
        report_writer.run(missing, missing, [100000], 10, 0)
    assert error.value.code == (
        f"report: sweep folder {missing!r} does not exist.")
    (tmp_path / "empty" / "dqs" / "dmc_cheetah-run" / "seed_0").mkdir(
        parents=True)
    with pytest.raises(SystemExit, match="report: no run with evaluation"):
        report_writer.run(str(tmp_path / "empty"), str(tmp_path / "o"),
                          [100000], 10, 0)


def test_variant_labels_are_agents_without_paper_numbers(tmp_path):
    """A sweep of `dqs@reference` / `dqs@previous` (the parity preset)
    reports each label as an agent; the paper has no number for them."""
    sweep = tmp_path / "sweep"
    labels = ["dqs@reference", "dqs@previous"]
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({
        "tasks": ["dmc:cheetah-run"], "agents": labels, "seeds": [0, 1],
        "max_steps": 10000}))
    for i, label in enumerate(labels):
        for seed in range(2):
            _write_run(str(sweep / label / "dmc_cheetah-run" / f"seed_{seed}"),
                       [5000, 10000], [100 * i + seed, 100 * i + 10 + seed])
    out = subprocess.run(
        [sys.executable, "-m", "experiments.report", f"--sweep={sweep}",
         "--steps=10000"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with open(sweep / "report.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["dqs@reference_mean"]) == pytest.approx(10.5)
    assert float(row["dqs@previous_mean"]) == pytest.approx(110.5)
    assert row["dqs@previous_paper"] == ""


def test_curve_legend_lists_only_what_is_drawn():
    from experiments.dmc import report_plots
    labels = lambda hs: [h.get_label() for h in hs]  # noqa: E731
    colors = {"dqs": "C0", "sac": "C1"}
    assert labels(report_plots.legend_handles(colors, False, False)) == [
        "dqs", "sac"]
    both = labels(report_plots.legend_handles(colors, True, True))
    assert both[:2] == ["dqs", "sac"] and len(both) == 4
    assert "dashed" in both[2] and "paper" in both[3]


def test_committed_cpu_report_regenerates_from_its_logs(tmp_path):
    """results/dmc_cpu/ (docs/results/dmc.md) from the committed logs of
    its 18 runs: the same tables, byte for byte."""
    committed = os.path.join(ROOT, "results", "dmc_cpu")
    report_writer.write_report(os.path.join(committed, "logs"),
                               str(tmp_path))
    for name in ("report.csv", "per_seed.csv", "aggregates.csv"):
        with open(tmp_path / name) as a, open(
                os.path.join(committed, name)) as b:
            assert a.read() == b.read(), name
    with open(tmp_path / "report.md") as a, open(
            os.path.join(committed, "report.md")) as b:
        assert a.read().split("\n")[1:] == b.read().split("\n")[1:]

r"""Tables, aggregate metrics and plots of a sweep folder.

    python -m experiments.report --sweep=runs/dmc [--out=runs/dmc]

Reads `<sweep>/<agent>/<env>/seed_<i>/metrics.jsonl` (finished or partial
runs; see `experiments.sweep_results`) and writes into `--out` (default: the
sweep folder):
  report.md, report.csv   per task and agent, the evaluation return mean ±
                          std over seeds at each of `--steps` (the paper's
                          Tables 1-2 layout), beside the paper's numbers;
                          in report.md also per-seed returns, each task's
                          ordering of agents beside the paper's;
  per_seed.csv            every seed's return at each of `--steps`;
  wall_times.csv          each run's training wall time;
  aggregates.csv          per agent, mean and IQM of normalised scores with
                          stratified-bootstrap 95% CIs (also in report.md);
  learning_curves.png, performance_profile.png.
A missing sweep folder, or one without evaluated runs, exits with status 1
and a one-line message.
"""

from absl import app, flags

from experiments.dmc import report_writer

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep folder to report on.")
_OUT = flags.DEFINE_string("out", None, "Output folder (default: --sweep).")
_STEPS = flags.DEFINE_list(
    "steps", None, "Env steps of the tables and aggregates (default: the "
    "paper's 100k and 250k, those up to the sweep's max_steps).")
_BOOTSTRAP_SAMPLES = flags.DEFINE_integer(
    "bootstrap_samples", 2000, "Stratified bootstrap resamples per CI.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")


def main(argv):
    if len(argv) > 1:
        raise SystemExit(f"report: unexpected arguments {argv[1:]}.")
    if not _SWEEP.value:
        raise SystemExit("report: --sweep is required.")
    try:
        targets = [int(s) for s in _STEPS.value or []]
    except ValueError:
        raise SystemExit(f"report: --steps must be integers, got "
                         f"{_STEPS.value}.") from None
    paths = report_writer.run(_SWEEP.value, _OUT.value or _SWEEP.value,
                              targets, _BOOTSTRAP_SAMPLES.value, _SEED.value)
    print("\n".join(paths))


if __name__ == "__main__":
    app.run(main)

r"""Evaluates every finished run of a sweep again with evaluation-only
settings changed, paired with each run's own last evaluation:

    python -m experiments.evaluate_sweep --sweep=runs/parity \
        --set=eval_start=hashed

Each run is evaluated as `experiments.evaluate_run` does (its newest
checkpoint, the episodes of its own last evaluation) and cached in the run's
folder, so rerunning after more runs finish evaluates only the new ones.
Prints a table per agent and task (mean ± std over seeds as trained and
changed, and the paired difference with its t statistic) and writes
`<sweep>/reevaluation_<tag>.json` and `.md`.
"""

import os
import sys

from absl import app, flags

from dqs_jax import agents
from experiments import recovery, run_io, sweep
from experiments.run_evaluation import parse_overrides
from experiments.sweep_evaluation import (markdown_table, reevaluate_sweep,
                                          settings_tag)

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep folder (with sweep.json).")
_SET = flags.DEFINE_multi_string("set", [], "field=value of an "
                                 "evaluation-only setting (repeatable).")
_EPISODES = flags.DEFINE_integer("eval_episodes", None,
                                 "Episodes per run (default: the sweep's).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _SWEEP.value or not _SET.value:
        raise app.UsageError("--sweep and at least one --set are required.")
    try:
        spec = run_io.read_json(os.path.join(_SWEEP.value, "sweep.json"))
        names = {sweep.split_label(label)[0] for label in spec["agents"]}
        if len(names) != 1:
            raise ValueError(f"the sweep mixes agents {sorted(names)}; "
                             "settings are per agent config.")
        overrides = parse_overrides(
            _SET.value, agents.get_agent(names.pop()).config_cls)
        result = reevaluate_sweep(_SWEEP.value, overrides, _EPISODES.value)
    except (OSError, ValueError, KeyError,
            recovery.NoIntactCheckpointError) as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    table = markdown_table(result)
    print(table)
    base = os.path.join(_SWEEP.value,
                        f"reevaluation_{settings_tag(overrides)}")
    run_io.write_json(base + ".json", result)
    with open(base + ".md", "w") as f:
        f.write(table + "\n")
    print(f"Wrote {os.path.abspath(base)}.json and .md "
          f"({len(result['runs'])} finished runs).")


if __name__ == "__main__":
    app.run(main)

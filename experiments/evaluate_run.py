r"""Evaluates a trained run of `experiments.train` again, from its newest
intact checkpoint, optionally with some of the agent's evaluation-only
settings changed (e.g. DQS's `eval_start`):

    python -m experiments.evaluate_run --workdir=runs/cheetah \
        --eval_episodes=10 --set=eval_start=hashed

The episodes are those of the run's own evaluation at that step (same eval
env seed), so with no `--set` the mean return equals the run's last
evaluation row when `--eval_episodes` is the run's. Prints the returns and,
with `--out`, writes them as JSON. The run's files are not changed.

Only settings that leave the trained parameters meaningful may be changed:
`ALLOWED` (per agent config field).
"""

import os
import sys

from absl import app, flags

from dqs_jax import agents
from experiments import recovery, run_io
from experiments.run_evaluation import (ALLOWED, evaluate_run,
                                        parse_overrides)

_WORKDIR = flags.DEFINE_string("workdir", None, "A single-seed run's folder "
                               "(with config.json and checkpoints/).")
_EPISODES = flags.DEFINE_integer("eval_episodes", 10, "Episodes.")
_SET = flags.DEFINE_multi_string(
    "set", [], f"field=value for one of {ALLOWED} (repeatable).")
_OUT = flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value or _EPISODES.value < 1:
        raise app.UsageError("--workdir is required; --eval_episodes >= 1.")
    try:
        flat = run_io.read_json(os.path.join(_WORKDIR.value, "config.json"))
        spec = agents.get_agent(flat["flat_config"]["agent"])
        overrides = parse_overrides(_SET.value, spec.config_cls)
        result = evaluate_run(_WORKDIR.value, _EPISODES.value, overrides)
    except (OSError, ValueError, recovery.NoIntactCheckpointError) as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"step {result['step']}, {overrides or 'as trained'}: return "
          f"{result['mean']:.1f} ± {result['std']:.1f} over "
          f"{len(result['returns'])} episodes", flush=True)
    if _OUT.value:
        run_io.write_json(_OUT.value, result)
        print(f"Wrote {os.path.abspath(_OUT.value)}")


if __name__ == "__main__":
    app.run(main)

"""`python -m experiments.report`: a sweep's report (`experiments.dmc.report`)."""

from absl import app, flags

from experiments.dmc import report
from experiments.dmc.report import main

flags.adopt_module_key_flags(report)  # Its flags in --help.

if __name__ == "__main__":
    app.run(main)

"""`python -m experiments.report`: a sweep's report (`experiments.dmc.report`)."""

from absl import app

from experiments.dmc.report import main

if __name__ == "__main__":
    app.run(main)

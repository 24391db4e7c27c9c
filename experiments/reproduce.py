"""`python -m experiments.reproduce`: the DMC sweep (`experiments.dmc.reproduce`)."""

from absl import app

from experiments.dmc.reproduce import main

if __name__ == "__main__":
    app.run(main)

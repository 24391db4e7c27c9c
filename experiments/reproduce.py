"""`python -m experiments.reproduce`: the DMC sweep (`experiments.dmc.reproduce`)."""

from absl import app, flags

from experiments.dmc import reproduce
from experiments.dmc.reproduce import main

flags.adopt_module_key_flags(reproduce)  # Its flags in --help.

if __name__ == "__main__":
    app.run(main)

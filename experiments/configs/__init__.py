"""Config files and presets, loaded by one mechanism (`loader`): a run of
`experiments.train` (`dmc.py`, agent after `:`), the DMC sweeps
(`sweeps/<preset>.py`), the GMM-40 and maze experiments (`gmm/`, `maze/`).
Each file builds its values from the code's settings dataclasses, so that
defaults and validation have one source; `agent_flags` turns those
dataclasses into absl flags."""

"""`ml_collections` config files of the paper's experiments (load with
`--config=experiments/configs/<name>.py`), built from the dataclass defaults
of the code so that defaults have one source."""

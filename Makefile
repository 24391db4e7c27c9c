# Two commands on a fresh machine: `make run` (the main job) and `make test`.
# Each creates .venv from requirements.txt on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup run test test-slow test-all demo clean

$(STAMP): requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# CPU-sized DQS on cartpole-balance: about 10 minutes on 2 cores.
RUN_FLAGS ?= --env=dmc:cartpole-balance --max_steps=40000 --seed_steps=2000 \
	--batch_size=128 --num_mc_samples=32 --hidden_dims=128,128 \
	--critic_hidden_dims=128,128 --eval_every=5000 --eval_episodes=5 \
	--checkpoint_every=5000 --log_interval=1000 --workdir=runs/make_run

## The main job on a built-in default.
run: $(STAMP)
	$(PY) -m experiments.train $(RUN_FLAGS)

## The fast suite (CPU, a few minutes).
test: $(STAMP)
	$(PY) -m pytest -q -n auto -m "not slow" $(PYTEST_ARGS)

## Long end-to-end runs only.
test-slow: $(STAMP)
	$(PY) -m pytest -q -n auto -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q -n auto $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m experiments.gmm.demo --workdir=runs/gmm_demo

clean:
	rm -rf $(VENV) runs *.egg-info

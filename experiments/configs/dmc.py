"""The paper's DeepMind Control experiment (Tables 1-2, docs/algorithm.md §10): 250k
environment steps, evaluation every 10k (10 episodes), the agent at its own
defaults (DQS: docs/algorithm.md §9, K = 1000).

    python -m experiments.train --config=experiments/configs/dmc.py \
        --config.run.env=dmc:walker-run --config.agent.num_mc_samples=100
    python -m experiments.train --config=experiments/configs/dmc.py:sac

The part after `:` names the agent (default dqs).
"""

from experiments.configs import loader


def get_config(agent: str = "dqs"):
    return loader.experiment_config(
        agent or "dqs",
        run=dict(env="dmc:cheetah-run", max_steps=250_000, seed_steps=10_000,
                 batch_size=256, replay_size=250_000, eval_every=10_000,
                 eval_episodes=10, checkpoint_every=10_000))

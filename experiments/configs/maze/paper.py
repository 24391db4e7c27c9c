"""The maze as the paper runs it (a GPU): DQS and the four baselines of
its figure, 5 seeds, 250k steps with one update per step, every agent's
own network widths and DQS's K, the authors' temperature schedule
(10 -> 1), ending at 1 on the run's last update (250k steps less 10k seed
steps = 240k updates)."""

from dqs_jax.dqs_config import DQSConfig
from experiments.configs.loader import as_config
from experiments.maze.settings import MazeSettings


def get_config():
    dqs = DQSConfig()
    return as_config(MazeSettings(
        agents=("dqs", "sac", "qsm", "dacer", "dipo"), num_seeds=5,
        max_steps=250_000, seed_steps=10_000, update_every=1, batch_size=256,
        replay_size=250_000, hidden_dim=dqs.hidden_dims[0],
        num_mc_samples=dqs.num_mc_samples, init_temperature=10.0,
        final_temperature=1.0, temperature_anneal_steps=240_000,
        eval_episodes=100, plot_episodes=30, train_eval_every=10_000,
        train_eval_episodes=10))

"""Host-side progress of one seed of a run (`SeedProgress`: counters,
key, observation, metric sums; all of it checkpointed), the rows it writes
(train rows at episode ends, evaluation rows) and the deterministic
evaluation of N seeds in lockstep."""

import dataclasses
from typing import Any, Dict, List

import numpy as np



@dataclasses.dataclass
class SeedProgress:
    """Host-side state of one seed between checkpoints."""

    env_step: int
    episode: int
    episode_return: float
    episode_length: int
    observation: np.ndarray
    key: np.ndarray
    num_updates: int
    metric_sums: Dict[str, float]
    metric_count: int
    last_episode_return: float
    last_eval_return: float
    wall_time: float  # Seconds spent in earlier sessions of this run.

    def to_tree(self) -> Dict[str, Any]:
        tree = {f.name: np.asarray(getattr(self, f.name))
                for f in dataclasses.fields(self) if f.name != "metric_sums"}
        tree["metric_sums"] = {k: np.asarray(v, np.float64)
                               for k, v in self.metric_sums.items()}
        return tree

    @classmethod
    def from_tree(cls, tree: Dict[str, Any]) -> "SeedProgress":
        values = {}
        for f in dataclasses.fields(cls):
            value = tree[f.name]
            if f.name == "metric_sums":
                value = {k: float(v) for k, v in value.items()}
            elif f.type in ("int", int):
                value = int(value)
            elif f.type in ("float", float):
                value = float(value)
            else:
                value = np.asarray(value)
            values[f.name] = value
        return cls(**values)

    def add_metrics(self, metrics: Dict[str, float]) -> None:
        """Counts one update and adds its metrics to the episode's sums."""
        self.num_updates += 1
        for k, v in metrics.items():
            self.metric_sums[k] += v
        self.metric_count += 1

    def advance(self, reward: float, observation: np.ndarray) -> None:
        """Counts one env step of the current episode."""
        self.env_step += 1
        self.episode_return += reward
        self.episode_length += 1
        self.observation = observation

    def end_episode(self, rates: Dict[str, float], wall_time: float,
                    observation: np.ndarray) -> Dict[str, Any]:
        """The train row of the finished episode (with `rates` and
        `wall_time`); then starts the next one at `observation`."""
        row = {"kind": "train", "step": self.env_step,
               "episode": self.episode,
               "episode_return": self.episode_return,
               "episode_length": self.episode_length,
               "num_updates": self.num_updates}
        if self.metric_count:
            row.update({k: v / self.metric_count
                        for k, v in sorted(self.metric_sums.items())})
        row.update(rates, wall_time=wall_time)
        self.last_episode_return = self.episode_return
        self.metric_sums = {k: 0.0 for k in self.metric_sums}
        self.metric_count = 0
        self.episode += 1
        self.episode_return, self.episode_length = 0.0, 0
        self.observation = observation
        return row

    def eval_row(self, returns: List[float], seconds: float,
                 wall_time: float) -> Dict[str, Any]:
        """The evaluation row at the current step (and records its mean)."""
        self.last_eval_return = float(np.mean(returns))
        return {"kind": "eval", "step": self.env_step,
                "num_updates": self.num_updates,
                "eval_return_mean": float(np.mean(returns)),
                "eval_return_std": float(np.std(returns)),
                "eval_returns": [float(r) for r in returns],
                "eval_seconds": seconds, "wall_time": wall_time}


def evaluation_seed(seed: int, env_step: int) -> int:
    """The eval env's seed for the evaluation at `env_step` (resume-proof)."""
    return int(np.random.SeedSequence([seed, 1, env_step]).generate_state(1)[0])


def evaluate(envs: List[Any], act_fn, states: Any,
             num_episodes: int) -> List[List[float]]:
    """Returns `[N][num_episodes]` of deterministic episodes, the N envs in
    lockstep with one `act_fn(states, observations [N, o]) -> [N, d]` call
    per step (a finished env waits for the others)."""
    returns: List[List[float]] = [[] for _ in envs]
    for _ in range(num_episodes):
        observations = [env.reset() for env in envs]
        totals = [0.0] * len(envs)
        active = set(range(len(envs)))
        while active:
            actions = act_fn(states, np.stack(observations))
            for i in sorted(active):
                result = envs[i].step(actions[i])
                totals[i] += result.reward
                if result.terminated or result.truncated:
                    active.discard(i)
                else:
                    observations[i] = result.observation
        for i, total in enumerate(totals):
            returns[i].append(total)
    return returns

"""Matmul FLOP counts of one update (2 FLOPs per multiply-add), for the
benchmarks' achieved-GFLOP/s figures."""

from typing import Dict, Sequence


def mlp_macs(sizes: Sequence[int]) -> int:
    """Multiply-adds of one forward pass through dense layers `sizes`."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def dqs_update_flops(obs_dim: int, act_dim: int, batch_size: int,
                     num_mc_samples: int, num_sampling_steps: int,
                     hidden: Sequence[int] = (256, 256),
                     critic_hidden: Sequence[int] = (256, 256),
                     num_critics: int = 2, embed_dim: int = 128
                     ) -> Dict[str, float]:
    """FLOPs of one DQS update by part (docs/algorithm.md §3-§6).

    estimator: K x B points, forward and input-gradient of every critic
    (2 x forward each); sampling: the TD next actions, one score-network
    forward per sampler step; score regression: forward + backward
    (3 x forward); TD: online forward + backward and target forward.
    """
    critic = mlp_macs([obs_dim + act_dim, *critic_hidden, 1]) * num_critics
    score_in = obs_dim + act_dim + 2 * embed_dim
    score = (score_in * hidden[0] + sum(w * w for w in hidden)
             + hidden[-1] * act_dim)
    parts = {
        "estimator": 2 * 2 * critic * batch_size * num_mc_samples,
        "sampling": 2 * score * batch_size * num_sampling_steps,
        "score_regression": 2 * 3 * score * batch_size,
        "td": 2 * 4 * critic * batch_size,
    }
    parts["total"] = sum(parts.values())
    return parts


def sac_update_flops(obs_dim: int, act_dim: int, batch_size: int,
                     hidden: Sequence[int] = (256, 256),
                     critic_hidden: Sequence[int] = (256, 256),
                     num_critics: int = 2) -> Dict[str, float]:
    """FLOPs of one SAC update: actor forward on s' and s with backward
    (4 x forward), critics: online forward + backward, target forward, and
    forward + input gradient for the actor loss (6 x forward)."""
    actor = mlp_macs([obs_dim, *hidden, 2 * act_dim])
    critic = mlp_macs([obs_dim + act_dim, *critic_hidden, 1]) * num_critics
    parts = {"actor": 2 * 4 * actor * batch_size,
             "critic": 2 * 6 * critic * batch_size}
    parts["total"] = sum(parts.values())
    return parts

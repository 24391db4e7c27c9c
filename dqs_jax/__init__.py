"""dqs-jax: Diffusion Q-Sampling in JAX/Flax.

The policy is a diffusion model sampling `pi(a|s) ∝ exp(Q(s, a) / alpha)`
(Jain, Akhound-Sadegh & Ravanbakhsh, RLC 2025).
"""

from dqs_jax.estimator import idem_score
from dqs_jax.losses import idem_loss, td_loss
from dqs_jax.sampler import sample_probability_flow, sample_reverse_sde
from dqs_jax.schedule import GeometricSchedule
from dqs_jax.types import Batch

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "GeometricSchedule",
    "idem_loss",
    "idem_score",
    "sample_probability_flow",
    "sample_reverse_sde",
    "td_loss",
]

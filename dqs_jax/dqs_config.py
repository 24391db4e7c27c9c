"""`DQSConfig`: the hyper-parameters of DQS (defaults: docs/algorithm.md §9
and the authors' code; docs/defaults.md gives each one's source)."""

import dataclasses
import math
from typing import Tuple

import jax

from dqs_jax.initializers import check_kernel_init
from dqs_jax.networks import get_activation
from dqs_jax.schedule import GeometricSchedule
from dqs_jax.score_targets import ESTIMATORS, PRECISIONS
from dqs_jax.temperature import log_linear_temperature

ENERGY_ACTIONS = ("raw", "clip")
EVAL_STARTS = ("zero", "hashed")


@dataclasses.dataclass(frozen=True)
class DQSConfig:
    """Hyper-parameters of DQS; defaults follow docs/algorithm.md §9 (DMC).

    Shape-deciding fields (widths, K, steps) are static: a `DQSConfig` is
    hashable and lives as a static field of `TrainState`.
    """

    hidden_dims: Tuple[int, ...] = (256, 256)  # score network (residual)
    critic_hidden_dims: Tuple[int, ...] = (256, 256)
    embed_dim: int = 128  # sinusoidal embedding of t and of temperature
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 1e-3
    discount: float = 0.99
    tau: float = 0.005
    num_mc_samples: int = 1000  # K of the iDEM estimate
    num_sampling_steps: int = 20  # Euler-Maruyama steps of the sampler
    sigma_min: float = 1e-5
    sigma_max: float = 1.0
    init_temperature: float = 0.05
    final_temperature: float = 0.05
    temperature_anneal_steps: int = 0  # 0: constant init_temperature
    max_action: float = 1.0
    score_activation: str = "gelu"
    critic_activation: str = "relu"
    # Network details of the authors' code, kept as defaults after a
    # 5-seed check found them not worse (docs/defaults.md, "The parity
    # check"): every Dense kernel of both networks orthogonal with gain
    # sqrt(2) ("lecun_normal": Flax's default), and an activation after the
    # score net's input projection ("none": straight into the residual
    # blocks).
    kernel_init: str = "orthogonal"
    score_input_activation: str = "gelu"
    # Start of the deterministic (evaluation) sampler: "zero" (x_1 = 0) or
    # "hashed" (x_1 ~ N(0, h(1) I) drawn from a hash of the observation,
    # deterministic per state, as in the authors' code).
    eval_start: str = "zero"
    # Where the iDEM estimate evaluates Q at a noisy point y: "raw" uses
    # Q(s, y) (docs/algorithm.md §3); "clip" uses
    # Q(s, clip(y, -max_action, max_action)), the action the environment
    # would execute, so the estimate never relies on the critic's
    # extrapolation outside the action box.
    energy_action: str = "raw"
    # Speed and precision of the iDEM estimate in `update` (same maths):
    # K samples evaluated per chunk (memory bound); 0: automatic, about
    # 2^19 activations per layer (`score_targets.chunk_size`).
    mc_chunk_size: int = 0
    stratified_times: bool = False  # t_i ~ U[i/B, (i+1)/B) over the batch
    # Optional speed mode, off at 0: with stratified times, batch elements
    # whose noise scale sqrt(h(t)) is surely below this use the gradient at
    # x_t itself instead of K samples (the K points nearly coincide there).
    small_noise_threshold: float = 0.0
    estimator_precision: str = "float32"  # or "bfloat16" matmuls
    # The score estimate (`score_targets`): "idem" (the paper's), or
    # "antithetic", "qmc", "control_variate", "adaptive" (K by noise level:
    # rows with t below `adaptive_low_time` use `adaptive_low_samples`
    # antithetic draws, below `adaptive_mid_time` `adaptive_mid_samples`,
    # the rest `num_mc_samples` with the control variate).
    estimator: str = "idem"
    adaptive_low_time: float = 0.7
    adaptive_low_samples: int = 2
    adaptive_mid_time: float = 0.85
    adaptive_mid_samples: int = 16

    def __post_init__(self):
        for name in ("hidden_dims", "critic_hidden_dims"):
            object.__setattr__(self, name,
                               tuple(int(w) for w in getattr(self, name)))
        positive_ints = ("embed_dim", "num_critics", "num_mc_samples",
                         "num_sampling_steps")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"DQSConfig.{name} must be >= 1, got {getattr(self, name)}.")
        positive = ("actor_lr", "critic_lr", "init_temperature",
                    "final_temperature", "max_action")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"DQSConfig.{name} must be > 0, got {getattr(self, name)}.")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"DQSConfig.discount must be in [0, 1], got "
                             f"{self.discount}.")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"DQSConfig.tau must be in (0, 1], got {self.tau}.")
        if self.mc_chunk_size < 0:
            raise ValueError(f"DQSConfig.mc_chunk_size must be >= 0, got "
                             f"{self.mc_chunk_size}.")
        if self.small_noise_threshold < 0 or (
                self.small_noise_threshold > 0 and not self.stratified_times):
            raise ValueError(
                "DQSConfig.small_noise_threshold must be >= 0 and needs "
                "stratified_times=True, got "
                f"{self.small_noise_threshold} with stratified_times="
                f"{self.stratified_times}.")
        if self.estimator_precision not in PRECISIONS:
            raise ValueError(f"DQSConfig.estimator_precision must be one of "
                             f"{tuple(PRECISIONS)}, got "
                             f"{self.estimator_precision!r}.")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"DQSConfig.estimator must be one of "
                             f"{ESTIMATORS}, got {self.estimator!r}.")
        if self.estimator == "adaptive" and (
                not self.stratified_times or self.small_noise_threshold):
            raise ValueError("DQSConfig.estimator='adaptive' needs "
                             "stratified_times=True and "
                             "small_noise_threshold=0.")
        if not (0.0 <= self.adaptive_low_time <= self.adaptive_mid_time
                <= 1.0 and self.adaptive_low_samples >= 1
                and self.adaptive_mid_samples >= 1):
            raise ValueError(
                "DQSConfig needs 0 <= adaptive_low_time <= adaptive_mid_time "
                "<= 1 and adaptive_*_samples >= 1, got "
                f"{self.adaptive_low_time}, {self.adaptive_mid_time}, "
                f"{self.adaptive_low_samples}, {self.adaptive_mid_samples}.")
        check_kernel_init("DQSConfig.kernel_init", self.kernel_init)
        if self.score_input_activation != "none":
            get_activation(self.score_input_activation)
        if self.eval_start not in EVAL_STARTS:
            raise ValueError(f"DQSConfig.eval_start must be one of "
                             f"{EVAL_STARTS}, got {self.eval_start!r}.")
        if self.energy_action not in ENERGY_ACTIONS:
            raise ValueError(f"DQSConfig.energy_action must be one of "
                             f"{ENERGY_ACTIONS}, got {self.energy_action!r}.")
        if not self.hidden_dims or not self.critic_hidden_dims:
            raise ValueError("hidden_dims and critic_hidden_dims must be "
                             "non-empty.")
        if len(set(self.hidden_dims)) != 1:
            raise ValueError("DQSConfig.hidden_dims must all be equal (residual "
                             f"blocks), got {self.hidden_dims}.")
        self.schedule  # Validates sigma_min < sigma_max.

    @property
    def schedule(self) -> GeometricSchedule:
        return GeometricSchedule(self.sigma_min, self.sigma_max)

    def num_small_noise(self, batch_size: int) -> int:
        """How many (leading) batch elements the speed mode treats as
        noise-free: those whose stratum `[i/B, (i+1)/B)` has
        `sqrt(h) < small_noise_threshold` throughout."""
        if self.small_noise_threshold <= 0:
            return 0
        sched = self.schedule
        variance = lambda t: sched.sigma_min**2 * math.expm1(  # noqa: E731
            2.0 * t * sched.log_ratio)
        return sum(math.sqrt(variance((i + 1) / batch_size))
                   < self.small_noise_threshold for i in range(batch_size))

    def temperature(self, step) -> jax.Array:
        """Temperature after `step` updates (docs/algorithm.md §7); float32,
        shape of `step`."""
        return log_linear_temperature(step, self.init_temperature,
                                      self.final_temperature,
                                      self.temperature_anneal_steps)

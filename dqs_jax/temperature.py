"""Automatic entropy temperature (Haarnoja et al. 2018, "SAC and
applications", eq. 18): one optimiser step on

  `L(log_alpha) = log_alpha * (sg(H) - H_target)`,

so `dL/dlog_alpha = H - H_target`: alpha rises when the policy's entropy
`H` is below the target and falls above it. Shared by SAC (H from the
batch's log-probabilities) and DACER (H from a mixture fit to samples).
"""

from typing import Tuple

import chex
import jax
import optax

from dqs_jax.optim import apply_gradients


def temperature_loss(log_temperature: jax.Array, entropy: jax.Array,
                     target_entropy: float) -> jax.Array:
    """`log_alpha * (sg(H) - H_target)` for scalars `log_temperature` and
    `entropy`; a scalar."""
    chex.assert_rank([log_temperature, entropy], 0)
    return log_temperature * (jax.lax.stop_gradient(entropy) - target_entropy)


def temperature_step(optimizer: optax.GradientTransformation,
                     log_temperature: jax.Array, opt_state: optax.OptState,
                     entropy: jax.Array, target_entropy: float
                     ) -> Tuple[jax.Array, optax.OptState, jax.Array]:
    """One `optimizer` step on `temperature_loss`.

    Args:
      optimizer: the temperature's optimiser (Adam in SAC and DACER).
      log_temperature: scalar `log_alpha`.
      opt_state: `optimizer`'s state for `log_temperature`.
      entropy: scalar entropy estimate `H` (no gradient flows into it).
      target_entropy: `H_target`.

    Returns:
      `(log_temperature, opt_state, loss)`, the loss at the old value.
    """
    loss, grad = jax.value_and_grad(temperature_loss)(
        log_temperature, entropy, target_entropy)
    log_temperature, opt_state = apply_gradients(optimizer, grad, opt_state,
                                                 log_temperature)
    return log_temperature, opt_state, loss

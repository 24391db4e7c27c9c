"""The one gradient step every learner takes."""

from typing import Any, Tuple

import optax


def apply_gradients(optimiser: optax.GradientTransformation, grads: Any,
                    opt_state: optax.OptState, params: Any
                    ) -> Tuple[Any, optax.OptState]:
    """`(new_params, new_opt_state)` after one `optimiser` step on `grads`."""
    updates, opt_state = optimiser.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

"""Comparisons of parameter trees for the loop tests."""

import jax
import numpy as np


def assert_same_training(a, b, start, fraction=0.02):
    """Trees `a` and `b`, both trained from `start`, agree up to float noise:
    per leaf, `max |a - b| <= fraction * max |b - start|` (Adam turns float
    noise in near-zero gradients into steps of size lr, so elementwise
    tolerances do not fit)."""
    for x, y, y0 in zip(jax.tree_util.tree_leaves(a),
                        jax.tree_util.tree_leaves(b),
                        jax.tree_util.tree_leaves(start)):
        x, y, y0 = (np.asarray(v, np.float64) for v in (x, y, y0))
        moved = np.max(np.abs(y - y0)) if y.size else 0.0
        assert np.max(np.abs(x - y), initial=0.0) <= fraction * moved + 1e-6

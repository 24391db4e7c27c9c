"""GeometricSchedule against its closed forms (docs/algorithm.md §2)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dqs_jax.schedule import GeometricSchedule


def test_h_is_zero_at_zero_and_sigma_max_squared_at_one():
    s = GeometricSchedule(1e-5, 1.0)
    assert float(s.h(0.0)) == 0.0
    np.testing.assert_allclose(s.h(1.0), 1.0 - 1e-10, rtol=1e-6)


def test_closed_forms_elementwise():
    s = GeometricSchedule(0.01, 2.0)
    t = np.array([[0.0, 0.25], [0.5, 1.0]])
    r = 2.0 / 0.01
    np.testing.assert_allclose(
        s.g(t), 0.01 * r**t * math.sqrt(2 * math.log(r)), rtol=1e-5)
    np.testing.assert_allclose(s.h(t), 0.01**2 * (r**(2 * t) - 1), rtol=1e-5,
                               atol=1e-9)
    assert s.g(t).shape == t.shape and s.h(t).shape == t.shape


def test_h_derivative_is_g_squared():
    s = GeometricSchedule()
    for t in (0.1, 0.5, 0.9):
        dh = jax.grad(lambda u: s.h(u))(jnp.float32(t))
        np.testing.assert_allclose(dh, s.g(t)**2, rtol=1e-4)


def test_h_accurate_for_tiny_t():
    s = GeometricSchedule(1e-5, 1.0)
    t = 1e-4
    expected = 1e-10 * math.expm1(2 * t * math.log(1e5))
    np.testing.assert_allclose(s.h(t), expected, rtol=1e-4)


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)])
def test_invalid_sigmas_raise(lo, hi):
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        GeometricSchedule(lo, hi)


def test_schedule_is_hashable_static_argument():
    s = GeometricSchedule()
    f = jax.jit(lambda t, sched: sched.h(t), static_argnums=1)
    np.testing.assert_allclose(f(0.5, s), s.h(0.5))
    assert hash(s) == hash(GeometricSchedule())

"""Wall-clock helpers shared by the benchmarks (no flags: importable)."""

import time
from typing import List


def timed(fn, repeats: int) -> List[float]:
    """Seconds of each of `repeats` calls of `fn` (its result blocked on)."""
    import jax
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times


def dot_rate(repeats: int = 10) -> float:
    """GFLOP/s of a float32 2048x2048 `jnp.dot` (median of `repeats`)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    a = jnp.ones((2048, 2048), jnp.float32)
    dot = jax.jit(lambda x: jnp.dot(x, x))
    jax.block_until_ready(dot(a))
    return 2 * 2048**3 / float(np.median(timed(lambda: dot(a), repeats))) / 1e9

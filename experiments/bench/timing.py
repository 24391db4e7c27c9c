"""Wall-clock helpers shared by the benchmarks (no flags: importable)."""

import time
from typing import Any, Dict, List


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


def time_run_steps(settings, warmup: int, steps: int, learn: str = "learn"
                   ) -> Dict[str, Any]:
    """Builds `training.Run(settings)` in its workdir, takes `warmup`
    untimed steps (seed phase included), then times `steps` steps with
    the learner's act (`act`) and observe (`learn`) and the envs' steps
    (`env`) timed in place. Returns `{seconds, env_steps_per_s (all seeds),
    ms_per_step: {act, env, <learn>, host}}`; `host` is the rest."""
    import jax
    from dqs_jax import training

    seconds: Dict[str, float] = {"act": 0.0, "env": 0.0, learn: 0.0}

    def wrap(part: str, fn):
        def timed_fn(*args, **kwargs):
            start = time.perf_counter()
            out = jax.block_until_ready(fn(*args, **kwargs))
            seconds[part] += time.perf_counter() - start
            return out
        return timed_fn

    run = training.Run(settings, None)
    for _ in range(warmup):
        run.step()
    run.learner.act = wrap("act", run.learner.act)
    run.learner.observe = wrap(learn, run.learner.observe)
    for env in run.envs:
        env.step = wrap("env", env.step)
    start = time.perf_counter()
    for _ in range(steps):
        run.step()
    total = time.perf_counter() - start
    run.close_outputs()
    run.checkpointer.close()
    ms = {part: 1e3 * s / steps for part, s in seconds.items()}
    ms["host"] = 1e3 * total / steps - sum(ms.values())
    return {"seconds": total,
            "env_steps_per_s": settings.num_seeds * steps / total,
            "ms_per_step": ms}

"""Test-wide settings."""

import hashlib
import os
import tempfile

# Headless MuJoCo before anything imports dm_control.
os.environ.setdefault("MUJOCO_GL", "egl")

# One persistent XLA compilation cache for the whole suite, its xdist
# workers and the training binaries it launches (they inherit the
# environment): the same update is compiled once, not once per process.
# Numerics are unchanged (the cache holds the compiled executables).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(),
    "dqs_jax_test_xla_cache_" + hashlib.sha1(_ROOT.encode()).hexdigest()[:8]))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

# Tests compile many small programs and run each briefly: skip LLVM's
# optimisation passes (about half the compile time on CPU) and XLA:CPU's
# fusion emitters (the older loop emitters compile a training scan in about
# half the time). The same XLA graph runs; comparisons between two
# programs of one computation see a different float reassociation
# (test_loop's chunked runs and test_parallel's sharded runs compare
# such programs in a subprocess with XLA's own emitters:
# `tests.helpers.run_with_xla_emitters`).
from tests.helpers import TEST_XLA_FLAGS  # noqa: E402

for _flag in TEST_XLA_FLAGS:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " "
                                   + _flag).strip()

"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    defined = {}  # Every block runs on its own; their names, collected.
    for block in blocks:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        defined.update(namespace)
    grads = defined["s_grads"]
    import jax
    import numpy as np
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))

"""The learning-curve figure of a run (matplotlib, headless)."""

import os
from typing import Any, Dict, Sequence


def save_figure(fig, path: str) -> str:
    """Writes `fig` to `path` (folders created), closes it, returns the
    absolute path."""
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return os.path.abspath(path)


def learning_curve(rows: Sequence[Dict[str, Any]], path: str,
                   title: str = "") -> str:
    """Episode return against env steps from metrics rows: train episodes and
    evaluation means (± std). Returns the absolute path written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if train:
        ax.plot([r["step"] for r in train], [r["episode_return"] for r in train],
                ".", color="tab:gray", alpha=0.5, label="train episode")
    if evals:
        steps = np.array([r["step"] for r in evals])
        mean = np.array([r["eval_return_mean"] for r in evals])
        std = np.array([r["eval_return_std"] for r in evals])
        ax.plot(steps, mean, "-o", color="tab:blue",
                label="deterministic evaluation (mean ± std)")
        ax.fill_between(steps, mean - std, mean + std, color="tab:blue",
                        alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title or "learning curve")
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend(loc="best")
    return save_figure(fig, path)

"""GMM-40 metrics against training steps (`experiments.gmm --curve`): each
method's squared MMD and modes covered, per seed, after every training chunk,
for results.json's `curves` and the figure gmm_curves.png."""

from typing import Dict

import numpy as np

from experiments import plotting


def record(curves: Dict[str, dict], method: str, step: int,
           result: dict) -> None:
    """Appends one evaluation (`experiments.gmm.evaluate_method`'s dict, per
    seed `mmd` and `coverage`) of `method` at env step `step` (per seed)."""
    curve = curves.setdefault(method, {"steps": [], "mmd": [],
                                       "coverage": []})
    curve["steps"].append(int(step))
    curve["mmd"].append([float(x) for x in result["mmd"]])
    curve["coverage"].append([int(x) for x in result["coverage"]])


def plot(path: str, curves: Dict[str, dict], uniform_mmd: float,
         num_modes: int) -> str:
    """Two panels (squared MMD, log scale; modes covered) against env steps
    per seed: each method's mean (line) and seeds (dots), with the
    uniform-in-box MMD and the number of modes as references."""
    fig, (ax_mmd, ax_modes) = plotting.plt.subplots(1, 2, figsize=(11, 4))
    for (method, curve), color in zip(curves.items(),
                                      plotting.plt.cm.tab10.colors):
        steps = np.asarray(curve["steps"])
        for ax, key in ((ax_mmd, "mmd"), (ax_modes, "coverage")):
            values = np.asarray(curve[key], np.float64)  # [steps, seeds]
            ax.plot(steps, values.mean(-1), "-o", color=color, ms=3,
                    label=method.upper())
            ax.plot(np.repeat(steps, values.shape[1]), values.ravel(), ".",
                    color=color, alpha=0.4)
    ax_mmd.axhline(uniform_mmd, color="gray", ls="--",
                   label="uniform in the box")
    ax_mmd.set_yscale("log")
    ax_mmd.set_ylabel("squared MMD to the mixture (lower is better)")
    ax_modes.axhline(num_modes, color="gray", ls="--", label="all modes")
    ax_modes.set_ylim(0, num_modes + 1)
    ax_modes.set_ylabel("modes covered (3 std)")
    for ax in (ax_mmd, ax_modes):
        ax.set_xlabel("env steps per seed")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    names = ", ".join(m.upper() for m in curves)
    fig.suptitle(f"GMM-40 during training: the final states' squared MMD "
                 f"and modes covered ({names}; lines: mean over seeds, dots: "
                 "seeds)", fontsize=10)
    return plotting.save(fig, path)

"""Error and verdict of `experiments.bench.estimator` (flag-free)."""

from typing import Dict

import numpy as np


def relative_rmse(estimate, reference, bins, num_bins) -> Dict[str, object]:
    """`sqrt(sum ||estimate - reference||^2 / sum ||reference||^2)` over all
    rows and per bin: `estimate, reference [N, d]`, `bins [N]` in
    `0..num_bins-1`."""
    err = np.sum(np.square(np.asarray(estimate) - np.asarray(reference)), -1)
    norm = np.sum(np.square(np.asarray(reference)), -1)
    per_bin = [float(np.sqrt(err[bins == b].sum() / norm[bins == b].sum()))
               for b in range(num_bins)]
    return {"overall": float(np.sqrt(err.sum() / norm.sum())),
            "per_bin": per_bin}


def matches(errors: Dict[str, Dict[str, dict]], times: Dict[str, Dict[str,
            float]], tolerance: float) -> dict:
    """Configurations within `tolerance` of iDEM at its largest K, overall
    and in every bin, cheapest first, with their time ratios; `{}` without
    iDEM. `errors[name][K] = {'overall', 'per_bin'}`, `times[name][K]`."""
    if "idem" not in errors:
        return {}
    k_max = str(max(int(k) for k in errors["idem"]))
    base, base_time = errors["idem"][k_max], times["idem"][k_max]
    found = []
    for name, per_k in errors.items():
        for k, e in per_k.items():
            ok = e["overall"] <= (1 + tolerance) * base["overall"] and all(
                x <= (1 + tolerance) * y
                for x, y in zip(e["per_bin"], base["per_bin"]))
            if ok:
                found.append({"estimator": name, "num_samples": int(k),
                              "time_ratio": times[name][k] / base_time})
    found.sort(key=lambda m: m["time_ratio"])
    return {"baseline": {"estimator": "idem", "num_samples": int(k_max)},
            "matching": found, "best": found[0] if found else None}

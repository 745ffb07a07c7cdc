"""How much ECE and MCE move with the examples alone: a bootstrap over the evaluation split.

``auditkit diff`` of one model scanned with seeds 0 and 1 once reported MCE 0.327 → 0.496 as a
regression: the seed picks a different evaluation split, and MCE (the worst bin) swings that much
on its own. The diff needs each number's noise to tell that from a real change, and audit.json
holds no per-example data, so the probe records the standard errors here
(``details["standard_errors"]``, read by ``auditkit.noise``).
"""

from __future__ import annotations

import numpy as np

from auditkit.functional.calibration import expected_calibration_error

BOOTSTRAP_ROUNDS = 200


def bootstrap_standard_errors(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int, rng: np.random.Generator,
    rounds: int = BOOTSTRAP_ROUNDS, after: np.ndarray | None = None,
) -> dict[str, float]:
    """Standard deviation of ECE and MCE over ``rounds`` resamples (with replacement) of the
    examples: the spread a different sample of the same size would show. ``after``: the
    confidences after temperature scaling (same examples), for ``*_after_temperature``."""
    n = len(confidence)
    if n < 2:
        return {}
    sets = {"": confidence, **({"_after_temperature": after} if after is not None else {})}
    draws: dict[str, list[float]] = {}
    for _ in range(rounds):
        pick = rng.integers(0, n, size=n)
        hits = correct[pick]
        for suffix, conf in sets.items():
            draws.setdefault(f"ece{suffix}", []).append(
                expected_calibration_error(conf[pick], hits, n_bins))
            draws.setdefault(f"mce{suffix}", []).append(
                expected_calibration_error(conf[pick], hits, n_bins, norm="max"))
    return {name: float(np.std(values, ddof=1)) for name, values in draws.items()}

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
    rounds: int = BOOTSTRAP_ROUNDS,
) -> dict[str, float]:
    """Standard deviation of ECE and MCE over ``rounds`` resamples (with replacement) of the
    examples: the spread a different sample of the same size would show."""
    n = len(confidence)
    if n < 2:
        return {}
    ece, mce = np.empty(rounds), np.empty(rounds)
    for r in range(rounds):
        pick = rng.integers(0, n, size=n)
        conf, hits = confidence[pick], correct[pick]
        ece[r] = expected_calibration_error(conf, hits, n_bins)
        mce[r] = expected_calibration_error(conf, hits, n_bins, norm="max")
    return {"ece": float(ece.std(ddof=1)), "mce": float(mce.std(ddof=1))}

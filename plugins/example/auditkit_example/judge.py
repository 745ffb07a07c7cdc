"""Judge: metrics, checks and findings from a ``NoiseMeasurement`` alone (pure, no model)."""

from __future__ import annotations

import math

from auditkit.results import Check, Finding
from auditkit_example.measure import NoiseMeasurement


def _slack(n: int) -> float:
    """Two examples' worth of accuracy: rounding alone never fails the drop check."""
    return 2.0 / max(n, 1)


def _rise_tolerance(n: int, accuracy: float) -> float:
    """How much accuracy may rise between two noise levels by chance alone: three standard
    errors of the difference of two accuracies on ``n`` examples (each with its own noise
    draw), and never less than two examples. A curve on 200 examples at 80 % accuracy moves by
    a few points from one draw to the next; only a rise beyond that says something."""
    n = max(n, 1)
    p = min(max(accuracy, 0.0), 1.0)
    return max(_slack(n), 3.0 * math.sqrt(2.0 * p * (1.0 - p) / n))


def metrics(m: NoiseMeasurement) -> dict[str, float | None]:
    at = dict(zip(m.sigmas, m.accuracies, strict=True))
    headline = at[m.headline_sigma]
    return {
        "clean_accuracy": m.clean_accuracy,
        "noise_accuracy": headline,
        "accuracy_drop": m.clean_accuracy - headline,
        "sigma": m.headline_sigma,
    }


def checks(m: NoiseMeasurement, max_drop: float) -> list[Check]:
    values = metrics(m)
    slack = _slack(m.n_examples)
    curve = list(zip(m.sigmas, m.accuracies, strict=True))
    rises = [(a, b) for (a, acc_a), (b, acc_b) in zip(curve, curve[1:], strict=False)
             if acc_b > acc_a + _rise_tolerance(m.n_examples, acc_a)]
    drop = values["accuracy_drop"]
    return [
        Check(
            "accuracy_falls_with_noise",
            "failed" if rises else "passed",
            "accuracy rises from sigma " + ", ".join(f"{a:g} to {b:g}" for a, b in rises)
            + " by more than sampling noise allows"
            if rises else "accuracy never rises beyond sampling noise as the noise grows",
            {"sigmas": list(m.sigmas), "accuracies": list(m.accuracies)},
        ),
        Check(
            "drop_within_limit",
            "failed" if drop > max_drop + slack else "passed",
            f"accuracy drops by {drop:.1%} at sigma {m.headline_sigma:g} "
            f"(limit {max_drop:.0%})",
            {"drop": drop, "limit": max_drop},
        ),
    ]


def findings(m: NoiseMeasurement, found: list[Check]) -> list[Finding]:
    out = []
    if any(c.name == "drop_within_limit" and c.status == "failed" for c in found):
        out.append(Finding(
            "warning",
            f"random noise of {m.headline_sigma:g} box widths costs "
            f"{metrics(m)['accuracy_drop']:.0%} accuracy",
            why="inputs in the field are rarely as clean as the audit data",
            action="train with noise augmentation, or check the sensor / preprocessing",
        ))
    if any(c.name == "accuracy_falls_with_noise" and c.status == "failed" for c in found):
        out.append(Finding(
            "info", "accuracy rises with more noise",
            why="more noise should never help; too few examples or draws make the curve noisy",
            action="raise --set noise_robustness.n_examples or draws",
        ))
    return out


def status(found: list[Check]) -> str:
    return "failed" if any(c.status == "failed" for c in found) else "passed"

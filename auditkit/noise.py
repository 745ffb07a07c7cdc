"""The noise of a metric in one audit, so ``auditkit diff`` can tell it from a regression.

Scanning one model with seeds 0 and 1 moves its numbers: the seed picks the evaluation split, the
attack's examples and starts, the bootstrap's resamples. A diff that calls every such move a
regression turns a CI job red for nothing. Each metric's standard error comes from what the audit
recorded:

- a probe's own ``details["standard_errors"][metric]`` (calibration: a bootstrap of ECE and MCE
  over the evaluation examples);
- bias gaps: the recorded interval of each disparity check ``metric[slicing]`` (half its width
  over z; the widest slicing's, since the metric is the largest gap over slicings);
- accuracies: binomial, ``√(p(1−p)/n)`` with ``n`` the probe's ``n_examples`` (else the audit's
  data size), ``p`` Agresti–Coull adjusted so that 0 % and 100 % still have a width.

Other metrics have no recorded noise and are judged on the tolerance alone.
"""

from __future__ import annotations

import math
from typing import Any

from auditkit.results import AuditResult

#: Two-sided 95 %: a change is noise unless it exceeds z × the combined standard error.
Z = 1.96


def standard_error(audit: AuditResult, metric: str) -> tuple[float | None, str]:
    """``(standard error, how it was obtained)`` of ``probe.metric`` in ``audit``."""
    name, _, key = metric.partition(".")
    probe = audit.probes.get(name)
    if probe is None:
        return None, ""
    recorded = (probe.details or {}).get("standard_errors") if isinstance(probe.details, dict) \
        else None
    if isinstance(recorded, dict) and isinstance(recorded.get(key), (int, float)):
        return float(recorded[key]), "bootstrap over examples"
    widths = [
        (float(c.values["ci"][1]) - float(c.values["ci"][0])) / (2 * Z)
        for c in probe.checks
        if c.name.startswith(f"{key}[") and _interval(c.values.get("ci"))
    ]
    if widths:
        return max(widths), "recorded bootstrap interval"
    value = probe.metrics.get(key)
    if _is_accuracy(key) and isinstance(value, (int, float)) and 0.0 <= value <= 1.0:
        n = probe.metrics.get("n_examples") or audit.data.get("n")
        if isinstance(n, (int, float)) and n > 0:
            adjusted = (value * n + 2) / (n + 4)
            return math.sqrt(adjusted * (1 - adjusted) / n), f"binomial, n={int(n)}"
    return None, ""


def combined_noise(base: AuditResult, new: AuditResult, metric: str) -> tuple[float | None, str]:
    """z × √(se_base² + se_new²): how far the metric moves between the audits by chance."""
    (b, how_b), (n, how_n) = standard_error(base, metric), standard_error(new, metric)
    errors = [e for e in (b, n) if e is not None]
    if not errors:
        return None, ""
    if len(errors) == 1:  # one audit recorded it: assume the other is as noisy
        errors = errors * 2
    return Z * math.sqrt(sum(e * e for e in errors)), how_n or how_b


def _is_accuracy(key: str) -> bool:
    return "accuracy" in key and not any(w in key for w in ("difference", "gap", "minus", "ratio"))


def _interval(ci: Any) -> bool:
    return (
        isinstance(ci, (list, tuple)) and len(ci) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in ci)
    )

"""Compare two audits metric by metric, direction-aware, for regression gates in CI."""

from __future__ import annotations

import math
from dataclasses import dataclass

from auditkit.results import AuditResult


@dataclass(frozen=True)
class MetricChange:
    metric: str
    base: float | None
    new: float | None
    delta: float | None
    direction: str | None  # higher | lower | None (no better side)
    regression: bool
    improvement: bool

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def metric_directions() -> dict[str, str | None]:
    """``{"probe.metric": "higher"|"lower"|None}`` from every installed probe's declaration."""
    from auditkit.gates import known_metrics

    return {
        f"{probe}.{metric}": spec.direction
        for probe, specs in known_metrics().items()
        for metric, spec in specs.items()
    }


def diff_results(
    base: AuditResult,
    new: AuditResult,
    *,
    tolerance: float = 0.01,
    tolerances: dict[str, float] | None = None,
) -> list[MetricChange]:
    """Every metric present in either audit; a regression is a move to the worse side by more
    than the tolerance (absolute), or a metric that disappeared."""
    directions = metric_directions()
    tolerances = tolerances or {}
    base_m, new_m = base.metrics, new.metrics
    changes = []
    for metric in sorted(set(base_m) | set(new_m)):
        b, n = base_m.get(metric), new_m.get(metric)
        direction = directions.get(metric)
        tol = tolerances.get(metric, tolerance)
        delta = None if b is None or n is None else float(n) - float(b)
        regression = improvement = False
        if delta is not None and not math.isnan(delta) and direction:
            worse = -delta if direction == "higher" else delta
            regression = worse > tol
            improvement = -worse > tol
        elif b is not None and n is None and direction:
            regression = True  # a measured number vanished: treat as a regression
        changes.append(MetricChange(metric, b, n, delta, direction, regression, improvement))
    return changes


def render_diff_markdown(changes: list[MetricChange], *, only_changed: bool = True) -> str:
    rows = [c for c in changes if not only_changed or c.regression or c.improvement]
    regressions = sum(c.regression for c in changes)
    head = (
        f"### auditkit diff: {regressions} regression{'s' if regressions != 1 else ''}\n\n"
        "| metric | base | new | Δ | better | verdict |\n|---|---|---|---|---|---|"
    )

    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.4g}"

    lines = [head]
    for c in rows:
        verdict = "❌ regression" if c.regression else ("✅ improved" if c.improvement else "≈ same")
        lines.append(
            f"| `{c.metric}` | {f(c.base)} | {f(c.new)} | {f(c.delta)} | {c.direction or '—'} | {verdict} |"
        )
    if not rows:
        lines.append("| (no change beyond tolerance) | | | | | |")
    return "\n".join(lines) + "\n"

"""Compare two audits, direction-aware, for regression gates in CI.

Three kinds of change count as a regression: a metric that moved to its worse side by more than
its tolerance (or vanished), a probe whose status got worse (passed → warned / failed / error /
skipped, or no longer run), and a check that got worse (passed → warned or failed). Which side of a metric
is better comes from the audits themselves (each probe's ``metric_info`` in audit.json), so
plugin metrics are judged even where the plugin is not installed; the installed probes'
declarations are the fallback for audits written before ``metric_info`` existed.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from auditkit.errors import AuditkitInputError
from auditkit.render.markdown import code, text
from auditkit.results import AuditResult

# Higher is worse. A probe that was skipped no longer tells us anything; failed and error are
# equally bad (one a finding, the other no answer), so moving between them is a change, not a
# regression or an improvement.
PROBE_RANK = {"passed": 0, "warned": 1, "skipped": 2, "failed": 3, "error": 3}
CHECK_RANK = {"passed": 0, "warned": 1, "skipped": 1, "failed": 2}
NOT_RUN = "not run"


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


@dataclass(frozen=True)
class StatusChange:
    """A probe's or a check's status in both audits (``None``: absent from that audit)."""

    item: str  # "adversarial" (probe) or "adversarial: grad_nonzero" (check)
    kind: str  # probe | check
    base: str | None
    new: str | None
    regression: bool
    improvement: bool

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class AuditDiff:
    """Everything that changed between two audits; ``regressed`` decides the exit code."""

    metrics: list[MetricChange] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricChange | StatusChange]:
        return [c for c in [*self.statuses, *self.metrics] if c.regression]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


def metric_directions() -> dict[str, str | None]:
    """``{"probe.metric": "higher"|"lower"|None}`` from every installed probe's declaration."""
    from auditkit.gates import known_metrics

    return {
        f"{probe}.{metric}": spec.direction
        for probe, specs in known_metrics().items()
        for metric, spec in specs.items()
    }


def audit_directions(*audits: AuditResult) -> dict[str, str | None]:
    """Directions recorded in the audits (earlier audits win), over the installed fallback."""
    directions = metric_directions()
    recorded: dict[str, str | None] = {}
    for audit in reversed(audits):
        for name, probe in audit.probes.items():
            for metric, info in probe.metric_info.items():
                if isinstance(info, dict) and info.get("direction") in ("higher", "lower", None):
                    recorded[f"{name}.{metric}"] = info.get("direction")
    return {**directions, **recorded}


def _number(value: Any, metric: str, label: str) -> float | None:
    """A metric value as a float, None when unmeasured; anything else is a broken audit.json."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise AuditkitInputError(
            f"{label}: metric {metric} = {value!r} is not a number; the audit.json was edited or "
            "written by something else, re-run `auditkit scan` to regenerate it"
        )
    value = float(value)
    return None if math.isnan(value) else value


def _check_tolerances(
    tolerance: float, tolerances: dict[str, float], known: set[str]
) -> None:
    for name, value in [("--tolerance", tolerance), *tolerances.items()]:
        if not (isinstance(value, Real) and math.isfinite(value) and value >= 0):
            flag = name if name == "--tolerance" else f"--tolerance-for {name}"
            raise AuditkitInputError(
                f"{flag}={value!r}: a tolerance is an allowed absolute change toward worse, a "
                "number >= 0"
            )
    for name in tolerances:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise AuditkitInputError(
                f"--tolerance-for {name}: no such metric in either audit ({hint}valid: "
                f"{', '.join(sorted(known)) or 'none'})"
            )


def diff_results(
    base: AuditResult,
    new: AuditResult,
    *,
    tolerance: float = 0.01,
    tolerances: dict[str, float] | None = None,
    labels: tuple[str, str] = ("base audit", "new audit"),
) -> list[MetricChange]:
    """Every metric present in either audit; a regression is a move to the worse side by more
    than the tolerance (absolute), or a metric that disappeared."""
    tolerances = dict(tolerances or {})
    base_m, new_m = base.metrics, new.metrics
    _check_tolerances(tolerance, tolerances, set(base_m) | set(new_m))
    directions = audit_directions(new, base)
    changes = []
    for metric in sorted(set(base_m) | set(new_m)):
        b = _number(base_m.get(metric), metric, labels[0])
        n = _number(new_m.get(metric), metric, labels[1])
        direction = directions.get(metric)
        tol = tolerances.get(metric, tolerance)
        delta = None if b is None or n is None else n - b
        regression = improvement = False
        if delta is not None and direction:
            worse = -delta if direction == "higher" else delta
            regression = worse > tol
            improvement = -worse > tol
        elif b is not None and n is None and direction:
            regression = True  # a measured number vanished: treat as a regression
        changes.append(MetricChange(metric, b, n, delta, direction, regression, improvement))
    return changes


def diff_statuses(base: AuditResult, new: AuditResult) -> list[StatusChange]:
    """Probes and checks whose status differs; worse is a regression whatever the numbers say."""
    changes: list[StatusChange] = []
    for name in [*base.probes, *(n for n in new.probes if n not in base.probes)]:
        b_probe, n_probe = base.probes.get(name), new.probes.get(name)
        b = b_probe.status if b_probe else None
        n = n_probe.status if n_probe else None
        if b != n:
            b_rank = PROBE_RANK.get(b, 0) if b else None
            n_rank = PROBE_RANK.get(n, 3) if n else None
            regression = b_rank is not None and (n_rank is None or n_rank > b_rank)
            improvement = b_rank is not None and n_rank is not None and n_rank < b_rank
            changes.append(
                StatusChange(name, "probe", b, n or NOT_RUN, regression, improvement)
            )
        if b_probe is None or n_probe is None:
            continue
        # A check that vanished with its probe's error is already counted at the probe.
        base_checks = {c.name: c.status for c in b_probe.checks}
        for check in n_probe.checks:
            b_status = base_checks.get(check.name)
            if b_status == check.status:
                continue
            if b_status is None:
                regression, improvement = check.status == "failed", False
            else:
                b_rank, n_rank = CHECK_RANK.get(b_status, 0), CHECK_RANK.get(check.status, 2)
                regression, improvement = n_rank > b_rank, n_rank < b_rank
            changes.append(
                StatusChange(
                    f"{name}: {check.name}", "check", b_status, check.status, regression,
                    improvement,
                )
            )
    return changes


def compare(
    base: AuditResult,
    new: AuditResult,
    *,
    tolerance: float = 0.01,
    tolerances: dict[str, float] | None = None,
    labels: tuple[str, str] = ("base audit", "new audit"),
) -> AuditDiff:
    """Metrics (direction-aware, beyond tolerance) and probe/check statuses of two audits.

    Example:
        >>> changes = compare(AuditResult.load("base.json"), AuditResult.load("new.json"))
        >>> changes.regressed, [c.to_dict() for c in changes.regressions]
    """
    return AuditDiff(
        diff_results(base, new, tolerance=tolerance, tolerances=tolerances, labels=labels),
        diff_statuses(base, new),
    )


def _verdict(change: MetricChange | StatusChange) -> str:
    if change.regression:
        return "❌ regression"
    return "✅ improved" if change.improvement else "≈ same"


def render_diff_markdown(
    changes: AuditDiff | list[MetricChange], *, only_changed: bool = True
) -> str:
    """The comparison as Markdown for a PR comment; every cell is escaped."""
    if not isinstance(changes, AuditDiff):
        changes = AuditDiff(list(changes))
    rows = [c for c in changes.metrics if not only_changed or c.regression or c.improvement]
    regressions = len(changes.regressions)

    def f(v: float | None) -> str:
        return "—" if v is None else text(f"{v:.4g}")

    lines = [
        f"### auditkit diff: {regressions} regression{'s' if regressions != 1 else ''}",
        "",
    ]
    if changes.statuses:
        lines += ["| probe / check | base | new | verdict |", "|---|---|---|---|"]
        for s in changes.statuses:
            lines.append(
                f"| {code(s.item)} | {text(s.base or NOT_RUN)} | {text(s.new or NOT_RUN)} "
                f"| {_verdict(s)} |"
            )
        lines.append("")
    lines += ["| metric | base | new | Δ | better | verdict |", "|---|---|---|---|---|---|"]
    for c in rows:
        lines.append(
            f"| {code(c.metric)} | {f(c.base)} | {f(c.new)} | {f(c.delta)} "
            f"| {text(c.direction or '—')} | {_verdict(c)} |"
        )
    if not rows:
        lines.append("| (no metric changed beyond tolerance) | | | | | |")
    return "\n".join(lines) + "\n"

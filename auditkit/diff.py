"""Compare two audits, direction-aware, for regression gates in CI.

First it says whether the two audits are comparable at all: the same model interface (classes,
input shape), the same data (fingerprint), and then the facts that move numbers on their own
(seed, budget, auditkit version, options, probes run, model weights). Different data or a
different model interface is bad input (exit 2) unless ``force``: the numbers would not measure
the same thing. Different weights are expected (that is what a diff compares); a different seed
or budget is stated before any regression, since it alone moves the numbers.

Three kinds of change count as a regression: a metric that moved to its worse side by more than
its tolerance (or vanished), a probe whose status got worse (passed → warned / failed / error /
skipped, or no longer run; a probe that did not run before and now fails or errors), and a check
that got worse (passed → warned or failed). Which side of a metric
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
from auditkit.noise import combined_noise
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
    noise: float | None = None  # z × combined standard error of both audits (auditkit.noise)
    noise_source: str = ""

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
class Fact:
    """One thing both audits should share: its value in each and whether a difference blocks."""

    name: str
    base: str
    new: str
    blocking: bool  # a difference makes the audits incomparable (needs --force)
    meaning: str  # what a difference means for reading the numbers

    @property
    def same(self) -> bool:
        return self.base == self.new

    def to_dict(self) -> dict:
        return {**self.__dict__, "same": self.same}


@dataclass(frozen=True)
class AuditDiff:
    """Everything that changed between two audits; ``regressed`` decides the exit code."""

    metrics: list[MetricChange] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)

    @property
    def differences(self) -> list[Fact]:
        return [f for f in self.facts if not f.same]

    @property
    def comparable(self) -> bool:
        """No blocking difference (same data, same model interface)."""
        return not any(f.blocking for f in self.differences)

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
    than the tolerance (absolute) *and* more than the metric's noise (``auditkit.noise``: z ×
    the combined standard error of both audits, where they recorded one), or a metric that
    disappeared."""
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
        noise, source = combined_noise(base, new, metric)
        regression = improvement = False
        if delta is not None and direction:
            worse = -delta if direction == "higher" else delta
            bar = max(tol, noise or 0.0)
            regression = worse > bar
            improvement = -worse > bar
        elif b is not None and n is None and direction:
            regression = True  # a measured number vanished: treat as a regression
        changes.append(
            MetricChange(metric, b, n, delta, direction, regression, improvement, noise, source)
        )
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
            if b_rank is None:  # a probe new in this audit: a regression only if it fails
                regression, improvement = n in ("failed", "error"), False
            else:
                regression = n_rank is None or n_rank > b_rank
                improvement = n_rank is not None and n_rank < b_rank
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
                # Only a check that now *fails* regresses: passed ↔ warned is advisory and moves
                # with the seed (a temperature that helps on one split and not on another); the
                # probe's own status change is judged above.
                b_rank, n_rank = CHECK_RANK.get(b_status, 0), CHECK_RANK.get(check.status, 2)
                regression = check.status == "failed" and n_rank > b_rank
                improvement = n_rank < b_rank
            changes.append(
                StatusChange(
                    f"{name}: {check.name}", "check", b_status, check.status, regression,
                    improvement,
                )
            )
    return changes


def _short_hash(value: Any) -> str:
    return str(value)[:12] if value else "unknown"


def _shape(audit: AuditResult) -> str:
    adapter = audit.model.get("adapter") if isinstance(audit.model.get("adapter"), dict) else {}
    shape = adapter.get("input_shape") or (audit.model.get("metadata") or {}).get("input_shape")
    shape = shape or audit.data.get("input_shape")
    return "×".join(str(v) for v in shape) if isinstance(shape, (list, tuple)) and shape else "unknown"


def comparability(base: AuditResult, new: AuditResult) -> list[Fact]:
    """What both audits should share, in the order a reader checks it."""

    def setting(audit: AuditResult, key: str) -> str:
        value = audit.settings.get(key, audit.environment.get(key))
        return "unknown" if value is None else str(value)

    def options(audit: AuditResult) -> str:
        import json

        return json.dumps(audit.settings.get("options") or {}, sort_keys=True)

    def sized(audit: AuditResult) -> str:
        import json

        plan = audit.settings.get("sizing") or {}
        return json.dumps(plan.get("options") or {}, sort_keys=True, default=str)

    def layout(audit: AuditResult) -> str:
        # A CPU scan measures whether channels_last pays (``sizing.choose_layout``).
        return "channels_last" if (audit.settings.get("sizing") or {}).get("channels_last") \
            else "default"

    return [
        Fact("data", f"{base.data.get('name') or 'unnamed'} {_short_hash(base.data.get('fingerprint'))}",
             f"{new.data.get('name') or 'unnamed'} {_short_hash(new.data.get('fingerprint'))}",
             True, "different data: the metrics measure different examples"),
        Fact("model interface",
             f"{base.model.get('num_classes', '?')} classes, input {_shape(base)}",
             f"{new.model.get('num_classes', '?')} classes, input {_shape(new)}",
             True, "different kinds of model: the metrics answer different questions"),
        Fact("model weights", _short_hash(base.model.get("sha256")),
             _short_hash(new.model.get("sha256")), False,
             "different weights (expected when comparing two versions of a model)"),
        Fact("seed", setting(base, "seed"), setting(new, "seed"), False,
             "different seed: splits, attack starts and retraining differ, so numbers move "
             "within their noise even for the same model"),
        Fact("budget", setting(base, "budget"), setting(new, "budget"), False,
             "different budget: attack strength, bootstrap rounds and epochs differ"),
        Fact("options", options(base), options(new), False,
             "different probe options (--set): the probes measured different things"),
        Fact("work sized", sized(base), sized(new), False,
             "the time-aware plan cut different work (other machine speed or load); to plan "
             "the base's work, rerun with --cost-from BASE/audit.json"),
        Fact("memory layout", layout(base), layout(new), False,
             "a CPU layout chosen by speed: numbers may differ in their last bits; to run "
             "the base's layout, rerun with --cost-from BASE/audit.json"),
        Fact("auditkit version", base.auditkit_version or "unknown",
             new.auditkit_version or "unknown", False,
             "different auditkit versions: a probe's method may have changed"),
        Fact("probes run", ", ".join(base.probes) or "none", ", ".join(new.probes) or "none",
             False, "different probes ran: see the probe table for what ran in only one"),
    ]


def compare(
    base: AuditResult,
    new: AuditResult,
    *,
    tolerance: float = 0.01,
    tolerances: dict[str, float] | None = None,
    labels: tuple[str, str] = ("base audit", "new audit"),
    force: bool = False,
) -> AuditDiff:
    """Comparability, then metrics (direction-aware, beyond tolerance) and probe/check statuses.

    Raises ``AuditkitInputError`` (exit 2) when the audits are of different data or different
    kinds of model, unless ``force``.

    Example:
        >>> changes = compare(AuditResult.load("base.json"), AuditResult.load("new.json"))
        >>> changes.comparable, changes.regressed, [c.to_dict() for c in changes.regressions]
    """
    facts = comparability(base, new)
    blocking = [f for f in facts if f.blocking and not f.same]
    if blocking and not force:
        what = "; ".join(f"{f.name}: {f.base} vs {f.new}" for f in blocking)
        raise AuditkitInputError(
            f"{labels[0]} and {labels[1]} are not comparable ({what}): {blocking[0].meaning}; "
            "pass --force to compare them anyway"
        )
    return AuditDiff(
        diff_results(base, new, tolerance=tolerance, tolerances=tolerances, labels=labels),
        diff_statuses(base, new),
        facts,
    )


def _verdict(change: MetricChange | StatusChange) -> str:
    if change.regression:
        return "❌ regression"
    if change.improvement:
        return "✅ improved"
    if isinstance(change, StatusChange) and change.base is None:
        return "➕ new check" if change.kind == "check" else "➕ not run before"
    return "≈ same"


def _comparability_lines(changes: AuditDiff) -> list[str]:
    """Said first, before any regression: whether the numbers are comparable at all."""
    if not changes.facts:
        return []
    differences = changes.differences
    if not differences:
        return [
            "**Comparable**: same data, model interface, weights, seed, budget, options, "
            "auditkit version and probes.",
            "",
        ]
    blocking = [f for f in differences if f.blocking]
    head = (
        "**Not comparable** (compared anyway with --force)"
        if blocking
        else "**Comparable, with differences that move the numbers on their own**"
    )
    lines = [f"{head}: " + ", ".join(text(f.name) for f in differences) + ".", ""]
    lines += ["| fact | base | new | what it means |", "|---|---|---|---|"]
    for f in differences:
        lines.append(f"| {text(f.name)} | {text(f.base, 80)} | {text(f.new, 80)} | {text(f.meaning)} |")
    lines.append("")
    return lines


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

    lines = ["### auditkit diff", "", *_comparability_lines(changes)]
    lines += [f"**{regressions} regression{'s' if regressions != 1 else ''}**", ""]
    if changes.statuses:
        lines += ["| probe / check | base | new | verdict |", "|---|---|---|---|"]
        for s in changes.statuses:
            lines.append(
                f"| {code(s.item)} | {text(s.base or NOT_RUN)} | {text(s.new or NOT_RUN)} "
                f"| {_verdict(s)} |"
            )
        lines.append("")
    lines += [
        "| metric | base | new | Δ | noise (±) | better | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        noise = "—" if c.noise is None else text(f"±{c.noise:.3g} ({c.noise_source})")
        lines.append(
            f"| {code(c.metric)} | {f(c.base)} | {f(c.new)} | {f(c.delta)} | {noise} "
            f"| {text(c.direction or '—')} | {_verdict(c)} |"
        )
    if not rows:
        lines.append("| (no metric changed beyond tolerance and noise) | | | | | | |")
    return "\n".join(lines) + "\n"

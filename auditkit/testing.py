"""pytest helpers: gate a model in your own test suite with ``assert_audit``.

A plain helper rather than a pytest plugin: it needs no registration and works from any test.

Example:
    >>> from auditkit.testing import assert_audit
    >>> result = auditkit.scan(model, (x, y), policy="auditkit.toml", budget="fast")
    >>> assert_audit(result)   # fails listing every failed gate with its value
"""

from __future__ import annotations

from auditkit.results import AuditResult


class AuditFailed(AssertionError):
    """An audit did not pass; the message lists failed gates and errored probes."""


def failure_report(result: AuditResult) -> str:
    lines = [f"auditkit verdict: {result.verdict}" + ("" if result.gates else " (no gates evaluated)")]
    for gate in result.failures:
        # The detail names the metric, its value and the rule, or why it was not measured.
        lines.append(f"  gate failed: {gate.detail or f'{gate.metric} {gate.rule}'}")
    for name, error in result.errors.items():
        lines.append(f"  probe errored: {name}: {error}")
    return "\n".join(lines)


def assert_audit(result: AuditResult, *, allow_probe_errors: bool = False) -> None:
    """Raise ``AuditFailed`` unless every fail-severity gate passed (and no probe errored)."""
    if result.failures or (result.errors and not allow_probe_errors):
        raise AuditFailed(failure_report(result))

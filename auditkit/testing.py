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
    """An audit did not pass; the message lists the reasons (failed gates and probes, errors)."""


def failure_report(result: AuditResult) -> str:
    """The verdict and its reasons, in the words the console, report and summary.md use."""
    lines = [f"auditkit verdict: {result.verdict_text}" + ("" if result.gates else " (no gates evaluated)")]
    lines += [f"  {reason.line}" for reason in result.verdict_reasons]
    return "\n".join(lines)


def assert_audit(result: AuditResult, *, allow_probe_errors: bool = False) -> None:
    """Raise ``AuditFailed`` unless the verdict passed (a fail-severity gate failed, or a probe's
    grade reached ``fail_on``, fails it); ``allow_probe_errors`` tolerates errored probes."""
    if result.verdict == "failed" or (result.errors and not allow_probe_errors):
        raise AuditFailed(failure_report(result))

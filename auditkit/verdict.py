"""The verdict of an audit and the reasons behind it, decided in one place.

Console, report header, summary.md, junit.xml and audit.json all print what this module decides,
so they cannot disagree. The default policy is the probes' own judgement:

- a probe ``failed`` (or a fail-severity gate failed) → verdict ``failed``, exit 1;
- a probe ``warned`` (or a warn-severity gate failed) → verdict ``passed``, shown as
  "passed with warnings", exit 0;
- a probe ``error`` (and nothing failed) → verdict ``error``, exit 3.

``fail_on`` moves the line: ``warned`` also fails the verdict on warnings, ``never`` lets the
probes' grades inform without failing (then only fail-severity gates fail). It comes from
``--fail-on``, the policy file's top-level ``fail_on`` key, or ``scan(..., fail_on=...)``.

Every item has one reason: the check or finding that set its grade (``grade_reason``), so a tile,
the "What to look at first" list and the verdict line quote the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# ``ProbeResult`` / ``GateResult`` objects or their audit.json dictionaries (read with ``_get``):
# typed loosely so this room needs nothing from ``auditkit.results``, which builds on it.

FAIL_ON = ("failed", "warned", "never")
DEFAULT_FAIL_ON = "failed"
EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 3

# Worst first: the order of reasons everywhere.
_RANK = {"error": 0, "failed": 0, "warned": 1}
_CHECK_ORDER = ("failed", "warned")
_FINDING_ORDER = ("critical", "warning")


@dataclass(frozen=True)
class Reason:
    """One non-passed item: a probe or a gate, its status and the words that explain it."""

    item: str  # probe name, or the gate's "probe.metric"
    kind: str  # probe | gate
    status: str  # failed | warned | error
    text: str  # the check / finding / gate detail that set the grade
    decides: bool  # whether it made the verdict what it is (False: reported only)

    @property
    def line(self) -> str:
        """``bias failed: <reason>`` / ``gate failed: <detail>``: the same words everywhere."""
        word = "errored" if self.status == "error" else self.status
        if self.kind == "gate":
            return f"gate {word}: {self.text}"  # the detail names the metric and its value
        return f"{self.item} {word}: {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "kind": self.kind,
            "status": self.status,
            "text": self.text,
            "decides": self.decides,
            "line": self.line,
        }


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def grade_items(probe: Any) -> list[tuple[str, str, str]]:
    """The probe's failed and warned items, worst first: ``(status, source, text)``.

    Checks come before findings (a check is the measured rule that set the grade), failed before
    warned, critical before warning. Works on a ``ProbeResult`` or its audit.json dictionary.
    """
    items: list[tuple[str, str, str]] = []
    checks = list(_get(probe, "checks") or [])
    findings = list(_get(probe, "findings") or [])
    for rank in range(2):
        for check in checks:
            if _get(check, "status") == _CHECK_ORDER[rank]:
                name = str(_get(check, "name") or "check")
                detail = str(_get(check, "detail") or "").strip()
                items.append((_CHECK_ORDER[rank], f"check {name}", detail or name))
        for finding in findings:
            if _get(finding, "severity") == _FINDING_ORDER[rank]:
                items.append((_CHECK_ORDER[rank], "finding", str(_get(finding, "title") or "")))
    return items


def grade_reason(probe: Any) -> str:
    """The one line that says why a probe has its grade (what its tile shows)."""
    status = _get(probe, "status")
    if status == "error":
        return f"the probe did not finish: {_get(probe, 'error') or 'no message recorded'}"
    if status == "skipped":
        return str(_get(probe, "skip_reason") or _get(probe, "summary") or "not run")
    if status in ("failed", "warned"):
        # The worst item set the grade (a probe may grade a failed validity check "warned").
        items = grade_items(probe)
        if items:
            # "check_name: detail" — the check first, so a tile cut short still names it.
            _, source, text = items[0]
            return f"{source.removeprefix('check ')}: {text}" if source != "finding" else text
    return str(_get(probe, "summary") or "")


def verdict_reasons(
    probes: Mapping[str, Any],
    gates: Sequence[Any],
    fail_on: str = DEFAULT_FAIL_ON,
) -> list[Reason]:
    """Every non-passed probe and gate, worst first, marking which ones decide the verdict."""
    fail_on = fail_on if fail_on in FAIL_ON else DEFAULT_FAIL_ON
    reasons: list[Reason] = []
    for name, probe in probes.items():
        status = str(_get(probe, "status"))
        if status not in _RANK:
            continue
        decides = status == "error" or (
            fail_on == "failed" and status == "failed"
        ) or (fail_on == "warned" and status in ("failed", "warned"))
        reasons.append(Reason(str(name), "probe", status, grade_reason(probe), decides))
    for gate in gates:
        if _get(gate, "passed"):
            continue
        status = "failed" if _get(gate, "severity", "fail") == "fail" else "warned"
        detail = str(_get(gate, "detail") or f"{_get(gate, 'metric')} {_get(gate, 'rule')}")
        reasons.append(
            Reason(str(_get(gate, "metric")), "gate", status, detail, status == "failed")
        )
    return sorted(reasons, key=lambda r: _RANK[r.status])


def decide(
    probes: Mapping[str, Any],
    gates: Sequence[Any],
    fail_on: str = DEFAULT_FAIL_ON,
) -> str:
    """``failed`` | ``error`` | ``passed``: a failure wins over an error (exit 1 before 3)."""
    reasons = verdict_reasons(probes, gates, fail_on)
    if any(r.decides and r.status in ("failed", "warned") for r in reasons):
        return "failed"
    if any(r.status == "error" for r in reasons):
        return "error"
    return "passed"


def verdict_text(verdict: str, reasons: Sequence[Reason]) -> str:
    """What people read: ``passed`` / ``passed with warnings`` / ``failed`` / ``error``."""
    if verdict == "passed" and reasons:
        return "passed with warnings"
    return verdict


def exit_code_for(verdict: str) -> int:
    return {"passed": EXIT_PASSED, "failed": EXIT_FAILED}.get(verdict, EXIT_ERROR)


def check_fail_on(value: Any, source: str = "--fail-on") -> str:
    """``value`` if it is one of failed | warned | never, else exit-2 bad input naming the fix."""
    from auditkit.errors import AuditkitInputError

    if value not in FAIL_ON:
        raise AuditkitInputError(
            f"{source} {value!r}: use one of {', '.join(FAIL_ON)} (failed: a failed probe fails "
            "the audit; warned: a warning does too; never: only gates fail it)"
        )
    return str(value)


def verdict_basis(
    fail_on: str, policy_source: str | None, gates: Sequence[Any],
    probes: Mapping[str, Any] | None = None,
) -> str:
    """What the verdict rests on, in words: the policy (if any), how grades count and, given
    ``probes``, the checks passed (counted by ``auditkit.counts``, as every output does)."""
    from auditkit.counts import audit_counts, counts_text, gate_counts

    checks = ""
    if probes is not None:
        counts = audit_counts(probes, [])
        checks = "; " + counts_text(counts)
    grades = {
        "failed": "a failed probe fails the audit",
        "warned": "a failed or warned probe fails the audit (--fail-on warned)",
        "never": "probe grades do not fail the audit (--fail-on never)",
    }[fail_on if fail_on in FAIL_ON else DEFAULT_FAIL_ON]
    if policy_source is None and not gates:
        return f"no policy: no gates evaluated; {grades}{checks}"
    held, total = gate_counts(gates)
    if not gates:
        return f"policy {policy_source} has no gates; {grades}{checks}"
    where = f"; policy {policy_source}" if policy_source else ""
    return f"{held} of {total} gates hold{where}; {grades}{checks}"

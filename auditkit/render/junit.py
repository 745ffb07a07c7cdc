"""junit.xml: one testcase per probe check and per gate, failures carrying the numbers.

Shape (what Jenkins, GitLab, GitHub test reporters and Azure read)::

    testsuites[name, tests, failures, errors, skipped, time]
      testsuite[name, tests, failures, errors, skipped, time, timestamp?]   verdict, one per
                                                                            probe, + gates
        properties > property[name, value]      the probe's status and metrics
        testcase[classname, name, time]         "run" (the probe itself), then one per check
          failure[message, type] | error[message, type] | skipped[message] | system-out

A probe's own run is a testcase too, so an errored or skipped probe shows up as an error or a
skip rather than as an empty suite. A first suite, ``auditkit.verdict``, holds one testcase: the
audit's verdict with its reasons, the same lines as the console and summary.md.

JUnit has no warning state, and CI reads any failure as a red build, so an item is a
``failure`` only where it fails the verdict: a failed probe (and its failed checks) at the
default ``fail_on = "failed"``, warned ones too at ``warned``, none at ``never``. Everything else
passes and says ``WARNING`` in ``system-out``, as warn-severity gates do.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from auditkit.counts import audit_counts, counts_text
from auditkit.render.fmt import format_number, format_value
from auditkit.results import AuditResult, Check, GateResult, ProbeResult
from auditkit.verdict import grade_reason

# Characters XML 1.0 cannot carry at all (tracebacks can hold ANSI escapes, for instance).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_COUNTS = ("tests", "failures", "errors", "skipped")


def _clean(text: Any) -> str:
    return _INVALID_XML.sub("", "" if text is None else str(text))


def _numbers(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items())


def _timestamp(started_at: str) -> str | None:
    """ISO 8601 without the zone, the form the JUnit schema's xs:dateTime pattern expects."""
    match = re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", started_at or "")
    return match.group(0) if match else None


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(
        suite, "testcase", classname=_clean(classname), name=_clean(name), time=f"{seconds:.3f}"
    )


def _out(case: ET.Element, text: str) -> None:
    ET.SubElement(case, "system-out").text = _clean(text)


def _decides(status: str, fail_on: str) -> bool:
    """Whether a probe graded ``status`` fails the verdict at ``fail_on``."""
    return (fail_on == "failed" and status == "failed") or (
        fail_on == "warned" and status in ("failed", "warned")
    )


def _verdict_suite(root: ET.Element, result: AuditResult, stamp: str | None) -> dict[str, int]:
    suite = ET.SubElement(root, "testsuite", name="auditkit.verdict")
    if stamp:
        suite.set("timestamp", stamp)
    properties = ET.SubElement(suite, "properties")
    counts = audit_counts(result.probes, result.gates)
    for key, value in (
        ("verdict", result.verdict), ("verdict_text", result.verdict_text),
        ("fail_on", result.fail_on), ("counts", counts_text(counts)),
        *((k, counts[k]) for k in ("gates_held", "gates_total", "checks_passed",
                                   "checks_applicable")),
    ):
        ET.SubElement(properties, "property", name=key, value=_clean(value))
    case = _case(suite, "auditkit.verdict", "verdict", result.duration_seconds)
    reasons = "\n".join(r.line for r in result.verdict_reasons)
    headline = result.verdict_text + (f": {result.verdict_reasons[0].line}" if reasons else "")
    if result.verdict == "failed":
        ET.SubElement(case, "failure", message=_clean(headline), type="VerdictFailed").text = (
            _clean(reasons)
        )
        outcome = "failure"
    elif result.verdict == "error":
        ET.SubElement(case, "error", message=_clean(headline), type="ProbeError").text = _clean(
            reasons
        )
        outcome = "error"
    else:
        _out(case, result.verdict_text + (f"\n{reasons}" if reasons else ""))
        outcome = "passed"
    return _finish(suite, [outcome], result.duration_seconds)


def _run_case(
    suite: ET.Element, classname: str, probe: ProbeResult, fail_on: str = "failed"
) -> str:
    """The probe's own testcase; returns its outcome (passed | failure | error | skipped)."""
    case = _case(suite, classname, "run", probe.seconds)
    headline = ""
    if probe.headline and probe.headline in probe.metrics:
        headline = f"{probe.headline} = {format_number(probe.metrics[probe.headline])}"
    if probe.status == "error":
        message = probe.error or "the probe raised an error"
        error_type = (
            message.split(":", 1)[0]
            if ":" in message and " " not in message.split(":", 1)[0]
            else "ProbeError"
        )
        ET.SubElement(
            case, "error", message=_clean(message), type=_clean(error_type)
        ).text = _clean(
            probe.details.get("traceback")
            if isinstance(probe.details.get("traceback"), str)
            else message
        )
        return "error"
    if probe.status == "skipped":
        ET.SubElement(
            case, "skipped", message=_clean(probe.skip_reason or probe.summary or "not run")
        )
        return "skipped"
    if _decides(probe.status, fail_on):
        message = (
            "; ".join(part for part in (grade_reason(probe), headline) if part)
            or f"the probe {probe.status}"
        )
        ET.SubElement(case, "failure", message=_clean(message), type="ProbeFailed").text = _clean(
            json.dumps(probe.metrics, sort_keys=True, allow_nan=False, default=str)
        )
        return "failure"
    word = "WARNING: " if probe.status in ("failed", "warned") else ""
    _out(
        case,
        f"{word}{probe.status}: {grade_reason(probe)}" + (f" ({headline})" if headline else ""),
    )
    return "passed"


def _check_case(suite: ET.Element, classname: str, check: Check, decides: bool = True) -> str:
    case = _case(suite, classname, check.name)
    numbers = _numbers(check.values)
    if check.status == "failed" and decides:
        message = check.detail + (f" ({numbers})" if numbers else "")
        ET.SubElement(
            case, "failure", message=_clean(message or "check failed"), type="CheckFailed"
        ).text = _clean(json.dumps(check.values, sort_keys=True, default=str))
        return "failure"
    if check.status == "skipped":
        ET.SubElement(case, "skipped", message=_clean(check.detail or "skipped"))
        return "skipped"
    prefix = "WARNING: " if check.status in ("warned", "failed") else "passed: "
    if check.status == "failed":
        prefix += "check failed (its probe's grade does not fail the audit): "
    _out(case, prefix + check.detail + (f" ({numbers})" if numbers else ""))
    return "passed"


def _gate_case(suite: ET.Element, gate: GateResult) -> str:
    case = _case(suite, "auditkit.gates", f"{gate.metric} {gate.rule}")
    numbers = f"{gate.metric} = {format_number(gate.value)}, required {gate.rule}"
    if not gate.passed and gate.severity == "fail":
        message = gate.detail or numbers
        ET.SubElement(case, "failure", message=_clean(message), type="GateFailed").text = _clean(
            f"{numbers}\nvalue={gate.value!r} rule={gate.rule!r} severity={gate.severity}"
        )
        return "failure"
    _out(
        case,
        ("passed: " if gate.passed else "WARNING (warn-only gate): ") + (gate.detail or numbers),
    )
    return "passed"


def _finish(suite: ET.Element, outcomes: list[str], seconds: float) -> dict[str, int]:
    counts = {
        "tests": len(outcomes),
        "failures": outcomes.count("failure"),
        "errors": outcomes.count("error"),
        "skipped": outcomes.count("skipped"),
    }
    for key in _COUNTS:
        suite.set(key, str(counts[key]))
    suite.set("time", f"{seconds:.3f}")
    return counts


def render_junit(result: AuditResult) -> str:
    """The audit as JUnit XML; a pure function of audit.json (same bytes from a reload)."""
    result = AuditResult.from_json(result.to_json())
    root = ET.Element("testsuites", name="auditkit")
    total = dict.fromkeys(_COUNTS, 0)
    stamp = _timestamp(result.started_at)
    for key, value in _verdict_suite(root, result, stamp).items():
        total[key] += value
    for name, probe in result.probes.items():
        classname = f"auditkit.{name}"
        suite = ET.SubElement(root, "testsuite", name=_clean(classname))
        if stamp:
            suite.set("timestamp", stamp)
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="status", value=_clean(probe.status))
        for metric, value in probe.metrics.items():
            ET.SubElement(
                properties,
                "property",
                name=_clean(f"{name}.{metric}"),
                value=_clean(format_number(value, 6)),
            )
        decides = _decides(probe.status, result.fail_on)
        outcomes = [_run_case(suite, classname, probe, result.fail_on)]
        outcomes += [_check_case(suite, classname, check, decides) for check in probe.checks]
        for key, value in _finish(suite, outcomes, probe.seconds).items():
            total[key] += value
    if result.gates:
        suite = ET.SubElement(root, "testsuite", name="auditkit.gates")
        if stamp:
            suite.set("timestamp", stamp)
        outcomes = [_gate_case(suite, gate) for gate in result.gates]
        for key, value in _finish(suite, outcomes, 0.0).items():
            total[key] += value
    for key in _COUNTS:
        root.set(key, str(total[key]))
    root.set("time", f"{result.duration_seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

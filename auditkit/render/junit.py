"""junit.xml: one testcase per probe check and per gate, failures carrying the numbers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from auditkit.results import AuditResult


def render_junit(result: AuditResult) -> str:
    root = ET.Element("testsuites", name="auditkit")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, probe in result.probes.items():
        suite = ET.SubElement(root, "testsuite", name=f"auditkit.{name}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        cases = []
        if probe.status in ("error", "skipped"):
            case = ET.Element("testcase", classname=f"auditkit.{name}", name="run", time=f"{probe.seconds:.3f}")
            if probe.status == "error":
                ET.SubElement(case, "error", message=probe.error or "error", type="ProbeError").text = (
                    probe.details.get("traceback", probe.error or "")
                )
                counts["errors"] += 1
            else:
                ET.SubElement(case, "skipped", message=probe.skip_reason or "skipped")
                counts["skipped"] += 1
            cases.append(case)
        for check in probe.checks:
            case = ET.Element("testcase", classname=f"auditkit.{name}", name=check.name, time="0")
            values = json.dumps(check.values, sort_keys=True)
            if check.status == "failed":
                ET.SubElement(case, "failure", message=check.detail, type="CheckFailed").text = values
                counts["failures"] += 1
            elif check.status == "skipped":
                ET.SubElement(case, "skipped", message=check.detail or "skipped")
                counts["skipped"] += 1
            else:
                ET.SubElement(case, "system-out").text = f"{check.status}: {check.detail} {values}"
            cases.append(case)
        for case in cases:
            suite.append(case)
        counts["tests"] = len(cases)
        for key, value in counts.items():
            suite.set(key, str(value))
            total[key] += value
        suite.set("time", f"{probe.seconds:.3f}")
    if result.gates:
        suite = ET.SubElement(root, "testsuite", name="auditkit.gates")
        failures = 0
        for gate in result.gates:
            case = ET.SubElement(suite, "testcase", classname="auditkit.gates", name=f"{gate.metric} {gate.rule}", time="0")
            if not gate.passed and gate.severity == "fail":
                ET.SubElement(case, "failure", message=gate.detail, type="GateFailed").text = (
                    f"value={gate.value} rule={gate.rule}"
                )
                failures += 1
            else:
                ET.SubElement(case, "system-out").text = (
                    f"{'passed' if gate.passed else 'warning'}: {gate.detail}"
                )
        suite.set("tests", str(len(result.gates)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total["tests"] += len(result.gates)
        total["failures"] += failures
    for key, value in total.items():
        root.set(key, str(value))
    root.set("time", f"{result.duration_seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

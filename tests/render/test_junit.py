"""junit.xml: the JUnit shape CI tools read, consistent counts, failures that carry numbers."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET

import pytest

from auditkit.render import render_junit
from auditkit.results import AuditResult, Check

OUTCOMES = ("failure", "error", "skipped")
COUNTS = ("tests", "failures", "errors", "skipped")


def _count(value: str | None, what: str) -> int:
    assert value is not None and re.fullmatch(r"\d+", value), f"{what}={value!r} is not a count"
    return int(value)


def _seconds(value: str | None, what: str) -> float:
    assert value is not None and re.fullmatch(r"\d+(\.\d+)?", value), f"{what}={value!r}"
    return float(value)


def assert_junit_shape(text: str) -> ET.Element:
    """Check the structure Jenkins/GitLab/GitHub reporters read (junit-10.xsd, Surefire style).

    testsuites[name,tests,failures,errors,skipped,time] > testsuite[same] >
    properties? > property[name,value]; testcase[classname,name,time] > at most one of
    failure[message,type] | error[message,type] | skipped[message?], plus system-out/err.
    Every count must equal what the children say, and the root must add up the suites.
    """
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    totals = dict.fromkeys(COUNTS, 0)
    for suite in root:
        assert suite.tag == "testsuite", suite.tag
        assert suite.get("name"), "testsuite without a name"
        _seconds(suite.get("time"), "testsuite time")
        if suite.get("timestamp") is not None:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", suite.get("timestamp"))
        seen = dict.fromkeys(COUNTS, 0)
        children = list(suite)
        properties = [c for c in children if c.tag == "properties"]
        assert len(properties) <= 1 and (not properties or children[0] is properties[0])
        for prop in properties[0] if properties else []:
            assert prop.tag == "property" and prop.get("name") and prop.get("value") is not None
        for case in children:
            if case.tag in ("properties", "system-out", "system-err"):
                continue
            assert case.tag == "testcase", case.tag
            assert case.get("classname") and case.get("name")
            _seconds(case.get("time"), "testcase time")
            kinds = [c.tag for c in case]
            assert set(kinds) <= {*OUTCOMES, "system-out", "system-err"}, kinds
            outcome = [k for k in kinds if k in OUTCOMES]
            assert len(outcome) <= 1, kinds
            seen["tests"] += 1
            if outcome:
                node = case.find(outcome[0])
                if outcome[0] in ("failure", "error"):
                    assert node.get("type") and node.get("message") is not None
                seen[
                    {"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome[0]]
                ] += 1
        for key in COUNTS:
            assert _count(suite.get(key), f"{suite.get('name')} {key}") == seen[key], (
                suite.get("name"),
                key,
            )
            totals[key] += seen[key]
    for key in COUNTS:
        assert _count(root.get(key), f"testsuites {key}") == totals[key], key
    _seconds(root.get("time"), "testsuites time")
    return root


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}


@pytest.fixture(scope="module")
def junit(rich_audit) -> ET.Element:
    return assert_junit_shape(render_junit(rich_audit))


def test_one_testcase_per_check_per_gate_and_per_probe_run(rich_audit, junit):
    cases = _cases(junit)
    expected = {(f"auditkit.{n}", "run") for n in rich_audit.probes}
    expected |= {(f"auditkit.{n}", c.name) for n, p in rich_audit.probes.items() for c in p.checks}
    expected |= {("auditkit.gates", f"{g.metric} {g.rule}") for g in rich_audit.gates}
    expected |= {("auditkit.verdict", "verdict")}
    assert set(cases) == expected
    assert [s.get("name") for s in junit] == [
        "auditkit.verdict", *(f"auditkit.{n}" for n in rich_audit.probes), "auditkit.gates"
    ]


def test_verdict_case_carries_the_verdict_and_its_reasons(rich_audit, junit):
    case = _cases(junit)[("auditkit.verdict", "verdict")]
    failure = case.find("failure")
    assert rich_audit.verdict == "failed" and failure.get("type") == "VerdictFailed"
    assert failure.text.splitlines() == [r.line for r in rich_audit.verdict_reasons]
    assert failure.get("message").startswith("failed: ")


def test_failed_check_of_a_warned_probe_fails_junit_only_where_warnings_fail(rich_audit, junit):
    # Default fail_on = "failed": the adversarial probe is warned, so its failed check is a
    # WARNING that still carries its numbers, not a red build the verdict does not share.
    warned = _cases(junit)[("auditkit.adversarial", "unbounded_attack_reaches_zero")]
    assert warned.find("failure") is None
    assert "WARNING" in warned.find("system-out").text
    assert "accuracy_at_large_eps=0.3125" in warned.find("system-out").text
    strict = assert_junit_shape(render_junit(rich_audit.with_gates(rich_audit.gates, "warned")))
    failure = _cases(strict)[("auditkit.adversarial", "unbounded_attack_reaches_zero")].find(
        "failure"
    )
    assert failure.get("type") == "CheckFailed"
    assert "accuracy_at_large_eps=0.3125" in failure.get("message")
    assert "chance=0.25" in failure.get("message")
    assert json.loads(failure.text) == {"accuracy_at_large_eps": 0.3125, "chance": 0.25, "eps": 1.0}
    warned = _cases(strict)[("auditkit.adversarial", "step_doubling_stable")]
    assert warned.find("failure") is None and "WARNING" in warned.find("system-out").text
    assert (
        _cases(strict)[("auditkit.adversarial", "stochastic_model_uses_eot")].find("skipped")
        is not None
    )


def test_gates_fail_with_value_and_rule_and_warn_gates_pass(junit):
    cases = _cases(junit)
    failure = cases[("auditkit.gates", "adversarial.robust_accuracy >= 0.3")].find("failure")
    assert failure.get("type") == "GateFailed"
    assert "0.09" in failure.get("message") and ">= 0.3" in failure.get("message")
    warn = cases[("auditkit.gates", "calibration.ece <= 0.05")]
    assert warn.find("failure") is None and "WARNING" in warn.find("system-out").text
    assert (
        cases[("auditkit.gates", "performance.accuracy >= 0.9")]
        .find("system-out")
        .text.startswith("passed")
    )


def test_probe_outcomes_map_to_error_skip_and_failure(junit):
    cases = _cases(junit)
    error = next(
        c for (cls, n), c in cases.items() if cls.startswith("auditkit.graph") and n == "run"
    )
    assert error.find("error").get("type") == "RuntimeError"
    assert "Traceback (most recent call last)" in error.find("error").text
    assert (
        cases[("auditkit.memorization", "run")]
        .find("skipped")
        .get("message")
        .startswith("the model format")
    )
    failed = cases[("auditkit.calibration", "run")].find("failure")
    assert failed.get("type") == "ProbeFailed" and "ece = 0.1234" in failed.get("message")
    assert float(cases[("auditkit.adversarial", "run")].get("time")) == pytest.approx(12.5)
    suite = junit.find("testsuite[@name='auditkit.performance']")
    metrics = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert metrics["performance.accuracy"] == "0.9875" and metrics["status"] == "passed"


def test_hostile_text_and_control_characters_survive_as_valid_xml(make_audit, hostile):
    audit = make_audit(hostile.script + "\x1b[31m\x00\x07")
    probe = audit.probes["adversarial"]
    bad = Check("ansi\x1b[0m", "failed", f"red \x1b[31m{hostile.script}\x00", {"x": 1.0})
    audit = dataclasses.replace(
        audit,
        probes={
            **audit.probes,
            "adversarial": dataclasses.replace(probe, checks=[*probe.checks, bad]),
        },
        fail_on="warned",  # so the warned probe's failed check is a JUnit failure
    )
    root = assert_junit_shape(render_junit(audit))
    failure = _cases(root)[("auditkit.adversarial", "ansi[0m")].find("failure")
    assert failure.get("message") == f"red [31m{hostile.script} (x=1)"


def test_validator_rejects_inconsistent_counts(rich_audit):
    text = render_junit(rich_audit).replace('tests="19"', 'tests="18"', 1)
    with pytest.raises(AssertionError):
        assert_junit_shape(text)
    nested = render_junit(rich_audit).replace(
        "<system-out>passed: model outputs",
        "<failure type='x' message='m'/><error type='y' message='n'/><system-out>passed: model outputs",
        1,
    )
    with pytest.raises(AssertionError):
        assert_junit_shape(nested)


def test_junit_is_a_pure_function_of_audit_json(rich_audit):
    assert render_junit(rich_audit) == render_junit(AuditResult.from_json(rich_audit.to_json()))


def test_demo_junit_validates_and_matches_the_audit(demo_outputs):
    audit = AuditResult.load(demo_outputs / "audit.json")
    root = assert_junit_shape((demo_outputs / "junit.xml").read_text(encoding="utf-8"))
    checks = sum(len(p.checks) for p in audit.probes.values())
    assert int(root.get("tests")) == 1 + checks + len(audit.probes) + len(audit.gates)
    # Failures are exactly what fails the verdict: failed probes with their failed checks, the
    # failed fail-severity gates, and the verdict's own testcase.
    failed = [p for p in audit.probes.values() if p.status == "failed"]
    failed_checks = sum(c.status == "failed" for p in failed for c in p.checks)
    verdict_case = audit.verdict == "failed"
    assert int(root.get("failures")) == (
        failed_checks + len(failed) + len(audit.failures) + verdict_case
    )
    assert int(root.get("errors")) == sum(p.status == "error" for p in audit.probes.values())

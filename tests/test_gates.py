"""Policies and gates: parsing, validation against known metrics, evaluation, exit codes."""

from __future__ import annotations

import pytest

from auditkit.errors import AuditkitInputError
from auditkit.gates import (
    EXIT_GATE_FAILED,
    EXIT_PASSED,
    EXIT_PROBE_ERROR,
    apply_policy,
    evaluate,
    exit_code,
    find_policy_file,
    load_policy,
    parse_policy,
)
from auditkit.results import AuditResult, Check, ProbeResult


def _result(accuracy: float = 0.9, *, error: bool = False, checks=None) -> AuditResult:
    probes = {
        "performance": ProbeResult(
            name="performance", status="passed",
            metrics={"accuracy": accuracy, "balanced_accuracy": accuracy},
            checks=checks or [],
        )
    }
    if error:
        probes["broken"] = ProbeResult(name="broken", status="error", error="boom")
    return AuditResult(model={}, data={}, environment={}, probes=probes)


def test_rules_compare_in_the_stated_direction():
    policy = parse_policy({"gates": {"performance.accuracy": ">= 0.95"}})
    assert [g.passed for g in evaluate(_result(0.96), policy)] == [True]
    assert [g.passed for g in evaluate(_result(0.94), policy)] == [False]
    policy = parse_policy({"gates": {"performance.accuracy": "< 0.5"}})
    assert [g.passed for g in evaluate(_result(0.94), policy)] == [False]


def test_failed_gate_names_metric_value_and_rule_and_sets_exit_1():
    result = apply_policy(_result(0.80), {"gates": {"performance.accuracy": ">= 0.95"}})
    assert result.verdict == "failed" and exit_code(result) == EXIT_GATE_FAILED
    (gate,) = result.failures
    assert gate.metric == "performance.accuracy" and gate.value == pytest.approx(0.80)
    assert "performance.accuracy = 0.8" in gate.detail and ">= 0.95" in gate.detail


def test_warn_severity_does_not_fail_the_build():
    policy = {"gates": {"performance.accuracy": {"rule": ">= 0.95", "severity": "warn"}}}
    result = apply_policy(_result(0.80), policy)
    assert result.gates[0].passed is False
    assert result.passed and exit_code(result) == EXIT_PASSED


def test_probe_error_gives_exit_3_but_a_failed_gate_wins():
    assert exit_code(apply_policy(_result(0.99, error=True), {"gates": {}})) == EXIT_PROBE_ERROR
    failed = apply_policy(_result(0.5, error=True), {"gates": {"performance.accuracy": ">= 0.9"}})
    assert exit_code(failed) == EXIT_GATE_FAILED


def test_unmeasured_metric_fails_closed_and_says_why():
    result = _result()
    skipped = AuditResult(
        model={}, data={}, environment={},
        probes={**result.probes, "calibration": ProbeResult(
            name="calibration", status="skipped", skip_reason="no gradients")},
    )
    gated = apply_policy(skipped, {"gates": {"calibration.ece": "<= 0.05"}})
    (gate,) = gated.gates
    assert not gate.passed and "skipped" in gate.detail


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"gates": {"nosuchprobe.accuracy": ">= 0.1"}}, "unknown probe 'nosuchprobe'"),
        ({"gates": {"performance.acc": ">= 0.1"}}, "performance.accuracy"),  # lists valid names
        ({"gates": {"performance.accuracy": "at least 0.9"}}, "is not a rule"),
        ({"gates": {"performance.accuracy": {"rule": ">= 1", "severity": "loud"}}}, "severity"),
        ({"gatez": {}}, "unknown policy section"),
        ({"checks": {"performance": "fail"}}, "check rule"),
    ],
)
def test_malformed_policies_are_bad_input_with_the_fix(doc, needle):
    with pytest.raises(AuditkitInputError) as info:
        parse_policy(doc)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_check_rules_require_named_checks_to_pass():
    checks = [Check("a", "passed"), Check("b", "failed", "b broke")]
    result = _result(0.99, checks=checks)
    whole = evaluate(result, parse_policy({"checks": {"performance": "pass"}}))
    assert not whole[0].passed and "b" in whole[0].detail and whole[0].value == "1/2"
    one = evaluate(result, parse_policy({"checks": {"performance.a": "pass"}}))
    assert one[0].passed
    missing = evaluate(result, parse_policy({"checks": {"performance.zzz": "pass"}}))
    assert not missing[0].passed and "no check 'zzz'" in missing[0].detail


def test_policy_files_are_found_in_auditkit_toml_then_pyproject(tmp_path):
    assert find_policy_file(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_policy_file(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text(
        '[tool.auditkit.gates]\n"performance.accuracy" = ">= 0.5"\n'
    )
    assert find_policy_file(tmp_path) == tmp_path / "pyproject.toml"
    policy = load_policy(tmp_path / "pyproject.toml")
    assert policy.rules[0].target == "performance.accuracy"
    (tmp_path / "auditkit.toml").write_text('[gates]\n"performance.accuracy" = ">= 0.7"\n')
    assert find_policy_file(tmp_path) == tmp_path / "auditkit.toml"
    assert load_policy(find_policy_file(tmp_path)).rules[0].threshold == 0.7


def test_invalid_toml_is_one_line_bad_input(tmp_path):
    bad = tmp_path / "auditkit.toml"
    bad.write_text("[gates\n")
    with pytest.raises(AuditkitInputError, match="not valid TOML"):
        load_policy(bad)


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"gates": 5}, "[gates] must be a table"),
        ({"gates": ["a"]}, "[gates] must be a table"),
        ({"gates": []}, "[gates] must be a table"),  # falsy, so it used to read as "no gates"
        ({"checks": "adversarial"}, "[checks] must be a table"),
        ({"checks": 0}, "[checks] must be a table"),
    ],
)
def test_policy_sections_must_be_tables(doc, needle):
    with pytest.raises(AuditkitInputError) as info:
        parse_policy(doc)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_tool_auditkit_that_is_not_a_table_is_bad_input(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool]\nauditkit = 5\n")
    with pytest.raises(AuditkitInputError, match="a policy is a table"):
        load_policy(find_policy_file(tmp_path))


@pytest.mark.parametrize("name", ["pyproject.toml", "auditkit.toml"])
def test_malformed_policy_file_fails_closed_naming_the_file(tmp_path, name):
    """A gate must never disappear because someone broke the TOML."""
    (tmp_path / name).write_text('[tool.auditkit.gates\n"performance.accuracy" = ">= 0.9"\n')
    with pytest.raises(AuditkitInputError) as info:
        load_policy(find_policy_file(tmp_path))
    assert str(tmp_path / name) in str(info.value) and "not valid TOML" in str(info.value)


def test_unmeasured_metric_of_a_probe_that_ran_names_metric_and_reason():
    """bias.accuracy_difference needs sensitive columns; the gate says so and offers the proxy."""
    bias = ProbeResult(
        name="bias", status="passed",
        metrics={"overall_accuracy": 0.99, "accuracy_difference": None,
                 "demographic_parity_difference": None, "proxy_accuracy_difference": 0.02},
        details={"slice_kind": "proxy"},
        summary="PROXY slices, not demographics",
    )
    result = AuditResult(model={}, data={}, environment={}, probes={"bias": bias})
    gates = evaluate(result, parse_policy({"gates": {
        "bias.accuracy_difference": "<= 0.05",
        "bias.demographic_parity_difference": "<= 0.1",
    }}))
    first, second = (g.detail for g in gates)
    assert first.startswith("bias.accuracy_difference not measured: ")
    assert "no sensitive columns" in first and "--sensitive" in first
    assert "bias.proxy_accuracy_difference" in first
    assert second.startswith("bias.demographic_parity_difference not measured: ")
    assert "proxy_" not in second  # no proxy twin to suggest


def test_unmeasured_reasons_for_probes_that_did_not_run():
    errored = ProbeResult(name="calibration", status="error", error="RuntimeError: boom")
    result = AuditResult(model={}, data={}, environment={}, probes={"calibration": errored})
    policy = parse_policy({"gates": {"calibration.ece": "<= 0.05",
                                     "performance.accuracy": ">= 0.9"}})
    ece, accuracy = evaluate(result, policy)
    assert ece.detail == (
        "calibration.ece not measured: the calibration probe errored (RuntimeError: boom)"
    )
    assert accuracy.detail == (
        "performance.accuracy not measured: the performance probe did not run in this audit"
    )


def test_rules_on_probes_that_will_not_run_are_rejected_up_front():
    from auditkit.gates import check_selection

    policy = parse_policy({"gates": {"performance.accuracy": ">= 0.9"},
                           "checks": {"adversarial": "pass"}}, "adv.toml")
    check_selection(policy, ["performance", "adversarial"])
    with pytest.raises(AuditkitInputError) as info:
        check_selection(policy, ["performance"])
    assert str(info.value) == (
        "adv.toml: check rule 'adversarial' names probe 'adversarial', which --probes does not "
        "select (selected: performance); add it to --probes or remove the check rule"
    )


def _graded(*statuses: str) -> AuditResult:
    probes = {
        f"p{i}": ProbeResult(
            name=f"p{i}", status=s, error="boom" if s == "error" else None,
            checks=[Check("the_rule", "failed" if s == "failed" else "warned", f"why {s}")]
            if s in ("failed", "warned") else [],
        )
        for i, s in enumerate(statuses)
    }
    return AuditResult(model={}, data={}, environment={}, probes=probes)


@pytest.mark.parametrize(
    ("statuses", "fail_on", "verdict", "text", "code"),
    [
        (("passed", "skipped"), "failed", "passed", "passed", EXIT_PASSED),
        (("passed", "warned"), "failed", "passed", "passed with warnings", EXIT_PASSED),
        (("passed", "failed"), "failed", "failed", "failed", EXIT_GATE_FAILED),
        (("passed", "error"), "failed", "error", "error", EXIT_PROBE_ERROR),
        (("failed", "error"), "failed", "failed", "failed", EXIT_GATE_FAILED),
        (("passed", "warned"), "warned", "failed", "failed", EXIT_GATE_FAILED),
        (("warned", "failed"), "never", "passed", "passed with warnings", EXIT_PASSED),
    ],
)
def test_without_a_policy_the_probes_grades_decide(statuses, fail_on, verdict, text, code):
    result = apply_policy(_graded(*statuses), None, fail_on)
    assert (result.verdict, result.verdict_text, exit_code(result)) == (verdict, text, code)
    # Every non-passed probe is a reason, worst first, naming the check that set its grade.
    lines = [r.line for r in result.verdict_reasons]
    assert len(lines) == sum(s in ("warned", "failed", "error") for s in statuses)
    for status in ("failed", "warned"):
        if status in statuses:
            assert any(line.endswith(f"the_rule: why {status}") for line in lines)
    ranks = [0 if r.status in ("failed", "error") else 1 for r in result.verdict_reasons]
    assert ranks == sorted(ranks)


def test_policy_fail_on_is_read_and_the_flag_wins():
    policy = parse_policy({"fail_on": "never"})
    assert policy.fail_on == "never"
    failed = _graded("failed")
    assert apply_policy(failed, policy).verdict == "passed"
    assert apply_policy(failed, policy, "failed").verdict == "failed"
    assert apply_policy(failed, None).verdict == "failed"  # the default: the probe's own grade
    with pytest.raises(AuditkitInputError, match="fail_on = 'sometimes'"):
        parse_policy({"fail_on": "sometimes"})


def test_a_warn_gate_that_fails_passes_with_warnings():
    result = apply_policy(_result(0.5), {"gates": {"performance.accuracy": {"rule": ">= 0.9", "severity": "warn"}}})
    assert (result.verdict, result.verdict_text) == ("passed", "passed with warnings")
    assert result.verdict_reasons[0].line.startswith("gate warned: performance.accuracy = 0.5")


def test_an_audit_json_from_before_fail_on_keeps_its_gate_only_verdict():
    import json

    old = json.loads(_graded("failed").to_json())
    for key in ("fail_on", "verdict_text", "verdict_reasons"):
        del old[key]
    old["verdict"] = "passed"  # what the gates-only rule said then
    reread = AuditResult.from_dict(old)
    assert reread.fail_on == "never" and reread.verdict == "passed"
    assert reread.verdict_text == "passed with warnings"
    assert [r.decides for r in reread.verdict_reasons] == [False]


def test_a_metric_a_probe_left_out_is_explained_in_its_own_words_in_gates_and_report():
    """Memorization on random labels alone (as the time-aware plan runs it on a costly model)
    has no true-label numbers, and no training data means no generalization gap: the gate and
    the report say which is which, instead of quoting the probe's summary. The same for the L2
    metrics when the L2 attacks did not run."""
    import re

    import torch
    from torch import nn

    import auditkit
    from auditkit.render.html import render_html

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 8, generator=g)
    y = x[:, :4].argmax(1)  # the model below is right on every example
    model = nn.Linear(8, 4).eval()
    with torch.no_grad():
        model.weight.zero_()
        model.weight[:, :4] = 5 * torch.eye(4)
        model.bias.zero_()
    result = auditkit.scan(
        model, (x, y), probes=["memorization", "adversarial"], budget="fast",
        options={"memorization": {"corruption_levels": [1.0], "train_size": 32},
                 "adversarial": {"l2_attacks": False, "n_examples": 20}},
        policy={"gates": {"memorization.fit_epochs_true": "<= 100",
                          "memorization.generalization_gap": "<= 0.1",
                          "adversarial.pgd_l2_accuracy": ">= 0"}},
    )
    true, gap, l2 = (gate.detail for gate in result.gates)
    assert "no true-label run: the corruption levels were 1, without p = 0" in true
    assert "no training data of the model (pass --train-data)" in gap
    assert "no L2 attacks beside the L∞ headline (l2_attacks = false" in l2
    assert result.verdict == "failed"  # fail closed all the same

    html = render_html(result)
    notes = re.findall(r'<p class="note unmeasured">(.*?)</p>', html, re.S)
    memorization = [n for n in notes if "memorization." in n]
    assert len(memorization) == 3  # one sentence per reason
    assert any("memorization.fit_epochs_random" in n and "did not reach the 95% target in" in n
               for n in memorization)  # a linear model cannot fit random labels
    assert any("memorization.true_label_train_accuracy" in n and "no true-label run" in n
               for n in memorization)
    assert any("memorization.generalization_gap" in n and "--train-data" in n
               for n in memorization)


def test_unmeasured_metrics_without_a_reason_of_their_own_share_one_sentence():
    """The bias probe on data without sensitive columns leaves a dozen metrics unmeasured for
    one reason: the report says it once, not once per metric."""
    import re

    from auditkit.render.html import render_html

    bias = ProbeResult(
        name="bias", status="passed",
        metrics={"worst_group_accuracy": None, "accuracy_difference": None,
                 "demographic_parity_difference": None, "proxy_accuracy_difference": 0.02,
                 "proxy_worst_slice_accuracy": 0.9},
        details={"slice_kind": "proxy"}, summary="PROXY slices, not demographics",
    )
    html = render_html(AuditResult(model={}, data={}, environment={}, probes={"bias": bias}))
    notes = re.findall(r'<p class="note unmeasured">(.*?)</p>', html, re.S)
    assert len(notes) == 1 and "3 metrics" in notes[0] and "no sensitive columns" in notes[0]

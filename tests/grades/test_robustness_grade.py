"""Robustness is graded, not only validated: a valid evaluation of a model with no robustness
left is a warning with a finding, never a green PASS; a policy can still fail it."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.api import scan
from auditkit.probes.adversarial.grade import radius_text, robustness_grade


@pytest.fixture(scope="module")
def no_robustness(demo_model, digits_data, digits_adapter):
    """The demo CNN (standard training) at eps 0.5, where PGD fools it on every example."""
    adapter = digits_adapter(demo_model)
    policy = {"gates": {"adversarial.robust_accuracy": ">= 0.3"}}
    options = {"adversarial": {"eps": 0.5, "sweep": [0.25, 0.5]}}
    plain = scan(
        adapter, digits_data, probes=["adversarial"], budget="fast", device="cpu", options=options
    )
    gated = scan(
        adapter,
        digits_data,
        probes=["adversarial"],
        budget="fast",
        device="cpu",
        options=options,
        policy=policy,
    )
    return plain, gated


def test_a_valid_evaluation_with_no_robustness_is_warned_with_a_finding(no_robustness):
    plain, _ = no_robustness
    probe = plain.probes["adversarial"]
    assert probe.metrics["pgd_accuracy"] == 0.0
    assert probe.details["evaluation_valid"] is True
    assert probe.details["robustness_grade"]["grade"] == "none"
    assert probe.status == "warned"
    titles = [f.title for f in probe.findings if f.severity == "warning"]
    assert any(t.startswith("no robustness at L∞ 0.5") for t in titles), titles
    assert plain.verdict_text == "passed with warnings"


def test_a_policy_gate_on_robust_accuracy_fails_it(no_robustness):
    _, gated = no_robustness
    assert gated.verdict == "failed"
    assert [g.passed for g in gated.gates] == [False]


def test_the_grade_reads_the_interval_against_chance():
    labels = np.repeat(np.arange(10), 20)
    robust = np.zeros(200, dtype=bool)
    robust[:18] = True  # 9 %: its interval reaches chance (10 %)
    assert robustness_grade(robust, labels, 10, "Linf", 8 / 255)["grade"] == "none"
    robust[:26] = True  # 13 %, above chance, but its interval reaches it
    graded = robustness_grade(robust, labels, 10, "Linf", 8 / 255)
    assert graded["grade"] == "not_shown" and graded["interval"][0] <= 0.1 < 0.13
    robust[:120] = True  # 60 %
    assert robustness_grade(robust, labels, 10, "Linf", 8 / 255)["grade"] == "robust"
    black_box = {"attack": "Square", "queries": 300, "converged": None}
    graded = robustness_grade(robust, labels, 10, "Linf", 8 / 255, black_box=black_box)
    assert graded["grade"] == "upper_bound"
    black_box["converged"] = True
    graded = robustness_grade(robust, labels, 10, "Linf", 8 / 255, black_box=black_box)
    assert graded["grade"] == "robust"
    # Chance is the whole audit's majority rate when given, not the attacked sample's: 50 rows
    # that happen to be 68 % one class do not make 68 % robust accuracy "no robustness".
    sample = np.r_[np.zeros(34, int), np.ones(16, int)]
    held = np.r_[np.ones(34, bool), np.zeros(16, bool)]
    assert robustness_grade(held, sample, 2, "Linf", 0.1)["grade"] == "none"
    audit = np.r_[np.zeros(1330, int), np.ones(670, int)]
    graded = robustness_grade(held, sample, 2, "Linf", 0.1, population=audit)
    assert graded["chance"] == 0.665 and graded["grade"] == "not_shown"
    assert radius_text("Linf", 8 / 255) == "L∞ 8/255"

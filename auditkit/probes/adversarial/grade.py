"""Grade: how robust the model is at the headline radius, beside whether the evaluation is valid.

The validity checklist (``judge.checklist``) says whether the attacks can be trusted; it says
nothing about the number they produced. A ResNet at 0 % robust accuracy with a sound evaluation
used to get a green PASS, and a reviewer reads a green adversarial tile as "robust". So the
number is graded too, and audit.json carries both:

- ``details["evaluation_valid"]``: every applicable validity check passed.
- ``details["robustness_grade"]``: ``grade`` is

  - ``none``: the robust accuracy is at or below chance (max(1/K, majority rate), as the
    performance probe defines it): nothing is left at this radius. The probe is at least
    ``warned``, with a finding that says what to do.
  - ``not_shown``: the robust accuracy is above chance but its interval (Wilson, 95 %) reaches
    down to it: too few examples were attacked to tell a little robustness from none (50 rows
    of a table whose model is ten points above the majority rate). Also at least ``warned``,
    and the finding says to attack more examples rather than "no robustness".
  - ``upper_bound``: a query-limited (black-box) attack whose convergence check did not run or
    did not pass: a stronger attack may find more, so the number cannot earn a pass.
  - ``robust``: the interval lies above chance and the number is a white-box result, a
    converged black-box one, or exact (the closed form for a linear model,
    ``probes/adversarial/linear.py``).

A policy still decides beyond that (``adversarial.robust_accuracy >= 0.3`` fails a model that
kept 10 %); see docs/grades.md.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from auditkit.functional.classification import accuracy_vs_chance
from auditkit.results import Finding, ProbeResult

GRADES = ("robust", "upper_bound", "not_shown", "none")


def radius_text(norm: str, eps: float) -> str:
    """``L∞ 8/255`` for the usual image radii, else ``L2 0.5``."""
    name = "L∞" if norm == "Linf" else "L2"
    frac = Fraction(eps).limit_denominator(255)
    if 0 < eps < 1 and frac.denominator == 255 and abs(float(frac) - eps) < 1e-9:
        return f"{name} {frac.numerator}/255"
    return f"{name} {eps:.3g}"


def robustness_grade(
    robust_correct: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    norm: str,
    eps: float,
    *,
    black_box: dict[str, Any] | None = None,
    bound: str | None = None,
    population: np.ndarray | None = None,
) -> dict[str, Any]:
    """The grade of ``robust_correct`` (per attacked example) at radius ``eps``.

    ``black_box``: for a query-limited attack only, ``{"attack", "queries", "converged"}`` where
    ``converged`` is True (the convergence check ran and passed), False (it failed) or None
    (it did not run). ``bound``: what the number is when neither white-box nor black-box says it
    (``exact (closed form for a linear model)``: a certificate, graded as a white-box result).
    ``population``: the labels of the whole audit data, whose class rates set chance (as the
    performance probe's do); without it the attacked examples' own labels do, and 50 sampled
    rows of a 66/34 table can put the majority rate at 68 %."""
    robust_correct = np.asarray(robust_correct, dtype=bool)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=max(num_classes, 1))
    chance = accuracy_vs_chance(int(robust_correct.sum()), counts.tolist())
    level = chance.chance
    known = None if population is None else np.asarray(population, dtype=np.int64)
    known = None if known is None else known[known >= 0]  # unlabelled rows hold no rate
    if known is not None and len(known):
        rates = np.bincount(known, minlength=len(counts))
        level = max(1.0 / max(len(rates), 1), float(rates.max()) / float(rates.sum()))
    unclear = chance.n == 0 or chance.low <= level
    converged = None if black_box is None else black_box.get("converged")
    if unclear and (chance.n == 0 or chance.accuracy <= level):
        grade = "none"
    elif unclear:
        grade = "not_shown"
    elif black_box is not None and converged is not True:
        grade = "upper_bound"
    else:
        grade = "robust"
    return {
        "grade": grade,
        "radius": radius_text(norm, eps),
        "robust_accuracy": chance.accuracy,
        "interval": [chance.low, chance.high],
        "confidence": chance.confidence,
        "chance": level,
        "n_examples": chance.n,
        "bound": bound or ("white-box" if black_box is None else "black-box upper bound"),
        **({"queries": black_box.get("queries"), "converged": converged} if black_box else {}),
    }


def grade_findings(grade: dict[str, Any], black_box: dict[str, Any] | None = None) -> list[Finding]:
    """The findings a grade adds: "no robustness" and "upper bound, not converged"."""
    found = []
    acc, (low, high) = grade["robust_accuracy"], grade["interval"]
    if grade["grade"] == "none":
        found.append(Finding(
            "warning",
            f"no robustness at {grade['radius']}: robust accuracy {acc:.1%} "
            f"({grade['confidence']:.0%} interval {low:.1%}–{high:.1%}, "
            f"n={grade['n_examples']}) is not above chance ({grade['chance']:.1%})",
            why="an attacker with this budget can make the model answer as badly as guessing; "
            "this is typical for a model not trained adversarially, and the evaluation's "
            "validity checks say only that the attack can be trusted, not that the model "
            "resists it",
            action="if the model faces adversaries, train it adversarially (Madry et al. 2018) "
            "or certify it, and re-audit; otherwise accept it explicitly with a policy gate on "
            "adversarial.robust_accuracy, or audit at the radius your threat model needs "
            "(--set adversarial.eps=...)",
        ))
    if grade["grade"] == "not_shown":
        found.append(Finding(
            "warning",
            f"robustness not shown at {grade['radius']}: robust accuracy {acc:.1%} "
            f"({grade['confidence']:.0%} interval {low:.1%}–{high:.1%}, "
            f"n={grade['n_examples']}) does not clear chance ({grade['chance']:.1%})",
            why="the number is above chance but its interval reaches it: either the model "
            "keeps little beyond guessing under attack, or too few examples were attacked to "
            "tell",
            action="attack more examples (--set adversarial.n_examples=N, or --budget "
            "standard) before reading this as robust or as not robust",
        ))
    if black_box is not None and grade["bound"] == "black-box upper bound" \
            and grade.get("converged") is not True:
        state = "not checked" if grade.get("converged") is None else "not converged"
        found.append(Finding(
            "warning",
            f"upper bound from {black_box.get('queries')} queries on {grade['n_examples']} "
            f"examples: {state}",
            why=f"{black_box.get('attack', 'the attack')} sees only the model's answers, so its "
            f"robust accuracy ({acc:.1%}) can only fall with more queries; without a "
            "passed convergence check it cannot show robustness",
            action="raise --set adversarial.queries (or use --budget thorough) until doubling "
            "the queries no longer lowers the result; where a white-box twin exists (an ONNX "
            "file onnx2torch converts), its PGD result leads",
        ))
    return found


def apply_grade(
    result: ProbeResult,
    robust_correct: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    norm: str,
    eps: float,
    *,
    black_box: dict[str, Any] | None = None,
    bound: str | None = None,
    population: np.ndarray | None = None,
) -> ProbeResult:
    """``result`` with the robustness grade in its details, findings, summary and status."""
    grade = robustness_grade(robust_correct, labels, num_classes, norm, eps, black_box=black_box,
                             bound=bound, population=population)
    valid = not any(c.status == "failed" for c in result.checks)
    added = grade_findings(grade, black_box)
    status = result.status
    if added and status == "passed":
        status = "warned"
    words = {
        "none": f"no robustness at {grade['radius']} (robust accuracy not above chance "
        f"{grade['chance']:.1%})",
        "not_shown": f"robustness at {grade['radius']} not shown above chance "
        f"({grade['chance']:.1%}) on {grade['n_examples']} examples",
        "upper_bound": f"robust accuracy at {grade['radius']} is an unconverged black-box upper "
        "bound",
        "robust": f"robust accuracy at {grade['radius']} is above chance "
        f"({grade['chance']:.1%})",
    }[grade["grade"]]
    details = {**result.details, "evaluation_valid": valid, "robustness_grade": grade}
    return replace(
        result,
        status=status,
        findings=[*added, *result.findings],
        summary=f"{result.summary} Grade: {words}; evaluation "
        f"{'valid' if valid else 'not shown valid'}.",
        details=details,
    )

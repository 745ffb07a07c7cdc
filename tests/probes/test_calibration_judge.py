"""The calibration judge on hand-written measurements: no model, no data.

A measurement states what ``measure.py`` reports (calibration numbers before and after the
temperature, the fit, the risk–coverage curve, uncertainty and OOD results); the tests check
the checks, findings and status a user reads.
"""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.functional.calibration import TemperatureFit, risk_coverage
from auditkit.probes.calibration.judge import ECE_WARNING, judge
from auditkit.probes.calibration.measure import CalibrationMeasurement


def _numbers(*, accuracy=0.90, confidence=0.91, ece=0.01, nll=0.30) -> dict:
    return {
        "accuracy": accuracy,
        "mean_confidence": confidence,
        "ece": ece,
        "mce": 2 * ece,
        "adaptive_ece": ece,
        "classwise_ece": ece / 2,
        "brier": 0.15,
        "nll": nll,
        "bins": [],
        "adaptive_bins": [],
    }


def _ood(auroc: float) -> dict:
    row = {"name": "uniform noise", "generated": True, "description": "synthetic", "n": 256,
           "auroc": auroc, "fpr_at_95_tpr": 0.1, "mean_confidence": 0.6}
    return {"ood_auroc": auroc, "worst": row, "rows": [row], "details": {"sets": [row]}}


def _measurement(
    *,
    before=None,
    after="same",
    fit=TemperatureFit(1.02, 0.301, 0.300, False, 600),
    n_calibration=600,
    n_evaluation=1200,
    errors=60,
    ood_auroc=0.97,
) -> CalibrationMeasurement:
    before = before or _numbers()
    if after == "same":
        after = _numbers(ece=before["ece"] * 0.9, nll=before["nll"] - 0.001)
    correct = np.r_[np.ones(1080, bool), np.zeros(120, bool)]
    confidence = np.linspace(1.0, 0.5, 1200)  # errors least confident: a good ranking
    return CalibrationMeasurement(
        n_bins=15,
        n_calibration=n_calibration,
        n_evaluation=n_evaluation,
        calibration_errors=errors,
        before=before,
        fit=fit,
        after=after,
        risk=risk_coverage(confidence, correct),
        confidence_auroc=0.9,
        uncertainty={
            "method": "MC dropout",
            "metrics": dict.fromkeys(
                ("mean_predictive_entropy", "mean_aleatoric", "mean_epistemic",
                 "uncertainty_auroc", "aleatoric_auroc", "epistemic_auroc"), 0.5),
            "decomposition": object(),  # sampled (only its presence is judged)
            "details": {},
        },
        ood=_ood(ood_auroc),
    )


def _checks(judged) -> dict[str, str]:
    return {c.name: c.status for c in judged.checks}


def test_a_calibrated_measurement_passes_the_temperature_checks():
    judged = judge(_measurement())
    assert _checks(judged) == {
        "temperature_fit": "passed",
        "temperature_lowers_held_out_nll": "passed",
        "evaluation_size": "passed",
    }
    assert judged.status == "passed" and judged.transfers and judged.reason is None
    assert all(f.severity == "info" for f in judged.findings)
    assert judged.metrics["temperature"] == 1.02
    assert judged.metrics["ece_after_temperature"] == pytest.approx(0.009)


def test_a_large_ece_warns_with_the_direction_of_the_miscalibration():
    before = _numbers(accuracy=0.75, confidence=0.95, ece=0.20, nll=0.9)
    judged = judge(_measurement(before=before))
    assert judged.metrics["ece"] == 0.20 > ECE_WARNING
    # The probe warns; failing an audit on ECE is a policy gate's job (calibration.ece <= …).
    assert judged.status == "warned"
    warning = next(f for f in judged.findings if f.severity == "warning")
    assert "20.0%" in warning.title and "over-confident" in warning.title


def test_a_temperature_that_raises_held_out_nll_is_not_recommended():
    judged = judge(_measurement(after=_numbers(ece=0.02, nll=0.40)))
    assert _checks(judged)["temperature_lowers_held_out_nll"] == "warned"
    assert not judged.transfers and judged.status == "warned"
    assert any("does not carry over" in f.title for f in judged.findings)
    assert not any(f.title.startswith("temperature scaling: divide") for f in judged.findings)


def test_a_fit_at_the_bound_is_no_temperature():
    judged = judge(_measurement(fit=TemperatureFit(0.05, 0.01, 0.001, True, 600), after=None,
                                errors=0))
    assert _checks(judged)["temperature_fit"] == "warned"
    assert "T → 0" in judged.reason
    assert judged.metrics["temperature"] is None
    assert judged.metrics["ece_after_temperature"] is None
    assert "temperature_lowers_held_out_nll" not in _checks(judged)
    assert any(f.title == "temperature scaling could not be fitted" for f in judged.findings)


def test_a_temperature_resting_on_few_errors_warns():
    judged = judge(_measurement(errors=3))
    check = next(c for c in judged.checks if c.name == "temperature_fit")
    assert check.status == "warned" and "fewer than 5 errors" in check.detail


def test_too_few_examples_skip_the_fit_and_flag_the_evaluation_size():
    judged = judge(_measurement(fit=None, after=None, n_calibration=6, n_evaluation=14))
    assert _checks(judged) == {"temperature_fit": "skipped", "evaluation_size": "warned"}
    assert "only 6 calibration examples" in judged.reason
    assert judged.status == "warned"


def test_poor_ood_separation_warns():
    judged = judge(_measurement(ood_auroc=0.6))
    assert judged.status == "warned"
    assert any("barely separates uniform noise" in f.title for f in judged.findings)
    assert judged.metrics["ood_auroc"] == 0.6


def test_a_held_out_nll_rise_within_its_own_noise_is_not_a_warning():
    """T fitted on a small split moves held-out NLL by chance: a 2 % rise whose paired standard
    error is larger is noise, not a temperature that fails to carry over."""
    rise = _numbers(ece=0.02, nll=0.306)  # +2 %, beyond the 1 % tolerance
    noisy = judge(_measurement(after={**rise, "nll_change_se": 0.01}))  # noise ±0.0196
    assert _checks(noisy)["temperature_lowers_held_out_nll"] == "passed"
    assert noisy.transfers and noisy.status == "passed"
    sharp = judge(_measurement(after={**rise, "nll_change_se": 0.001}))  # noise ±0.002
    assert _checks(sharp)["temperature_lowers_held_out_nll"] == "warned"

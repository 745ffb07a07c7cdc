"""The adversarial judge on hand-written measurements: no model, no attack, just the rules.

Each test writes down what the attacks "found" and asserts the verdict a reviewer would give
(Athalye et al. 2018; Carlini et al. 2019): masked gradients, a curve that rises with eps, an
attack weaker than one gradient step or than noise, an unbounded attack that fails, an attack
that has not converged, and a random model attacked without EOT are each caught by name.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from auditkit.probes.adversarial.judge import CHECK_NAMES, judge
from auditkit.probes.adversarial.measure import AdversarialMeasurement, Plan

N = 100


def correct(k: int) -> np.ndarray:
    """N examples, the first ``k`` still classified correctly."""
    out = np.zeros(N, dtype=bool)
    out[:k] = True
    return out


def point(eps: float, fgsm: float, pgd: float, noise: float) -> dict:
    return {"eps": eps, "fgsm": fgsm, "pgd": pgd, "noise": noise, "worst": min(fgsm, pgd, noise)}


def healthy(**changes) -> AdversarialMeasurement:
    """A standard CNN attacked correctly: PGD < FGSM < noise, falling with eps, to 0 unbounded."""
    curve = [point(0.0, 1.0, 1.0, 1.0), point(0.05, 0.8, 0.7, 0.99),
             point(0.1, 0.6, 0.5, 0.95), point(0.2, 0.3, 0.1, 0.9)]
    headline = {
        "curve": curve, "fgsm": correct(60), "pgd": correct(50), "pgd_r0": correct(50),
        "noise": correct(95), "pgd_double_steps": correct(50), "robust": correct(50),
        "worst_case_over": ["FGSM", "PGD-10", "random noise", "PGD-20"],
    }
    base = AdversarialMeasurement(
        plan=Plan(norm="Linf", eps=0.1, sweep=(0.0, 0.05, 0.1, 0.2), steps=10, eot_samples=8),
        labels=np.arange(N) % 10,
        clean_correct=correct(N),
        headline=headline,
        eot_correct=correct(45),
        unbounded_correct=correct(0),
        gradients={"finite": True, "nonzero_fraction": 1.0, "margin_nonzero_fraction": 1.0,
                   "median_abs_max": 0.3},
        num_classes=10,
        class_names=[str(k) for k in range(10)],
    )
    return dataclasses.replace(base, **changes)


def with_curve(m: AdversarialMeasurement, *points: dict) -> AdversarialMeasurement:
    return dataclasses.replace(m, headline={**m.headline, "curve": list(points)})


def statuses(m: AdversarialMeasurement) -> dict[str, str]:
    return {c.name: c.status for c in judge(m).checks}


def test_a_sound_attack_passes_every_applicable_check():
    judged = judge(healthy())
    assert [c.name for c in judged.checks] == list(CHECK_NAMES)
    assert {c.name for c in judged.checks if c.status != "passed"} == {
        "stochastic_model_attacked_with_eot"}  # deterministic model: not applicable
    assert judged.status == "passed"
    m = judged.metrics
    # the worst case over the L∞ attacks; EOT (under transformations) found more here than
    # PGD, but that is the transformation threat model, reported as eot_accuracy on its own
    assert m["robust_accuracy"] == 0.5 <= min(m["fgsm_accuracy"], m["pgd_accuracy"],
                                               m["noise_accuracy"])
    assert m["eot_accuracy"] == 0.45
    assert m["clean_accuracy"] == 1.0 and m["n_examples"] == N


def test_masked_gradients_fail_the_gradient_check_and_name_the_saturated_softmax():
    masked = healthy(gradients={"finite": True, "nonzero_fraction": 0.2,
                                "margin_nonzero_fraction": 0.97, "median_abs_max": 0.0})
    judged = judge(masked)
    check = next(c for c in judged.checks if c.name == "gradients_nonzero_and_finite")
    assert check.status == "failed" and "saturated" in check.detail
    assert judged.status == "warned"
    assert any("overestimated" in f.title for f in judged.findings)


def test_nan_under_attack_fails_the_gradient_check():
    check = next(c for c in judge(healthy(nonfinite={"pgd/Linf/0.1/r0": 30})).checks
                 if c.name == "gradients_nonzero_and_finite")
    assert check.status == "failed" and "NaN" in check.detail
    assert check.values["nonfinite_examples_under_attack"] == 30


def test_accuracy_that_rises_with_eps_fails_monotonicity():
    rising = with_curve(healthy(), point(0.0, 1.0, 1.0, 1.0), point(0.05, 0.8, 0.4, 0.99),
                        point(0.1, 0.6, 0.5, 0.95), point(0.2, 0.3, 0.1, 0.9))
    result = statuses(rising)
    assert result["accuracy_decreases_with_eps"] == "failed"
    # a rise within two examples' worth is sampling noise, not a broken attack
    wobble = with_curve(healthy(), point(0.0, 1.0, 1.0, 1.0), point(0.05, 0.8, 0.5, 0.99),
                        point(0.1, 0.6, 0.51, 0.95))
    assert statuses(wobble)["accuracy_decreases_with_eps"] == "passed"


def test_pgd_weaker_than_fgsm_fails_the_iterative_check():
    weak = with_curve(healthy(), point(0.0, 1.0, 1.0, 1.0), point(0.1, 0.5, 0.7, 0.95))
    assert statuses(weak)["iterative_beats_single_step"] == "failed"


def test_an_unbounded_attack_that_leaves_accuracy_fails():
    result = statuses(healthy(unbounded_correct=correct(40)))
    assert result["unbounded_attack_succeeds"] == "failed"


def test_doubling_the_steps_moving_the_result_fails_convergence():
    moved = healthy(headline={**healthy().headline, "pgd_double_steps": correct(30)})
    assert statuses(moved)["converged_in_steps"] == "failed"


def test_an_attack_no_stronger_than_noise_fails():
    flat = with_curve(healthy(), point(0.0, 1.0, 1.0, 1.0), point(0.1, 0.9, 0.95, 0.9))
    assert statuses(flat)["attack_beats_random_noise"] == "failed"


@pytest.mark.parametrize(("eot_samples", "status"), [(1, "failed"), (8, "passed")])
def test_a_random_model_needs_eot(eot_samples, status):
    m = healthy(stochastic=True, stochastic_diff=0.3,
                plan=dataclasses.replace(healthy().plan, eot_samples=eot_samples))
    judged = judge(m)
    assert statuses(m)["stochastic_model_attacked_with_eot"] == status
    # PGD 50% vs EOT 45%: the finding says plain PGD overstates the random model's robustness
    assert any("random" in f.title and "overstates" in f.title for f in judged.findings)


def test_nothing_to_attack_makes_the_checks_not_applicable():
    none = healthy(clean_correct=correct(0))
    judged = judge(none)
    skipped = [c for c in judged.checks if c.status == "skipped"]
    assert len(skipped) >= 5
    assert all("not applicable" in c.detail for c in skipped[:4])


def test_autoattack_is_part_of_the_worst_case():
    judged = judge(healthy(autoattack_correct=correct(20)))
    assert judged.metrics["autoattack_accuracy"] == 0.2
    assert judged.metrics["robust_accuracy"] == 0.2


def test_a_random_model_s_own_randomness_eot_is_part_of_robust_accuracy():
    # PGD leaves 50 examples; EOT over the model's own randomness breaks 10 more of them.
    own = correct(40)
    judged = judge(healthy(own_randomness_correct=own, stochastic=True))
    assert judged.metrics["robust_accuracy"] == 0.4
    assert np.array_equal(judged.robust, correct(40))
    # The same measurement of a deterministic model (no own-randomness run) stays at PGD's 50.
    assert judge(healthy()).metrics["robust_accuracy"] == 0.5

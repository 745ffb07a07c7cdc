"""Findings of the gradient checklist: what each failed check means and what to do, and the
share of correct answers an attack flips. Split from ``judge`` (the checks themselves), so each
module holds one idea."""

from __future__ import annotations

from typing import Any

from auditkit.probes.adversarial.measure import Plan
from auditkit.results import Check, Finding

CHECK_NAMES = (
    "iterative_beats_single_step",
    "accuracy_decreases_with_eps",
    "unbounded_attack_succeeds",
    "converged_in_steps",
    "attack_beats_random_noise",
    "gradients_nonzero_and_finite",
    "stochastic_model_attacked_with_eot",
)


_ADVICE = {
    CHECK_NAMES[0]: (
        "the iterative attack is weaker than one gradient step",
        "PGD should never do worse than FGSM; when it does, the loss surface misleads the "
        "optimizer (gradient masking) or the step size is off",
        "look for saturated softmax or non-differentiable layers; raise steps/restarts; run "
        "--budget thorough (AutoAttack includes the gradient-free Square attack)",
    ),
    CHECK_NAMES[1]: (
        "accuracy rises although the attacker may change more",
        "a larger budget contains every smaller one, so accuracy can only fall; a rise means "
        "the attack is not converging (typical of gradient masking or obfuscation)",
        "raise steps and restarts, attack through EOT or BPDA, and re-run with --budget "
        "thorough before trusting the curve",
    ),
    CHECK_NAMES[2]: (
        "even an unbounded attack cannot break the model",
        "with the whole input box allowed any model can be fooled; failing here means the "
        "gradients do not lead anywhere (masked, shattered or non-differentiable)",
        "replace non-differentiable preprocessing by BPDA (identity in the backward pass), "
        "check for a saturated softmax, and use a gradient-free attack (--budget thorough)",
    ),
    CHECK_NAMES[3]: (
        "PGD has not converged",
        "doubling the number of steps changed the accuracy noticeably, so the reported "
        "numbers are still falling with more effort",
        "raise --set adversarial.steps (and restarts) until doubling no longer matters",
    ),
    CHECK_NAMES[4]: (
        "the attack is no stronger than random noise",
        "a working gradient attack beats random noise of the same size; if it does not, the "
        "gradients carry no information (gradient masking)",
        "check for a saturated softmax (divide the logits or attack a margin loss), replace "
        "non-differentiable steps with BPDA, average random layers with EOT",
    ),
    CHECK_NAMES[5]: (
        "input gradients are zero or not finite",
        "gradient attacks cannot move an input whose gradient vanishes or is NaN, so the model "
        "looks robust without being robust (quantization, saturated softmax, a hard threshold, "
        "a log or division that breaks off the data)",
        "if logits are huge, the softmax saturates in float32: attack a margin loss or scale "
        "the logits down; replace rounding/quantization with BPDA (identity in the backward); "
        "guard any operation that returns NaN/inf on perturbed inputs (auditkit counts those "
        "inputs as fooled)",
    ),
    CHECK_NAMES[6]: (
        "a random model was attacked without EOT",
        "a single random forward pass gives a noisy gradient, so plain PGD overestimates the "
        "robustness of randomized models",
        "set --set adversarial.eot_samples to 8 or more",
    ),
}


def findings(
    metrics: dict[str, float | None],
    plan: Plan,
    failed: list[Check],
    stochastic: bool,
    per_class: list[dict[str, Any]],
) -> list[Finding]:
    findings = []
    for check in failed:
        title, why, action = _ADVICE[check.name]
        findings.append(
            Finding(
                "warning",
                f"{title}: robustness is likely overestimated",
                why=f"{why}. {check.detail}.",
                action=action,
            )
        )
    clean, robust = metrics["clean_accuracy"] or 0.0, metrics["robust_accuracy"] or 0.0
    if clean > 0 and plan.eps > 0:
        flipped = 1 - robust / clean
        norm = "L∞" if plan.norm == "Linf" else "L2"
        findings.append(
            Finding(
                "warning" if robust < 0.5 * clean else "info",
                f"{'at least ' if failed else ''}{flipped:.0%} of correctly classified examples "
                f"change their answer under an {norm} perturbation of {plan.eps:.3g}",
                why="an attacker (or an unlucky input) needs only this small, targeted change; "
                "standard training gives no protection against it",
                action="if the model faces adversaries, train it adversarially (Madry et al. 2018) "
                "and re-audit with --budget thorough; otherwise read this as a worst-case stress "
                "test",
            )
        )
    gap = (metrics["pgd_accuracy"] or 0.0) - (metrics["eot_accuracy"] or 0.0)
    if stochastic and gap > 0:
        findings.append(
            Finding(
                "warning",
                f"the model is random: plain PGD overstates its robustness by {gap:.1%}",
                why="its forward pass draws random numbers, so one pass gives a noisy gradient; "
                "averaging over the randomness (EOT) finds adversarial examples PGD misses",
                action="quote the EOT / robust accuracy, never plain PGD, for this model",
            )
        )
    present = [c for c in per_class if c["count"] and c["robust_accuracy"] is not None]
    if present and clean > 0:
        worst = min(present, key=lambda c: c["robust_accuracy"])
        if robust - worst["robust_accuracy"] > 0.15:
            findings.append(
                Finding(
                    "info",
                    f"class {worst['class']} is the easiest to attack "
                    f"({worst['robust_accuracy']:.1%} robust vs {robust:.1%} overall)",
                    why="robustness is uneven across classes; the bias probe compares groups",
                    action="inspect the gallery and that class's nearest confusions",
                )
            )
    return findings

"""The adversarial probe: options → measure → judge → present."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from auditkit.context import AuditContext
from auditkit.functional.chance import judge_chance, scores_for_auroc
from auditkit.functional.classification import confusion_matrix
from auditkit.probes.adversarial.grade import apply_grade
from auditkit.probes.adversarial.gradient_free import (
    merge_square,
    run_without_gradients,
    square_beside_pgd,
    wants_square_beside_pgd,
)
from auditkit.probes.adversarial.judge import judge
from auditkit.probes.adversarial.measure import measure
from auditkit.probes.adversarial.options import AdversarialOptions
from auditkit.probes.adversarial.present import present
from auditkit.probes.adversarial.sizing import AdversarialSizing
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import ProbeResult


class AdversarialProbe(Probe):
    """FGSM, PGD (restarts, best iterate) and EOT under L∞ and L2, with a validity checklist.

    Options: see :class:`AdversarialOptions` (``auditkit probes --verbose`` lists them).

    Example:
        >>> AdversarialProbe(budget="fast", eps=0.1).run(build_context(adapter, data))
    """

    name = "adversarial"
    title = "Adversarial robustness"
    description = (
        "Does a small, deliberately chosen change to an input flip the model's answer — and "
        "can that number be trusted?"
    )
    order = 20
    # Models without gradients get gradient-free attacks (gradient_free=never skips them).
    needs_gradients = False
    Options: ClassVar[type] = AdversarialOptions
    sizing = AdversarialSizing()
    opts: AdversarialOptions
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy on the attacked examples, unperturbed"),
        "fgsm_accuracy": MetricSpec("higher", "accuracy under FGSM at the headline eps"),
        "pgd_accuracy": MetricSpec(
            "higher", "accuracy under PGD (best iterate, worst restart) at the headline eps"
        ),
        "eot_accuracy": MetricSpec(
            "higher",
            "accuracy under EOT-PGD at the headline eps, judged on freshly transformed copies: "
            "right in expectation for both the clean and the adversarial input (the "
            "transformation threat model, kept out of robust_accuracy)",
        ),
        "robust_accuracy": MetricSpec(
            "higher",
            "worst case per example over the headline-norm attacks at the headline eps (FGSM, "
            "PGD restarts, noise, AutoAttack when run; EOT over a random model's own "
            "randomness): one threat model, transformations excluded",
        ),
        "eps": MetricSpec(
            None,
            "headline radius: the largest change allowed per input (input units; feature stds "
            "if unbounded)",
        ),
        "noise_accuracy": MetricSpec(
            "higher", "accuracy under random noise of the headline norm and eps"
        ),
        "transform_accuracy": MetricSpec(
            "higher", "accuracy on freshly transformed copies (EOT's distribution), no attack"
        ),
        "eot_accuracy_given_transform_correct": MetricSpec(
            "higher",
            "of the examples that the transformations alone leave correct, the share that "
            "EOT-PGD does not fool (the attack's own effect)",
        ),
        "fgsm_l2_accuracy": MetricSpec("higher", "accuracy under the L2 fast gradient method"),
        "pgd_l2_accuracy": MetricSpec("higher", "accuracy under L2 PGD at l2_eps"),
        "l2_eps": MetricSpec(None, "radius of the L2 attacks"),
        "autoattack_accuracy": MetricSpec(
            "higher", "accuracy under AutoAttack (reference settings) at the headline eps"
        ),
        "n_examples": MetricSpec(None, "number of audit examples attacked"),
        "exact_robust_accuracy": MetricSpec(
            "higher", "robust accuracy at the headline eps computed in closed form on every "
            "audit row (up to 50,000), for a scikit-learn model that is linear in the attacked "
            "features: a certificate, and then the headline robust_accuracy (Square, on the "
            "attacked examples, is its cross-check)"),
        "square_accuracy": MetricSpec(
            "higher", "accuracy under the gradient-free Square attack (scores only) at the "
            "headline eps"),
        "square_queries_mean": MetricSpec(
            None, "model queries the Square attack used per attacked example, on average"),
        "square_queries_budget": MetricSpec(None, "Square's query budget per example"),
        "decision_accuracy": MetricSpec(
            "higher", "accuracy under the decision-based HopSkipJump attack (labels only) at "
            "the headline eps"),
        "decision_queries_mean": MetricSpec(
            None, "model queries HopSkipJump used per attacked example, on average"),
        "decision_queries_budget": MetricSpec(None, "HopSkipJump's query budget per example"),
        "pgd_minus_square": MetricSpec(
            None, "PGD accuracy minus Square accuracy where both ran (positive: the "
            "gradient-free attack found more, a sign of masked gradients)"),
    }
    budget_levels = {
        "fast": "200 examples; FGSM, PGD-10 (1 restart), noise over a 5-point sweep "
        "(0–5× eps); EOT with 8 draws; L2 at l2_eps only; a doubled-step PGD run; without "
        "gradients Square (scores) or HopSkipJump (labels) with 300 queries per example",
        "standard": "1,000 examples; PGD-20 with 2 restarts; an 8-point L∞ sweep and a 5-point "
        "L2 sweep; EOT with 8 draws; gradient-free attacks with 1,000 queries per example",
        "thorough": "5,000 examples; PGD-50 with 5 restarts; EOT with 16 draws; plus AutoAttack "
        "(APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 target classes, fixed seed); "
        "gradient-free attacks with 5,000 queries per example",
    }

    def skip_reason(self, context: AuditContext) -> str | None:
        """Also skipped, as "not meaningful", for a model not clearly above chance: an attack
        on a model that has not learned the task measures nothing (robust 0% would be no news,
        and a PASS would be a lie)."""
        if not context.adapter.supports_gradients and self.opts.gradient_free == "never":
            return (f"{context.adapter.format} model exposes no input gradients "
                    "(gradient_free=never)")
        reason = super().skip_reason(context)
        if reason is not None or not len(context.data):
            return reason
        k = context.adapter.num_classes
        chance = judge_chance(
            confusion_matrix(context.data.y, context.clean_predictions, k), context.data.y,
            scores_for_auroc(context.clean_logits) if k == 2 else None,
        )
        if chance.verdict == "at":
            return (
                f"not meaningful: the model is not clearly above chance ({chance.describe()}); "
                "attacking a model that has not learned the task measures nothing"
            )
        return None

    def run(self, context: AuditContext) -> ProbeResult:
        from auditkit.loading.model_path import with_model_path

        return with_model_path(self._run(context), context.adapter)

    def _run(self, context: AuditContext) -> ProbeResult:
        if not context.adapter.supports_gradients:
            return run_without_gradients(self.name, context, self.opts, self.budget)
        started = time.perf_counter()
        measured = measure(context, self.opts, self.budget)
        judged = judge(measured)
        robust = judged.robust
        square = None
        if wants_square_beside_pgd(self.opts, context.adapter):
            square = square_beside_pgd(context, self.opts, measured.plan, measured.indices,
                                       measured.clean_correct)
        # Per-example verdicts for the probes that run later (bias: robust accuracy per group).
        context.artifacts["adversarial"] = {
            "indices": np.asarray(measured.indices).astype(np.int64),
            "robust_correct": (robust if square is None
                               else robust & square.attack_correct).astype(bool),
            "clean_correct": measured.clean_correct.astype(bool),
            "eps": float(measured.plan.eps),
            "norm": measured.plan.norm,
        }
        result = present(self.name, measured, judged, self.budget, time.perf_counter() - started)
        if square is not None:
            result, robust = merge_square(result, square, robust)
        return apply_grade(result, robust, measured.labels, measured.num_classes,
                           measured.plan.norm, measured.plan.eps,
                           population=context.data.y.cpu().numpy())

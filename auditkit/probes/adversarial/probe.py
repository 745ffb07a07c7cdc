"""The adversarial probe: options → measure → judge → present."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from auditkit.context import AuditContext
from auditkit.probes.adversarial.judge import judge
from auditkit.probes.adversarial.measure import measure
from auditkit.probes.adversarial.options import AdversarialOptions
from auditkit.probes.adversarial.present import present
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
    needs_gradients = True
    Options: ClassVar[type] = AdversarialOptions
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
            "right in expectation for both the clean and the adversarial input",
        ),
        "robust_accuracy": MetricSpec(
            "higher",
            "worst case per example over every attack and restart at the headline eps",
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
    }
    budget_levels = {
        "fast": "200 examples; FGSM, PGD-10 (1 restart), noise over a 5-point sweep "
        "(0–5× eps); EOT with 8 draws; L2 at l2_eps only; a doubled-step PGD run",
        "standard": "1,000 examples; PGD-20 with 2 restarts; an 8-point L∞ sweep and a 5-point "
        "L2 sweep; EOT with 8 draws",
        "thorough": "5,000 examples; PGD-50 with 5 restarts; EOT with 16 draws; plus AutoAttack "
        "(APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 target classes, fixed seed)",
    }

    def run(self, context: AuditContext) -> ProbeResult:
        started = time.perf_counter()
        measured = measure(context, self.opts, self.budget)
        judged = judge(measured)
        # Per-example verdicts for the probes that run later (bias: robust accuracy per group).
        context.artifacts["adversarial"] = {
            "indices": np.asarray(measured.indices).astype(np.int64),
            "robust_correct": judged.robust.astype(bool),
            "clean_correct": measured.clean_correct.astype(bool),
            "eps": float(measured.plan.eps),
            "norm": measured.plan.norm,
        }
        return present(self.name, measured, judged, self.budget, time.perf_counter() - started)

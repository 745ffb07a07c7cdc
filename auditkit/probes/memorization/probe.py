"""The memorization probe: options → measure → judge → present."""

from __future__ import annotations

from typing import ClassVar

from auditkit.context import AuditContext
from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.memorization.applicability import not_applicable
from auditkit.probes.memorization.judge import judge
from auditkit.probes.memorization.measure import MIN_EXAMPLES, CannotCopy, measure
from auditkit.probes.memorization.options import MemorizationOptions
from auditkit.probes.memorization.present import present
from auditkit.probes.memorization.refit import can_refit, measure_refit, refit_summary
from auditkit.probes.memorization.sizing import MemorizationSizing
from auditkit.reinit import training_problem
from auditkit.results import ProbeResult


class MemorizationProbe(Probe):
    """Train a fresh copy of the architecture on corrupted labels and see whether it fits them.

    Options: see :class:`MemorizationOptions` (``auditkit probes --verbose`` lists them).

    Example:
        >>> result = MemorizationProbe(budget="fast").run(context)
        >>> result.metrics["random_label_train_accuracy"]
    """

    name = "memorization"
    title = "Memorization capacity (random-label test)"
    description = (
        "Can a fresh copy of this architecture fit labels drawn at random, and how far does "
        "held-out accuracy fall when it does?"
    )
    order = 60
    needs_training = True
    Options: ClassVar[type] = MemorizationOptions
    sizing = MemorizationSizing()
    opts: MemorizationOptions
    metrics = {
        "true_label_train_accuracy": MetricSpec(
            "higher", "training accuracy a fresh copy reaches on the true labels (p = 0)"
        ),
        "random_label_train_accuracy": MetricSpec(
            None,  # capacity describes the architecture; neither side is "better"
            "training accuracy a fresh copy reaches on random labels (p = 1); near 1 means the "
            "architecture can memorize noise at this data size",
        ),
        "fit_epochs_true": MetricSpec(
            None, "epochs to reach the target training accuracy on true labels (None: not reached)"
        ),
        "fit_epochs_random": MetricSpec(
            None,
            "epochs to reach the target training accuracy on random labels (None: not reached)",
        ),
        "fit_time_ratio": MetricSpec(
            None,
            "epochs to fit random labels ÷ epochs to fit true labels (Zhang et al.: a small "
            "constant factor); wall-clock ratio is in details",
        ),
        "generalization_gap": MetricSpec(
            "lower",
            "the audited model's accuracy on its own training data minus its accuracy on the "
            "audit data (only when the training data is supplied)",
        ),
        "audited_model_train_accuracy": MetricSpec(
            None, "the audited model's accuracy on its training data (when supplied)"
        ),
        "held_out_accuracy_true": MetricSpec(
            "higher", "held-out accuracy (true labels) of the copy trained on true labels"
        ),
        "held_out_accuracy_random": MetricSpec(
            None, "held-out accuracy (true labels) of the copy trained on random labels; ≈ chance"
        ),
        "chance_accuracy": MetricSpec(None, "accuracy of guessing a class uniformly at random"),
        "random_pixels_train_accuracy": MetricSpec(
            None, "training accuracy on Gaussian-noise images (only with random_pixels=true)"
        ),
        "fit_epochs_random_pixels": MetricSpec(
            None, "epochs to fit Gaussian-noise images (only with random_pixels=true)"
        ),
    }
    budget_levels = {
        "fast": "256 training examples, ≤ 100 epochs per corruption level with early stop at the "
        "target (a 60 s per-level time limit is only a safety net); train accuracy of the "
        "audited model on ≤ 2,000 of its training examples (demo CNN: a few seconds on 2 CPU "
        "cores)",
        "standard": "1,000 training examples, ≤ 200 epochs per level (safety net 600 s); gap on "
        "≤ 10,000",
        "thorough": "5,000 training examples, ≤ 500 epochs per level (safety net 3,600 s); gap "
        "on ≤ 50,000",
    }

    def not_applicable(self, context) -> str | None:
        """What the random-label test applies to, for a model it does not (a scikit-learn
        linear model: no epochs, no spare capacity); None otherwise."""
        return not_applicable(context.adapter)

    def skip_reason(self, context) -> str | None:
        # Also said here, so the probe is skipped with the shared wording before (and after)
        # the runner reads ``not_applicable`` itself.
        phrase = self.not_applicable(context)
        if phrase is not None:
            return f"not applicable to this model: applies to {phrase}"
        if can_refit(context.adapter):
            if len(context.data) < MIN_EXAMPLES:
                return (f"only {len(context.data)} audit examples; the random-label test needs "
                        f"at least {MIN_EXAMPLES}")
            return None  # scikit-learn: a clone is re-fitted instead of re-trained
        if not hasattr(context.adapter, "model"):
            return (f"memorization needs a re-trainable architecture, and this black-box "
                    f"{context.adapter.format} model has none (scikit-learn estimators are "
                    "re-fitted instead)")
        reason = super().skip_reason(context)
        if reason:
            return reason
        problem = training_problem(context.adapter.model)
        if problem:
            return f"{context.adapter.format} model cannot be retrained: {problem}"
        if len(context.data) < MIN_EXAMPLES:
            return (
                f"only {len(context.data)} audit examples; the random-label test needs at least "
                f"{MIN_EXAMPLES} (a training part and a held-out part)"
            )
        return None

    def run(self, context: AuditContext) -> ProbeResult:
        if can_refit(context.adapter):
            measured = measure_refit(context, self.opts, self.budget)
            judged = judge(measured)
            return refit_summary(present(self.name, measured, judged), measured, judged)
        try:
            measured = measure(context, self.opts, self.budget)
        except CannotCopy as exc:
            reason = str(exc)
            return ProbeResult(name=self.name, status="skipped", skip_reason=reason, summary=reason)
        return present(self.name, measured, judge(measured))

"""Judge: metrics, the adapter's diagnostics as checks, and the weak-class finding — from a
``PerformanceMeasurement`` alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from auditkit.functional.chance import ChanceJudgement, judge_chance
from auditkit.probes.performance.measure import PerformanceMeasurement
from auditkit.results import Check, Finding

# A class this far (absolute) below the average accuracy gets a finding.
WEAK_CLASS_GAP = 0.1
# Predictions that match the labels this much better under another class order (and are right
# at least this often under it) say the model's outputs are in another order than the data's.
REORDER_GAIN = 0.25
REORDER_MIN_ACCURACY = 0.5


@dataclass(frozen=True)
class Judgement:
    """What the counts mean: metrics, the adapter's checks, findings and the probe's status."""

    metrics: dict[str, float | None]
    checks: list[Check]
    findings: list[Finding]
    status: str
    worst_class: int | None


def judge(m: PerformanceMeasurement) -> Judgement:
    """A model not clearly above chance fails the probe (every other number about it means
    little); too few examples to tell, or a failed adapter check, makes it ``warned`` (the
    other probes say what it costs). How high accuracy must be beyond that is a policy gate."""
    recall = m.recall
    present = m.present
    worst = min(present, key=lambda i: float(recall[i])) if present else None
    metrics = {
        "accuracy": m.accuracy,
        "balanced_accuracy": m.balanced_accuracy,
        "worst_class_accuracy": float(recall[worst]) if worst is not None else None,
    }
    chance = judge_chance(m.matrix, m.labels, m.scores)
    reordered = class_order_finding(m)
    checks = [chance_check(chance, reordered is not None), *adapter_checks(m)]
    findings = [chance_finding(chance)] if chance.verdict != "above" else []
    if reordered is not None:
        findings.insert(0, reordered)
    if worst is not None and m.accuracy - float(recall[worst]) > WEAK_CLASS_GAP:
        findings.append(
            Finding(
                "warning",
                f"class {m.class_names[worst]!s} is recognised far less often "
                f"({float(recall[worst]):.1%}) than average ({m.accuracy:.1%})",
                why="average accuracy hides classes the model fails",
                action="look at that class's confusions and collect more of its examples",
            )
        )
    if chance.verdict == "at":
        status = "failed"
    elif chance.verdict == "undecided" or any(c.status == "failed" for c in checks):
        status = "warned"
    else:
        status = "passed"
    return Judgement(metrics, checks, findings, status, worst)


def best_class_order(matrix: torch.Tensor) -> tuple[list[int], float]:
    """The assignment of model outputs to data classes that the predictions agree with most
    (Hungarian algorithm on the confusion matrix): ``order[i]`` is the output that data class
    ``i`` is predicted as, and the accuracy under that order."""
    from scipy.optimize import linear_sum_assignment

    counts = matrix.numpy()
    rows, cols = linear_sum_assignment(-counts)  # rows come back as 0..k-1, in order
    order = [int(c) for c in cols]
    total = max(int(counts.sum()), 1)
    return order, float(counts[rows, cols].sum()) / total


def class_order_finding(m: PerformanceMeasurement) -> Finding | None:
    """A model right under another class order: its outputs are in another order than the
    data's classes (an image folder's are sorted by name; a model trained elsewhere may not
    be), so every probe would judge a good model as wrong."""
    k = m.matrix.shape[0]
    if k < 2 or m.matrix.shape[1] != k or not m.n:
        return None
    order, accuracy = best_class_order(m.matrix)
    if order == list(range(k)) or accuracy < max(REORDER_MIN_ACCURACY, m.accuracy + REORDER_GAIN):
        return None
    names = [str(m.class_names[i]) if i < len(m.class_names) else str(i) for i in range(k)]
    moved = [f"{names[i]} as output {j}" for i, j in enumerate(order) if i != j]
    in_model_order = [names[order.index(j)] for j in range(k)]
    shown = in_model_order if k <= 12 else [*in_model_order[:12], "…"]
    return Finding(
        "critical",
        f"the predictions match the labels under another class order ({accuracy:.1%} instead "
        f"of {m.accuracy:.1%})",
        why="the model predicts data class " + ", ".join(moved[:10])
        + ("…" if len(moved) > 10 else "") + ": its outputs are probably in another order "
        "than the data's classes (an image folder's classes are sorted by name), so every "
        "probe judges it against the wrong labels",
        action=f"give the model's class names in its output order, here {shown} "
        "(ModelMetadata(class_names=...) in save_model: auditkit then matches the data's "
        "labels to them), or re-order the data's classes",
    )


def chance_check(chance: ChanceJudgement, reordered: bool = False) -> Check:
    """``above_chance``: balanced accuracy against 1/K (and AUROC against 0.5 for two classes
    with scores), plain accuracy against max(1/K, majority rate) reported beside them."""
    status = {"above": "passed", "at": "failed", "undecided": "warned"}[chance.verdict]
    words = {
        "above": "clearly above chance",
        "at": "not clearly above chance: the model has learned little or nothing"
        if not reordered else "not clearly above chance in the data's class order, but right "
        "under another order: the model's outputs are probably ordered differently",
        "undecided": "too few examples to tell whether it beats chance",
    }[chance.verdict]
    plain, balanced, auroc = chance.accuracy, chance.balanced, chance.auroc
    return Check(
        "above_chance",
        status,
        f"{chance.describe()}: {words}",
        {
            "balanced_accuracy": balanced.value, "balanced_low": balanced.low,
            "balanced_high": balanced.high, "balanced_chance": balanced.chance,
            **({"auroc": auroc.value, "auroc_low": auroc.low, "auroc_high": auroc.high}
               if auroc is not None else {}),
            "accuracy": plain.accuracy, "low": plain.low, "high": plain.high,
            "chance": plain.chance, "uniform": plain.uniform, "majority": plain.majority,
            "n": plain.n, "confidence": plain.confidence,
        },
    )


def chance_finding(chance: ChanceJudgement) -> Finding:
    b = chance.balanced
    judged = b.describe() + (f" and {chance.auroc.describe()}" if chance.auroc else "")
    if chance.verdict == "at":
        return Finding(
            "critical",
            f"balanced accuracy {b.value:.1%} is not clearly above chance ({b.chance:.1%})",
            why=(
                f"{judged}: even the optimistic end of the interval is barely above what "
                "guessing gets; robustness, calibration and bias numbers of such a model are "
                "not meaningful"
            ),
            action="check that the right weights, preprocessing (--mean/--std, --input-range) "
            "and labels are used; an untrained or broken model looks exactly like this",
        )
    return Finding(
        "warning",
        f"with {chance.accuracy.n} examples the audit cannot tell whether balanced accuracy "
        f"{b.value:.1%} beats chance ({b.chance:.1%})",
        why=f"{judged}: the interval includes chance",
        action="audit on more examples",
    )


def adapter_checks(m: PerformanceMeasurement) -> list[Check]:
    """The adapter's diagnostics as named checks, so they reach the report and junit.xml."""
    diag = m.diagnostics
    # A black box is declared to return probabilities: that is its contract, not a defect.
    saturating = diag.output_kind == "probabilities" and m.supports_gradients
    checks = [
        Check(
            "outputs_are_logits",
            "failed" if saturating else "passed",
            f"model outputs {diag.output_kind}"
            + ("; softmax inside the model can saturate and mask gradients" if saturating else ""),
            {"output_kind": diag.output_kind},
        ),
        Check(
            "deterministic_forward",
            "passed" if not diag.stochastic else "warned",
            "two passes agree"
            if not diag.stochastic
            else f"two passes differ (max |Δlogit| {diag.stochastic_max_diff:.3g}); attacks use "
            "EOT",
            {"max_abs_diff": diag.stochastic_max_diff},
        ),
    ]
    if diag.gradient_finite is not None and m.supports_gradients:
        ok = diag.gradient_finite and (diag.gradient_nonzero_fraction or 0) >= 1.0
        checks.append(
            Check(
                "input_gradients_usable",
                "passed" if ok else "failed",
                f"finite: {diag.gradient_finite}, non-zero for "
                f"{(diag.gradient_nonzero_fraction or 0):.0%} of sampled examples",
                {
                    "finite": diag.gradient_finite,
                    "nonzero_fraction": diag.gradient_nonzero_fraction,
                },
            )
        )
    return checks

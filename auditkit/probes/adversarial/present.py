"""Present: the summary sentence, the figures (as data) and the details of audit.json."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from auditkit.images import image_cell
from auditkit.probes.adversarial.judge import Judgement
from auditkit.probes.adversarial.measure import AdversarialMeasurement, Plan
from auditkit.results import Check, ProbeResult


def present(
    name: str, m: AdversarialMeasurement, j: Judgement, budget: str, seconds: float
) -> ProbeResult:
    """The probe's result: metrics and checks from the judge, words and pictures from here."""
    plan = m.plan
    figures = [
        _curve_figure(plan.norm, m.headline["curve"], plan.eps, plan.units, "accuracy-vs-eps")
    ]
    if m.secondary is not None and len(m.secondary["curve"]) > 1:
        figures.append(
            _curve_figure("L2", m.secondary["curve"], plan.l2_eps, plan.units, "accuracy-vs-eps-l2")
        )
    figures.append(_per_class_figure(j.per_class, j.metrics["robust_accuracy"], plan))
    if m.gallery:
        figures.append(_gallery(m.gallery, m.input_range))
    return ProbeResult(
        name=name,
        status=j.status,
        metrics=j.metrics,
        checks=j.checks,
        summary=summary(j.metrics, plan, j.checks, j.failed, worst_case_over(m)),
        headline="robust_accuracy",
        findings=j.findings,
        figures=figures,
        details={
            "settings": {**plan.describe(), "budget": budget, "best_iterate": m.best_iterate},
            "threat_model": _threat_text(plan, worst_case_over(m)),
            "curve": m.headline["curve"],
            "l2_curve": m.secondary["curve"] if m.secondary is not None else None,
            "per_class": j.per_class,
            "stochastic": {"detected": m.stochastic, "max_abs_diff": m.stochastic_diff},
            "gradients": m.gradients,
            "unbounded_attack": {
                "eps": m.unbounded_eps,
                "accuracy": _mean(m.unbounded_correct),
                "runs": m.unbounded_runs,
            },
            "nonfinite_under_attack": m.nonfinite,
            "autoattack": m.autoattack_settings,
            "autoattack_note": m.autoattack_note,
            "seconds_per_attack": m.timings,
            "worst_case_over": worst_case_over(m),
            "unmeasured": (
                dict.fromkeys(
                    ("fgsm_l2_accuracy", "pgd_l2_accuracy", "l2_eps"),
                    "no L2 attacks beside the L∞ headline (l2_attacks = false: set by you, or by "
                    "the time-aware plan as its last reduction; a policy gate on an L2 metric "
                    "keeps them)",
                )
                if plan.norm == "Linf" and plan.l2_eps is None
                else {}
            ),
        },
        seconds=seconds,
    )


def worst_case_over(m: AdversarialMeasurement) -> list[str]:
    """The attacks ``robust_accuracy`` is the per-example worst case over (one threat model)."""
    return (
        m.headline["worst_case_over"]
        + (["AutoAttack"] if m.autoattack_correct is not None else [])
        + (
            ["EOT-PGD over the model's own randomness"]
            if m.own_randomness_correct is not None
            else []
        )
    )


def summary(
    metrics: dict[str, float | None],
    plan: Plan,
    checks: list[Check],
    failed: list[Check],
    attacks: list[str] | None = None,
) -> str:
    norm = "L∞" if plan.norm == "Linf" else "L2"
    ran = [c for c in checks if c.status != "skipped"]
    skipped = [c for c in checks if c.status == "skipped"]
    why = (
        "not applicable"
        if all(c.detail.startswith("not applicable") for c in skipped)
        else "skipped"
    )
    aside = f"{len(skipped)} {why}" if skipped else ""
    text = (
        f"Under {norm} perturbations of {plan.eps:.3g}, accuracy falls from "
        f"{metrics['clean_accuracy']:.1%} to {metrics['robust_accuracy']:.1%} (worst case over "
        f"{', '.join(attacks or ['FGSM', 'PGD', 'random noise'])} on "
        f"{metrics['n_examples']} examples); "
    )
    if failed:
        names = ", ".join(c.name for c in failed) + (f"; {aside}" if aside else "")
        return text + (
            f"{len(failed)} of {len(ran)} applicable validity checks failed "
            f"({names}), so robustness is likely overestimated."
        )
    if not ran:
        return text + f"no validity check applies ({aside})."
    return (
        text
        + f"all {len(ran)} applicable validity checks passed"
        + (f" ({aside})." if aside else ".")
    )


def _threat_text(plan: Plan, attacks: list[str]) -> str:
    """The headline's threat model in one line: the ball, the box and the attacks."""
    norm = "L∞" if plan.norm == "Linf" else "L2"
    return (
        f"{norm} ‖δ‖ ≤ {plan.eps:.4g} ({plan.units}), x + δ inside the input box; robust = "
        f"right clean and under each of {', '.join(attacks)}; transformations (EOT) are "
        "reported apart"
    )


def _curve_figure(
    norm: str, curve: list[dict[str, Any]], eps: float, units: str, figure_id: str
) -> dict[str, Any]:
    label = "L∞" if norm == "Linf" else "L2"
    xs = [p["eps"] for p in curve]
    return {
        "kind": "line",
        "id": figure_id,
        "title": f"Accuracy under {label} attacks as the budget grows",
        "x_label": f"{label} eps ({units})",
        "y_label": "accuracy",
        "series": [
            {"name": "FGSM", "x": xs, "y": [p["fgsm"] for p in curve]},
            {"name": "PGD", "x": xs, "y": [p["pgd"] for p in curve]},
            {
                "name": f"random noise (same {label} norm)",
                "x": xs,
                "y": [p["noise"] for p in curve],
            },
            {"name": "worst case", "x": xs, "y": [p["worst"] for p in curve]},
        ],
        "y_range": [0, 1],
        "caption": (
            f"Each point attacks the same examples. The headline eps is {eps:.4g}; a curve "
            "that rises with eps, or PGD above noise or FGSM, signals an unreliable attack."
        ),
    }


def _per_class_figure(
    per_class: list[dict[str, Any]], robust: float | None, plan: Plan
) -> dict[str, Any]:
    return {
        "kind": "bar",
        "id": "robust-accuracy-per-class",
        "title": f"Robust accuracy per class (eps {plan.eps:.3g})",
        "x_label": "class",
        "y_label": "robust accuracy",
        "bars": [
            {
                "label": row["class"],
                "value": row["robust_accuracy"],
                "count": row["count"],
                "flag": robust is not None
                and row["robust_accuracy"] is not None
                and row["robust_accuracy"] < robust - 0.15,
            }
            for row in per_class
            if row["count"]
        ],
        "reference": robust,
        "y_range": [0, 1],
        "caption": "worst case over every attack; the line marks the overall robust accuracy",
    }


def _display(x: torch.Tensor, box: tuple[float, float] | None) -> np.ndarray:
    """One example as H×W (grey) or H×W×3 floats in [0, 1] (``image_cell`` stores it)."""
    if box is not None:
        x = (x - box[0]) / (box[1] - box[0])
    else:
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    x = x.clamp(0, 1)
    image = x.permute(1, 2, 0) if x.shape[0] == 3 else x[0]
    return image.numpy().astype(float)


def _gallery(examples: list[dict[str, Any]], box: tuple[float, float] | None) -> dict[str, Any]:
    rows = []
    for example in examples:
        original, perturbed = example["original"], example["adversarial"]
        delta = perturbed - original
        peak = float(delta.abs().max())
        amplify = 0.5 / peak if peak > 0 else 1.0
        shown = (0.5 + delta * amplify).clamp(0, 1)
        clean = f"{example['clean_prediction']} ({example['clean_probability']:.0%})"
        fooled = f"{example['adversarial_prediction']} ({example['adversarial_probability']:.0%})"
        rows.append(
            {
                "caption": f"true class {example['true']}",
                "cells": [
                    image_cell(f"original: {clean}", _display(original, box)),
                    image_cell(
                        f"perturbation ×{amplify:.1f} (max {peak:.3g})",
                        _display(shown, (0.0, 1.0)),
                    ),
                    image_cell(f"adversarial: {fooled}", _display(perturbed, box)),
                ],
            }
        )
    return {
        "kind": "images",
        "id": "adversarial-gallery",
        "title": "Adversarial examples (PGD at the headline eps)",
        "columns": ["original", "perturbation (amplified)", "adversarial"],
        "rows": rows,
        "caption": (
            "Labels give the predicted class and its confidence. The perturbation is shown "
            "amplified around mid-grey; at its true size it is hard to see."
        ),
    }


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")

"""The bias judge on hand-written measurements: no model, no data, no fairlearn.

Each measurement states per-group accuracies and bootstrap standard errors the way
``measure.py`` reports them; the tests check what a user relies on: a real gap on sensitive
columns fails, noise and small groups do not, and a proxy slice is never reported as a
demographic.
"""

from __future__ import annotations

import dataclasses

import pytest

from auditkit.probes.bias import PROXY_NOTE
from auditkit.probes.bias.judge import disparity, judge
from auditkit.probes.bias.measure import BiasMeasurement
from auditkit.probes.bias.options import BiasOptions

DEFAULTS = BiasOptions()  # max_accuracy_difference 0.05, min_group_size 30, confidence 0.95
DEMOGRAPHIC = (
    "worst_group_accuracy",
    "accuracy_difference",
    "accuracy_ratio",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "min_group_size",
    "small_groups",
)


def _slicing(name: str, groups: dict[str, tuple[int, float, float]], *, kind="sensitive",
             min_size=30) -> dict:
    """A measured slicing: ``groups`` maps label → (count, accuracy, bootstrap standard error)."""
    records = [
        {
            "group": g,
            "values": {name: g},
            "count": n,
            "small": n < min_size,
            "accuracy": acc,
            "accuracy_ci": [acc - 2 * se, acc + 2 * se],
            "error_rate": 1 - acc,
            "error_rate_ci": [1 - acc - 2 * se, 1 - acc + 2 * se],
        }
        for g, (n, acc, se) in groups.items()
    ]
    rankable = {g: v for g, v in groups.items() if v[0] >= min_size}
    ranked = sorted(rankable, key=lambda g: rankable[g][1])
    comparisons = {}
    if len(rankable) >= 2:
        comparisons["accuracy_difference"] = {
            "measure": "accuracy",
            "positive_class": None,
            "per_pair": 1,
            "values": {g: v[1] for g, v in rankable.items()},
            "standard_errors": {g: v[2] for g, v in rankable.items()},
        }
    return {
        "name": name,
        "kind": kind,
        "columns": [name],
        "definition": f"{kind} column {name}",
        "rates_class": None,
        "bootstrap": {"n_boot": 100},
        "groups": records,
        "small_groups": [g for g, v in groups.items() if v[0] < min_size],
        "worst_group": ranked[0] if ranked else None,
        "best_group": ranked[-1] if ranked else None,
        "worst_group_accuracy": rankable[ranked[0]][1] if ranked else None,
        "comparisons": comparisons,
        "ratios": {"accuracy_ratio": rankable[ranked[0]][1] / rankable[ranked[-1]][1]}
        if len(ranked) >= 2
        else {},
    }


def _measurement(*slicings: dict, problems=(), **options) -> BiasMeasurement:
    sensitive = [s["name"] for s in slicings if s["kind"] == "sensitive"]
    return BiasMeasurement(
        slicings=list(slicings),
        columns=sensitive,
        single_group_columns={},
        classes=[1],
        class_names=["0", "1"],
        overall_accuracy=0.8,
        opts=dataclasses.replace(DEFAULTS, **options),
        cross_probe_problems=list(problems),
    )


def _checks(judged) -> dict[str, str]:
    return {c.name: c.status for c in judged.checks}


# --- sensitive columns ------------------------------------------------------------------------
def test_a_planted_gap_with_tight_intervals_fails():
    judged = judge(_measurement(_slicing("sex", {"F": (500, 0.70, 0.01), "M": (500, 0.90, 0.01)})))
    assert judged.status == "failed"
    assert _checks(judged)["accuracy_difference[sex]"] == "failed"
    d = judged.reports[0]["disparities"]["accuracy_difference"]
    assert d["value"] == pytest.approx(0.20) and d["lower_group"] == "F"
    assert d["significant"] and d["exceeds"] and d["ci"][0] > DEFAULTS.max_accuracy_difference
    assert judged.metrics["accuracy_difference"] == pytest.approx(0.20)
    assert judged.metrics["worst_group_accuracy"] == 0.70
    critical = [f for f in judged.findings if f.severity == "critical"]
    assert len(critical) == 1 and critical[0].title.startswith("F: accuracy 70.0% vs 90.0%")
    assert judged.findings[0] is critical[0]  # most severe first


def test_overlapping_intervals_pass_with_an_info_finding_not_a_failure():
    # The same 20-point gap measured on few examples: the interval includes 0.
    judged = judge(_measurement(_slicing("sex", {"F": (40, 0.70, 0.15), "M": (40, 0.90, 0.15)})))
    d = judged.reports[0]["disparities"]["accuracy_difference"]
    assert d["ci"][0] < 0 < d["ci"][1] and not d["significant"]
    assert judged.status == "passed"
    assert _checks(judged)["accuracy_difference[sex]"] == "passed"
    (info,) = [f for f in judged.findings if "not significant at this sample size" in f.title]
    assert info.severity == "info"


def test_a_gap_above_the_threshold_only_at_its_point_estimate_is_not_conclusive():
    # gap 0.08 > 0.05, interval ≈ 0.08 ± 0.055: excludes 0 but reaches below the threshold
    judged = judge(_measurement(_slicing("sex", {"F": (300, 0.82, 0.02), "M": (300, 0.90, 0.02)})))
    d = judged.reports[0]["disparities"]["accuracy_difference"]
    assert d["significant"] and d["above_threshold"] and not d["exceeds"]
    assert judged.status == "passed"
    assert any("not conclusively" in f.title for f in judged.findings)


def test_small_groups_warn_and_are_never_ranked():
    # The tiny group is far worse, but 8 examples cannot be ranked: a warning, never a failure.
    judged = judge(_measurement(_slicing("site", {"A": (500, 0.90, 0.01), "B": (8, 0.25, 0.15)})))
    assert judged.status == "warned"
    assert _checks(judged)["min_group_size"] == "warned"
    assert "accuracy_difference" not in judged.reports[0]["disparities"]
    assert judged.metrics["accuracy_difference"] is None
    assert judged.metrics["worst_group_accuracy"] == 0.90 and judged.metrics["small_groups"] == 1
    warning = next(f for f in judged.findings if f.severity == "warning")
    assert "fewer than 30 examples" in warning.title and "B" in warning.title


def test_no_threshold_reports_without_judging():
    judged = judge(
        _measurement(
            _slicing("sex", {"F": (500, 0.50, 0.01), "M": (500, 0.95, 0.01)}),
            max_accuracy_difference=None,
        )
    )
    d = judged.reports[0]["disparities"]["accuracy_difference"]
    assert d["significant"] and d["threshold"] is None and not d["exceeds"]
    assert judged.status == "passed" and judged.metrics["accuracy_difference"] == pytest.approx(0.45)


def test_cross_probe_gaps_warn_but_never_fail():
    s = _slicing("sex", {"F": (500, 0.88, 0.01), "M": (500, 0.90, 0.01)})
    s["comparisons"]["robust_accuracy_difference"] = {
        "measure": "robust_accuracy",
        "positive_class": None,
        "per_pair": 1,
        "values": {"F": 0.20, "M": 0.60},
        "standard_errors": {"F": 0.01, "M": 0.01},
    }
    s["cross_probe"] = {
        "robust_accuracy": {"probe": "adversarial", "examples": 1000, "worst_group": "F",
                            "worst_value": 0.20, "eps": 0.1}
    }
    judged = judge(_measurement(s))
    assert _checks(judged)["robust_accuracy_difference[sex]"] == "warned"
    assert judged.status == "warned"
    assert judged.metrics["worst_group_robust_accuracy"] == 0.20
    assert judged.metrics["robust_accuracy_difference"] == pytest.approx(0.40)


def test_unusable_results_of_another_probe_warn():
    measured = _measurement(
        _slicing("sex", {"F": (500, 0.89, 0.01), "M": (500, 0.90, 0.01)}),
        problems=[("calibration", "ece", "no 'indices'")],
    )
    judged = judge(measured)
    assert _checks(judged)["ece_per_group"] == "warned"
    assert "no 'indices'" in next(c.detail for c in judged.checks if c.name == "ece_per_group")


# --- proxy slices -----------------------------------------------------------------------------
def test_proxy_slices_never_produce_demographic_metrics_and_never_fail():
    gap = _slicing(
        "brightness (proxy)",
        {"dim": (400, 0.60, 0.01), "bright": (400, 0.95, 0.01)},
        kind="proxy",
    )
    judged = judge(_measurement(gap))
    assert judged.proxy_only
    assert all(judged.metrics[name] is None for name in DEMOGRAPHIC)
    assert judged.metrics["proxy_accuracy_difference"] == pytest.approx(0.35)
    assert judged.metrics["proxy_worst_slice_accuracy"] == 0.60
    assert not [m for m in judged.metrics if "demographic_parity" in m and m.startswith("proxy")]
    # A significant gap beyond the threshold only warns, under a proxy_ check name.
    assert _checks(judged)["proxy_accuracy_difference[brightness (proxy)]"] == "warned"
    assert judged.status == "warned"
    assert _checks(judged)["demographic_groups"] == "skipped"
    texts = [f.title for f in judged.findings]
    assert any(PROXY_NOTE in t for t in texts) and any("PROXY slices" in t for t in texts)


def test_sensitive_and_proxy_numbers_stay_apart():
    judged = judge(
        _measurement(
            _slicing("sex", {"F": (500, 0.88, 0.01), "M": (500, 0.90, 0.01)}),
            _slicing("class (proxy)", {"class 0": (400, 0.5, 0.01), "class 1": (400, 0.99, 0.01)},
                     kind="proxy"),
        )
    )
    assert not judged.proxy_only
    assert judged.metrics["accuracy_difference"] == pytest.approx(0.02)  # sensitive only
    assert judged.metrics["proxy_accuracy_difference"] == pytest.approx(0.49)
    assert judged.status == "warned"  # the proxy gap warns; the sensitive gap is within 5%


# --- the interval -----------------------------------------------------------------------------
def test_picking_the_extreme_pair_out_of_many_widens_the_interval():
    values, errors = {"a": 0.80, "b": 0.86}, {"a": 0.015, "b": 0.015}
    one = disparity(values, errors, comparisons=1, measure="accuracy", threshold=0.05, alpha=0.05)
    many = disparity(values, errors, comparisons=45, measure="accuracy", threshold=0.05,
                     alpha=0.05)
    assert one["value"] == many["value"] == pytest.approx(0.06)
    assert one["significant"] and not many["significant"]
    assert many["ci"][1] - many["ci"][0] > one["ci"][1] - one["ci"][0]


def test_a_gap_of_rates_never_has_an_interval_beyond_what_rates_can_differ():
    # A tiny group at 100% beside one at 12.5%, with wide bootstrap errors and many comparisons:
    # the normal approximation's upper end would pass 100 points.
    d = disparity({"q4": 1.0, "q2": 0.125}, {"q4": 0.15, "q2": 0.12}, comparisons=96,
                  measure="true positive rate", threshold=0.1, alpha=0.05)
    assert d["ci"][1] == 1.0 and d["ci"][0] > 0
    assert d["significant"] and d["exceeds"]
    unclipped = disparity({"q4": 1.0, "q2": 0.125}, {"q4": 0.01, "q2": 0.01}, comparisons=1,
                          measure="true positive rate", threshold=0.1, alpha=0.05)
    assert unclipped["ci"][1] < 1.0  # narrow intervals are untouched

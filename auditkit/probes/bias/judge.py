"""Judge: gaps, their intervals, checks, findings and metrics from a ``BiasMeasurement`` alone.

Pure: no model, no data, no fairlearn. A disparity is the highest minus the lowest rankable
group; its interval is ``gap ± z·√(se₁² + se₂²)`` with ``z`` Bonferroni-adjusted for the
comparisons behind the maximum. A check fails only on real sensitive columns, for a core
disparity that exceeds its threshold even at the low end of its interval; proxy slices and
cross-probe gaps warn instead (see the package notes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from auditkit.probes.bias._slicing import PROXY_NOTE
from auditkit.probes.bias.measure import BiasMeasurement
from auditkit.probes.bias.missing import MISSING
from auditkit.results import Check, Finding

RATE_LABELS = {
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate",
    "false_positive_rate": "false positive rate",
}
# A failed check needs real sensitive columns and one of these; the rest warn.
_CORE = ("accuracy_difference", "equalized_odds_difference", "demographic_parity_difference")

# DESIGN (demographic) aggregate → its proxy-slice name. No demographic parity for proxies:
# slices differ in class mix, so their selection rates are not compared (see the package notes).
PROXY_NAMES = {
    "worst_group_accuracy": "proxy_worst_slice_accuracy",
    "accuracy_difference": "proxy_accuracy_difference",
    "accuracy_ratio": "proxy_accuracy_ratio",
    "equalized_odds_difference": "proxy_equalized_odds_difference",
    "min_group_size": "proxy_min_slice_size",
    "small_groups": "proxy_small_slices",
    "worst_group_robust_accuracy": "proxy_worst_slice_robust_accuracy",
    "robust_accuracy_difference": "proxy_robust_accuracy_difference",
    "worst_group_ece": "proxy_worst_slice_ece",
    "ece_difference": "proxy_ece_difference",
}


@dataclass(frozen=True)
class Judgement:
    """What the measurement means: per-slicing reports (measurement + disparities), the probe's
    metrics, checks, findings (most severe first) and status."""

    reports: list[dict[str, Any]]
    metrics: dict[str, float | None]
    checks: list[Check]
    findings: list[Finding]
    status: str
    proxy_only: bool


def thresholds(opts) -> dict[str, float | None]:
    """Disparity key (``accuracy_difference`` …) → largest acceptable gap (None: report only);
    the options name them ``max_<key>``."""
    return {
        f.name.removeprefix("max_"): getattr(opts, f.name)
        for f in dataclasses.fields(opts)
        if f.name.startswith("max_")
    }


def judge(m: BiasMeasurement) -> Judgement:
    """Disparities, checks, findings, metrics and status of ``m``, with the thresholds,
    confidence and minimum group size of the options it was measured with."""
    opts = m.opts
    alpha = 1.0 - float(opts.confidence)
    conf = f"{1 - alpha:.0%}"
    names = m.class_names
    limits = thresholds(opts)
    reports = [_judged(s, limits, alpha) for s in m.slicings]
    proxy_only = all(r["kind"] == "proxy" for r in reports)
    min_group_size = opts.min_group_size

    checks = column_checks(m.columns, m.single_group_columns)
    missing_check, missing_finding = missing_values_notice(m.missing_values)
    checks += missing_check
    checks += [
        Check(
            f"{measure}_per_group",
            "warned",
            f"{probe} results unusable ({reason}); {measure} per group skipped",
        )
        for probe, measure, reason in m.cross_probe_problems
    ]
    findings: list[Finding] = []
    for r in reports:
        for key, d in r["disparities"].items():
            status = disparity_status(key, d, r["kind"])
            prefix = "proxy_" if r["kind"] == "proxy" else ""
            checks.append(
                Check(
                    f"{prefix}{key}[{r['name']}]",
                    status,
                    disparity_text(d, r, names, conf),
                    {k: d[k] for k in ("value", "ci", "significant", "threshold", "exceeds")},
                )
            )
            finding = _disparity_finding(d, r, names, conf, status)
            if finding is not None:
                findings.append(finding)
    small = [(g["group"], g["count"]) for r in reports for g in r["groups"] if g["small"]]
    checks.append(
        Check(
            "min_group_size",
            "warned" if small else "passed",
            (
                f"{len(small)} group(s) below {min_group_size} examples, flagged and not ranked: "
                + "; ".join(f"{g} (n={n})" for g, n in small[:8])
                + (" …" if len(small) > 8 else "")
            )
            if small
            else f"every group has at least {min_group_size} examples",
            {"min_group_size": min_group_size, "small_groups": [g for g, _ in small]},
        )
    )
    if small:
        findings.append(
            Finding(
                "warning",
                f"{len(small)} group(s) have fewer than {min_group_size} examples and are not "
                f"ranked: {', '.join(g for g, _ in small[:5])}" + (" …" if len(small) > 5 else ""),
                why="with so few examples a group's accuracy is too noisy to compare; a model "
                "can fail a small group badly without it showing in the averages",
                action="collect more examples of these groups, or merge categories, then audit "
                "again",
            )
        )
    findings += missing_finding
    if proxy_only:
        findings.append(
            Finding(
                "info",
                "no sensitive columns: the groups here are PROXY slices (true class, image "
                "statistics), not demographics",
                why="a slice such as 'dim images' can hint at who a model fails, but it is not a "
                "person's group and says nothing about fairness to people",
                action="pass sensitive columns (--sensitive for tables, group arrays in "
                ".npz/.pt, --groups-file for image folders) to audit real groups",
            )
        )
    severity = {"critical": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: severity[f.severity])
    statuses = {c.status for c in checks}
    status = "failed" if "failed" in statuses else "warned" if "warned" in statuses else "passed"
    return Judgement(
        reports, metrics(m.overall_accuracy, reports), checks, findings, status, proxy_only
    )


def missing_values_notice(missing: dict[str, int]) -> tuple[list[Check], list[Finding]]:
    """A check and a finding naming the sensitive columns with missing values, which were
    audited as their own ``missing`` group (``bias.missing``)."""
    if not missing:
        return [], []
    described = ", ".join(f"{c}: {n}" for c, n in missing.items())
    check = Check(
        "missing_group_values",
        "warned",
        f"rows without a value in sensitive columns ({described}) form their own group named "
        f"'{MISSING}'",
        {"columns": dict(missing)},
    )
    finding = Finding(
        "warning",
        f"{sum(missing.values())} row(s) have no value in a sensitive column ({described}): "
        f"audited as a separate group '{MISSING}'",
        why="a missing group value is not a category of people, and merging it into a real "
        "one would hide it; people whose group is unknown are often served differently",
        action="find out why the values are missing (collection, joins, opt-outs) and fill "
        "them where you can; keep the 'missing' group in the audit until then",
    )
    return [check], [finding]


def column_checks(columns: list[str], single_group_columns: dict[str, str]) -> list[Check]:
    """Which sensitive columns were audited (or that proxies stood in), and which were ignored."""
    checks = []
    if columns:
        checks.append(
            Check(
                "demographic_groups",
                "passed",
                f"sensitive columns audited: {', '.join(columns)}",
                {"columns": columns},
            )
        )
    else:
        checks.append(
            Check(
                "demographic_groups",
                "skipped",
                "the data has no sensitive columns: audited PROXY slices instead (true class, "
                "image statistics); a proxy slice is not a demographic",
                {"columns": []},
            )
        )
    if single_group_columns:
        described = ", ".join(f"{c}: {v}" for c, v in single_group_columns.items())
        checks.append(
            Check(
                "single_group_columns",
                "warned",
                f"ignored columns with one group only ({described}); nothing to compare",
                {"columns": list(single_group_columns)},
            )
        )
    return checks


def _judged(measured: dict[str, Any], limits, alpha: float) -> dict[str, Any]:
    """A slicing's report: its measurement with ``comparisons`` turned into ``disparities``."""
    report = {}
    for key, value in measured.items():
        if key != "comparisons":
            report[key] = value
            continue
        report["disparities"] = {
            name: disparity(
                c["values"],
                c["standard_errors"],
                comparisons=_pairs(len(c["values"])) * c["per_pair"],
                measure=c["measure"],
                threshold=limits.get(name),
                alpha=alpha,
                positive=c["positive_class"],
            )
            for name, c in value.items()
        }
    return report


def disparity(
    values: dict[str, float],
    standard_errors: dict[str, float],
    *,
    comparisons: int,
    measure: str,
    threshold: float | None,
    alpha: float,
    positive: int | None = None,
) -> dict[str, Any]:
    """Highest-minus-lowest group value and its interval.

    The interval is ``gap ± z · √(se_high² + se_low²)`` with each group's bootstrap standard
    error (disjoint groups resample nearly independently) and ``z`` Bonferroni-adjusted for
    ``comparisons``: picking the extreme pair out of many must not manufacture significance.
    For rates (every value in [0, 1]) it is clipped to the attainable [-1, 1].

    Example:
        >>> d = disparity({"a": 0.9, "b": 0.6}, {"a": 0.01, "b": 0.01}, comparisons=1,
        ...               measure="accuracy", threshold=0.05, alpha=0.05)
        >>> d["significant"], d["exceeds"]
        (True, True)
    """
    ordered = sorted(values.items(), key=lambda item: item[1])  # stable: ties keep their order
    (lower, low_value), (higher, high_value) = ordered[0], ordered[-1]
    gap = float(high_value - low_value)
    se = math.sqrt(float(standard_errors[higher]) ** 2 + float(standard_errors[lower]) ** 2)
    z = float(NormalDist().inv_cdf(1 - alpha / (2 * comparisons)))
    ci = [_num(gap - z * se), _num(gap + z * se)]
    if all(0.0 <= float(v) <= 1.0 for v in values.values()):
        # Rates: a difference of two lies in [-1, 1], whatever the normal approximation says
        # (a +131.8% upper end for a gap of true positive rates is no answer). Only the ends
        # beyond the attainable range move; the decisions read the lower end, which a clip at
        # -1 never changes.
        ci = [None if c is None else min(max(c, -1.0), 1.0) for c in ci]
    significant = ci[0] is not None and ci[0] > 0
    limit = None if threshold is None else float(threshold)
    return {
        "value": gap,
        "measure": measure,
        "positive_class": positive,
        "higher_group": str(higher),
        "higher": float(high_value),
        "lower_group": str(lower),
        "lower": float(low_value),
        "standard_error": _num(se),
        "ci": ci,
        "confidence": 1 - alpha,
        "comparisons": comparisons,
        "significant": significant,
        "threshold": limit,
        "above_threshold": limit is not None and gap > limit,
        # Judged on the interval: above the threshold even at its low end.
        "exceeds": limit is not None and ci[0] is not None and ci[0] > limit,
        "groups_compared": len(values),
    }


def disparity_status(key: str, d: dict[str, Any], kind: str) -> str:
    """``failed`` for a core disparity on sensitive columns that exceeds its threshold across its
    whole interval, ``warned`` for the same elsewhere, else ``passed``."""
    if not (d["significant"] and d["exceeds"]):
        return "passed"
    return "failed" if kind == "sensitive" and key in _CORE else "warned"


def metrics(overall_accuracy: float | None, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The probe's metrics. Never present a proxy as a demographic: the DESIGN names (what
    policy gates read) come from sensitive columns only and stay None without them; proxy slices
    publish the same aggregates under ``proxy_*`` names, and only when proxy slices were
    audited."""
    sensitive = [r for r in reports if r["kind"] == "sensitive"]
    proxies = [r for r in reports if r["kind"] == "proxy"]
    cross = [
        m for m in ("robust_accuracy", "ece") if any(m in r.get("cross_probe", {}) for r in reports)
    ]
    out: dict[str, float | None] = {"overall_accuracy": overall_accuracy}
    out.update(aggregates(sensitive, cross))
    if proxies:
        proxy = aggregates(proxies, cross)
        out.update({PROXY_NAMES[k]: proxy[k] for k in PROXY_NAMES if k in proxy})
    return out


def aggregates(reports: list[dict[str, Any]], cross: list[str]) -> dict[str, float | None]:
    """Worst group, largest gaps, smallest ratios and sizes over ``reports`` (all None when there
    are none), under the DESIGN names; cross-probe names only for the probes in ``cross``."""

    def extreme(key: str, pick):
        found = [r["disparities"][key]["value"] for r in reports if key in r["disparities"]]
        return pick(found) if found else None

    def ratio(key: str):
        found = [r["ratios"][key] for r in reports if r["ratios"].get(key) is not None]
        return min(found) if found else None

    counts = [g["count"] for r in reports for g in r["groups"]]
    worst = [r["worst_group_accuracy"] for r in reports if r["worst_group_accuracy"] is not None]
    out: dict[str, float | None] = {
        "worst_group_accuracy": min(worst) if worst else None,
        "accuracy_difference": extreme("accuracy_difference", max),
        "accuracy_ratio": ratio("accuracy_ratio"),
        "demographic_parity_difference": extreme("demographic_parity_difference", max),
        "demographic_parity_ratio": ratio("demographic_parity_ratio"),
        "equalized_odds_difference": extreme("equalized_odds_difference", max),
        "min_group_size": float(min(counts)) if counts else None,
        "small_groups": float(sum(g["small"] for r in reports for g in r["groups"]))
        if reports
        else None,
    }
    for measure, pick in (("robust_accuracy", min), ("ece", max)):
        if measure in cross:
            values = [
                r["cross_probe"][measure]["worst_value"]
                for r in reports
                if "worst_value" in r.get("cross_probe", {}).get(measure, {})
            ]
            out[f"worst_group_{measure}"] = pick(values) if values else None
            out[f"{measure}_difference"] = extreme(f"{measure}_difference", max)
    return out


# --- words ----------------------------------------------------------------------------------
def _pairs(n: int) -> int:
    return max(1, n * (n - 1) // 2)


def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def measure_name(d: dict[str, Any], names: list[str]) -> str:
    measure = d["measure"]
    if measure in RATE_LABELS:
        text = RATE_LABELS[measure]
        if d.get("positive_class") is not None:
            text += f" (class {names[d['positive_class']]})"
        return text
    return {"accuracy": "accuracy", "robust_accuracy": "robust accuracy", "ece": "ECE"}[measure]


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def interval_text(d: dict[str, Any], conf: str) -> str:
    lo, hi = d["ci"]
    adjusted = f", Bonferroni over {d['comparisons']}" if d["comparisons"] > 1 else ""
    if lo is None or hi is None:
        return f"{conf} interval undefined{adjusted}"
    return f"{conf} CI {lo:+.1%} to {hi:+.1%}{adjusted}"


def _threshold_text(d: dict[str, Any]) -> str:
    if d["threshold"] is None:
        return ""
    if d["exceeds"]:
        return f"; exceeds {d['threshold']:.1%} across its whole interval"
    if d["above_threshold"]:
        return f"; above {d['threshold']:.1%}, but not conclusively at this sample size"
    return f"; within {d['threshold']:.1%}"


def disparity_text(d, report, names, conf) -> str:
    proxy = f" ({PROXY_NOTE})" if report["kind"] == "proxy" else ""
    verdict = "significant" if d["significant"] else "not significant at this sample size"
    return (
        f"{report['name']}{proxy}: {measure_name(d, names)} {pct(d['higher'])} for "
        f"{d['higher_group']} vs {pct(d['lower'])} for {d['lower_group']}: gap "
        f"{d['value']:.1%} ({interval_text(d, conf)}; {verdict}){_threshold_text(d)}"
    )


def _disparity_finding(d, report, names, conf, status) -> Finding | None:
    proxy = report["kind"] == "proxy"
    tag = f" — {PROXY_NOTE}" if proxy else ""
    if status == "passed":
        if not d["above_threshold"]:
            return None
        if d["significant"]:
            title = "is above the threshold, but not conclusively at this sample size"
            why = (
                f"its {interval_text(d, conf)} excludes 0 but reaches below the "
                f"{d['threshold']:.1%} threshold"
            )
        else:
            title = "is not significant at this sample size"
            why = (
                f"its {interval_text(d, conf)} includes 0: the groups cannot be told apart with "
                "this many examples"
            )
        return Finding(
            "info",
            f"{report['name']}: {measure_name(d, names)} gap of {d['value']:.1%} between "
            f"{d['higher_group']} and {d['lower_group']} {title}{tag}",
            why=why,
            action="collect more examples of these groups before drawing conclusions",
        )
    measure = d["measure"]
    worse, better = d["lower_group"], d["higher_group"]
    worse_value, better_value = d["lower"], d["higher"]
    if measure in ("false_positive_rate", "ece"):
        worse, better = better, worse
        worse_value, better_value = better_value, worse_value
    why = {
        "accuracy": "the model's errors fall unevenly: one group bears more of them",
        "robust_accuracy": "small input perturbations flip the model's decisions more easily "
        "for one group: it is less robust for them",
        "ece": "the model's confidence means something different for one group (ECE also "
        "grows on smaller samples, so compare group sizes)",
        "selection_rate": "one group receives the positive decision less often",
        "true_positive_rate": "qualified members of one group are recognised less often "
        "(unequal opportunity)",
        "false_positive_rate": "one group is wrongly given the positive decision more often",
    }[measure]
    action = (
        "look at the examples in this slice; if real groups matter, audit them with sensitive "
        "columns"
        if proxy
        else "check the training labels of this group for historical bias and the features "
        "for proxies of the group; rebalance or reweight, or post-process (fairlearn's "
        "ThresholdOptimizer), then audit again"
    )
    return Finding(
        "critical" if status == "failed" else "warning",
        f"{worse}: {measure_name(d, names)} {pct(worse_value)} vs {pct(better_value)} for "
        f"{better} (gap {d['value']:.1%}, {interval_text(d, conf)}){tag}",
        why=why,
        action=action,
    )

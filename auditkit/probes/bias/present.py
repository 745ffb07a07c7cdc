"""Present: the bias probe's summary, headline, figures and details, from judged reports."""

from __future__ import annotations

from typing import Any

from auditkit.probes.bias._slicing import PROXY_NOTE
from auditkit.probes.bias.judge import RATE_LABELS, Judgement, thresholds
from auditkit.probes.bias.measure import BiasMeasurement
from auditkit.results import ProbeResult


def present(name: str, m: BiasMeasurement, j: Judgement) -> ProbeResult:
    """The probe's result: metrics and checks from the judge, words and pictures from here."""
    opts = m.opts
    conf = f"{1 - (1.0 - float(opts.confidence)):.0%}"  # as the judge's 1 − α
    return ProbeResult(
        name=name,
        status=j.status,
        metrics=j.metrics,
        checks=j.checks,
        summary=summary(j.reports, j.proxy_only, opts.min_group_size),
        headline="proxy_worst_slice_accuracy" if j.proxy_only else "worst_group_accuracy",
        findings=j.findings,
        figures=figures(
            j.reports,
            j.metrics["overall_accuracy"],
            m.class_names,
            conf,
            opts.n_boot,
            opts.min_group_size,
        ),
        details=details(j.reports, m, proxy_only=j.proxy_only),
    )


def summary(reports: list[dict[str, Any]], proxy_only: bool, min_size: int) -> str:
    """One sentence on the widest accuracy gap of the headline slicings."""
    sensitive = [r for r in reports if r["kind"] == "sensitive"]
    headline_reports = sensitive or [r for r in reports if r["kind"] == "proxy"]
    prefix = "PROXY slices, not demographics (no sensitive columns): " if proxy_only else ""
    scored = [r for r in headline_reports if "accuracy_difference" in r["disparities"]]
    if not scored:
        return (
            f"{prefix}no two groups have {min_size}+ examples, so none were compared; "
            "see the flagged groups"
        )
    report = max(scored, key=lambda r: r["disparities"]["accuracy_difference"]["value"])
    d = report["disparities"]["accuracy_difference"]
    verdict = "significant" if d["significant"] else "not significant at this sample size"
    noun = "slice" if proxy_only else "group"
    return (
        f"{prefix}worst {noun} {d['lower_group']}: {d['lower']:.1%} accuracy vs "
        f"{d['higher']:.1%} for {d['higher_group']} (gap {d['value']:.1%}, {verdict})"
    )


def details(reports, m: BiasMeasurement, *, proxy_only: bool) -> dict[str, Any]:
    """How the groups were cut and measured, and every slicing's report."""
    opts, names = m.opts, m.class_names
    n_boot, classes = opts.n_boot, m.classes
    alpha = 1.0 - float(opts.confidence)
    return {
        "slice_kind": "proxy" if proxy_only else "sensitive",
        "note": (
            f"PROXY slices ({PROXY_NOTE}): the data has no sensitive columns"
            if proxy_only
            else "groups from the data's sensitive columns and their intersections"
        ),
        "classes_of_interest": [names[c] for c in classes],
        "positive_class": names[classes[0]] if len(classes) == 1 else None,
        "settings": {
            "n_boot": n_boot,
            "confidence": 1 - alpha,
            "min_group_size": opts.min_group_size,
            "thresholds": {f"max_{k}": v for k, v in thresholds(opts).items()},
        },
        "interval_method": (
            "per-group intervals: fairlearn MetricFrame bootstrap quantiles "
            f"({n_boot} resamples); disparity intervals: gap ± z·√(se₁² + se₂²) "
            "with bootstrap standard errors of the highest and lowest group and z "
            "Bonferroni-adjusted for the comparisons behind the maximum; groups below "
            "min_group_size are not ranked"
        ),
        "slicings": reports,
    }


def figures(reports, overall, names, conf, n_boot, min_size) -> list[dict[str, Any]]:
    """Accuracy per group with error bars and a table per slicing; cross-probe bars."""
    out: list[dict[str, Any]] = []
    for r in reports:
        proxy = r["kind"] == "proxy"
        suffix = f" — {PROXY_NOTE}" if proxy else ""
        caption = (
            f"Whiskers: {conf} bootstrap interval (fairlearn MetricFrame, {n_boot} resamples); "
            f"line: overall accuracy. Flagged bars have fewer than {min_size} examples and are "
            "not ranked."
        )
        out.append(
            {
                "kind": "bar",
                "id": f"bias-accuracy-{_slug(r['name'])}",
                "title": f"Accuracy per group: {r['name']}{suffix}",
                "x_label": "proxy slice" if proxy else "group",
                "y_label": "accuracy",
                "bars": [
                    {
                        "label": g["group"],
                        "value": g["accuracy"],
                        "low": g["accuracy_ci"][0],
                        "high": g["accuracy_ci"][1],
                        "flag": g["small"],
                        "count": g["count"],
                    }
                    for g in r["groups"]
                ],
                "reference": overall,
                "y_range": [0, 1],
                "caption": caption + (f" {PROXY_NOTE.capitalize()}." if proxy else ""),
            }
        )
        out.append(_table(r, names, conf, suffix))
    for measure, label in (("robust_accuracy", "Robust accuracy"), ("ece", "ECE")):
        candidates = [r for r in reports if f"{measure}_difference" in r["disparities"]]
        if not candidates:
            continue
        r = max(candidates, key=lambda r: r["disparities"][f"{measure}_difference"]["value"])
        proxy = r["kind"] == "proxy"
        cross = r["cross_probe"][measure]
        eps = f" at eps {cross['eps']}" if cross.get("eps") is not None else ""
        out.append(
            {
                "kind": "bar",
                "id": f"bias-{measure.replace('_', '-')}",
                "title": f"{label} per group{eps}: {r['name']}"
                + (f" — {PROXY_NOTE}" if proxy else ""),
                "x_label": "proxy slice" if proxy else "group",
                "y_label": label.lower() if measure != "ece" else "ECE",
                "bars": [
                    {
                        "label": g["group"],
                        "value": g[measure],
                        "low": g[f"{measure}_ci"][0],
                        "high": g[f"{measure}_ci"][1],
                        "flag": g[f"{measure}_count"] < min_size,
                        "count": g[f"{measure}_count"],
                    }
                    for g in r["groups"]
                    if g.get(measure) is not None
                ],
                "caption": f"From the {cross['probe']} probe's per-example results on "
                f"{cross['examples']} examples (not recomputed); whiskers: {conf} bootstrap "
                "interval; flagged bars are too small to rank.",
            }
        )
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")


def _table(report, names, conf, suffix) -> dict[str, Any]:
    rates = report["rates_class"] is not None
    cross = [m for m in ("robust_accuracy", "ece") if m in report.get("cross_probe", {})]
    columns = ["group", "n", "accuracy", f"{conf} CI", "error rate"]
    if rates:
        columns += ["selection rate", "TPR", "FPR", "FNR"]
    columns += [{"robust_accuracy": "robust acc.", "ece": "ECE"}[m] for m in cross]
    columns.append("note")

    def fmt(value):
        return None if value is None else round(value, 4)

    rows = []
    for g in report["groups"]:
        lo, hi = g["accuracy_ci"]
        note = []
        if g["small"]:
            note.append("too small: not ranked")
        if g["group"] == report["worst_group"]:
            note.append("worst")
        if g["group"] == report["best_group"]:
            note.append("best")
        row = [
            g["group"],
            g["count"],
            fmt(g["accuracy"]),
            "n/a" if lo is None or hi is None else f"{lo:.3f}–{hi:.3f}",
            fmt(g["error_rate"]),
        ]
        if rates:
            row += [fmt(g[k]) for k in (*RATE_LABELS, "false_negative_rate")]
        row += [fmt(g.get(m)) for m in cross]
        row.append(", ".join(note))
        rows.append(row)
    caption = f"Intervals: {conf} bootstrap (fairlearn MetricFrame)."
    if rates:
        caption += (
            f" Rates are one-vs-rest for class {names[report['rates_class']]} (selection rate: "
            "share predicted that class)."
        )
    return {
        "kind": "table",
        "id": f"bias-table-{_slug(report['name'])}",
        "title": f"Per-group metrics: {report['name']}{suffix}",
        "columns": columns,
        "rows": rows,
        "caption": caption,
    }

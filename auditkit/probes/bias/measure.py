"""Measure: cut the audit data into groups and read per-group numbers off fairlearn's
``MetricFrame`` on the shared clean predictions, with bootstrap intervals and standard errors.

The point estimates are MetricFrame's. The bootstrap intervals are computed vectorized
(``auditkit.functional.bootstrap``: per-group counts with one ``bincount`` over all resamples)
from the very resamples ``MetricFrame(n_boot, random_state)`` draws, so they equal its
``by_group_ci`` (tested) at a fraction of the cost: the probe's time grows linearly in N.

Nothing here judges: thresholds, significance and statuses live in ``judge.py``. A slicing's
measurement is a plain dict (see ``measure_slicing``); its ``comparisons`` hold, for every gap the
judge will look at, the rankable groups' values and bootstrap standard errors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from auditkit.functional import bootstrap as vboot
from auditkit.functional.fairness import (
    RATE_FUNCTIONS,
    accuracy,
    calibration_error,
    mean_of,
    rate_metrics,
)
from auditkit.probes.bias._slicing import (
    Slicing,
    class_names,
    classes_of_interest,
    group_label,
    plan,
)
from auditkit.probes.bias.options import BiasOptions

_SD_LOW, _SD_HIGH = 0.15865525393145707, 0.8413447460685429  # ±1 standard deviation


class NothingToCompare(Exception):
    """The data offers no two groups to compare; the message says why (the probe is skipped)."""


@dataclass
class BiasMeasurement:
    """Everything measured, as plain data; ``judge.judge`` reads nothing else.

    ``slicings``: one dict per slicing (``measure_slicing``), with ``cross_probe`` per-group
    numbers added by ``measure_cross_probe``. ``columns``: the sensitive columns audited (empty:
    proxy slices only); ``single_group_columns``: ignored columns and their only value.
    ``cross_probe_problems``: ``(probe, measure, reason)`` for other probes' results that could
    not be used. ``opts``: the options it was measured with (the judge reads the thresholds).
    """

    slicings: list[dict[str, Any]]
    columns: list[str]
    single_group_columns: dict[str, str]
    classes: list[int]
    class_names: list[str]
    overall_accuracy: float | None
    opts: BiasOptions = field(default_factory=BiasOptions)
    cross_probe_problems: list[tuple[str, str, str]] = field(default_factory=list)
    #: Sensitive column → number of rows without a value (audited as the group ``missing``).
    missing_values: dict[str, int] = field(default_factory=dict)


def measure(context, opts: BiasOptions, budget: str) -> BiasMeasurement:
    """Per-group numbers of every slicing on the shared clean predictions (``opts.n_boot``
    already follows the budget). Raises ``NothingToCompare`` when there is nothing to slice."""
    planned = plan(context, opts)
    if planned.skip_reason:
        raise NothingToCompare(planned.skip_reason)
    y = context.data.y.numpy()
    pred = context.clean_predictions.numpy()
    classes = classes_of_interest(context, y, opts.positive_class)
    seeds = context.rng("bias")
    settings = {
        "min_group_size": opts.min_group_size,
        "n_boot": opts.n_boot,
        "alpha": 1.0 - float(opts.confidence),
    }
    # Each slicing bootstraps n_boot rounds inside fairlearn; progress counts slicings.
    slicings = [
        measure_slicing(s, y, pred, classes, seeds, **settings)
        for s in context.progress.track(
            planned.slicings,
            total=len(planned.slicings),
            description=f"slicings ({opts.n_boot} bootstrap rounds each)",
        )
    ]
    problems = measure_cross_probe(context, planned.slicings, slicings, seeds, **settings)
    return BiasMeasurement(
        slicings=slicings,
        columns=planned.columns,
        single_group_columns=planned.single_group_columns,
        classes=classes,
        class_names=class_names(context),
        overall_accuracy=accuracy(y, pred),
        opts=opts,
        cross_probe_problems=problems,
        missing_values=planned.missing_values,
    )


# --- measuring ------------------------------------------------------------------------------
def _frame(metrics, y, pred, features, **kwargs):
    """A fairlearn MetricFrame (bootstrapped when ``n_boot`` is passed)."""
    from fairlearn.metrics import MetricFrame

    # Quantiles of a metric that is undefined in some resamples (a TPR without positives) warn
    # about NaN slices; the NaN itself is what we report.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return MetricFrame(
            metrics=metrics, y_true=y, y_pred=pred, sensitive_features=features, **kwargs
        )


def boot_settings(seeds: np.random.Generator, n_boot: int, alpha: float) -> dict[str, Any]:
    # Quantiles: the two-sided interval for the error bars, and ±1 standard deviation (15.87% /
    # 84.13%), whose half-width is a bootstrap standard error that stays stable with few
    # resamples (extreme quantiles do not).
    return {
        "n_boot": n_boot,
        "ci_quantiles": [alpha / 2, _SD_LOW, _SD_HIGH, 1 - alpha / 2],
        "random_state": int(seeds.integers(0, 2**31 - 1)),
    }


def measure_slicing(
    s: Slicing,
    y: np.ndarray,
    pred: np.ndarray,
    classes: list[int],
    seeds: np.random.Generator,
    *,
    min_group_size: int,
    n_boot: int,
    alpha: float,
) -> dict[str, Any]:
    """Per-group numbers with intervals, and the values behind each gap of one slicing."""
    from fairlearn.metrics import count

    point_metrics: dict[str, Any] = {"count": count, "accuracy": accuracy}
    if s.rates:
        for c in classes:
            point_metrics.update(rate_metrics(c, f"@{c}"))
    raw = _frame(point_metrics, y, pred, s.frame)
    point = _relabel(raw.by_group, s, s.members)
    rankable = [g for g in point.index if point.loc[g, "count"] >= min_group_size]
    small = [g for g in point.index if point.loc[g, "count"] < min_group_size]

    # The gaps to compare: accuracy, and (with rates) the class and rate with the widest
    # selection-rate and TPR/FPR gaps among rankable groups. ``per_pair``: how many measures
    # stand behind the maximum for each pair of groups (the judge's Bonferroni count).
    table = point.loc[rankable]
    compared: dict[str, tuple[str, int | None, int]] = {}
    if len(table["accuracy"].dropna()) >= 2:
        compared["accuracy_difference"] = ("accuracy", None, 1)
    focus = classes[0] if s.rates else None
    if s.rates and len(rankable) >= 2:
        # Proxy slices differ in class mix, so their selection rates mostly measure that mix;
        # TPR/FPR condition on the true class and stay meaningful.
        dp = _widest(table, classes, ("selection_rate",)) if s.kind == "sensitive" else None
        eo = _widest(table, classes, ("true_positive_rate", "false_positive_rate"))
        if dp is not None:
            compared["demographic_parity_difference"] = (
                "selection_rate",
                dp["class"],
                len(classes),
            )
        if eo is not None:
            focus = eo["class"]
            compared["equalized_odds_difference"] = (eo["rate"], eo["class"], 2 * len(classes))

    # One bootstrapped frame: accuracy for the error bars, plus the compared rates.
    columns = {"accuracy": accuracy}
    for measure, c, _ in compared.values():
        if c is not None:
            columns[f"{measure}@{c}"] = partial(RATE_FUNCTIONS[measure], positive=c)
    settings = boot_settings(seeds, n_boot, alpha)
    boot = _group_intervals(columns, y, pred, s.frame, raw.by_group.index, settings)
    low, sd_low, sd_high, high = (_relabel(q, s, s.members) for q in boot)
    se = (sd_high - sd_low) / 2.0

    comparisons: dict[str, dict[str, Any]] = {}
    for key, (measure, c, per_pair) in compared.items():
        column = measure if c is None else f"{measure}@{c}"
        values = table[column].dropna()
        comparisons[key] = _comparison(measure, c, per_pair, values, se[column])
    ratios: dict[str, float | None] = {}
    if "accuracy_difference" in compared:
        ratios["accuracy_ratio"] = _ratio(table["accuracy"])
    if "demographic_parity_difference" in compared:
        ratios["demographic_parity_ratio"] = min(
            (r for k in classes if (r := _ratio(table[f"selection_rate@{k}"])) is not None),
            default=None,
        )

    def interval(g: str, column: str, flip: bool = False) -> list[float | None]:
        if column not in low.columns:
            return [None, None]
        if flip:
            return _ci(1 - high.loc[g, column], 1 - low.loc[g, column])
        return _ci(low.loc[g, column], high.loc[g, column])

    groups = []
    for g in point.index:
        record: dict[str, Any] = {
            "group": g,
            "values": _values_of(g, s),
            "count": int(point.loc[g, "count"]),
            "small": g in small,
            "accuracy": _num(point.loc[g, "accuracy"]),
            "accuracy_ci": interval(g, "accuracy"),
            "error_rate": _num(1.0 - point.loc[g, "accuracy"]),
            "error_rate_ci": interval(g, "accuracy", flip=True),
        }
        if focus is not None:
            for name in RATE_FUNCTIONS:
                record[name] = _num(point.loc[g, f"{name}@{focus}"])
                record[f"{name}_ci"] = interval(g, f"{name}@{focus}")
            tpr = f"true_positive_rate@{focus}"
            record["false_negative_rate"] = _num(1.0 - point.loc[g, tpr])
            record["false_negative_rate_ci"] = interval(g, tpr, flip=True)
            if len(classes) > 1:
                record["per_class"] = {
                    str(c): {r: _num(point.loc[g, f"{r}@{c}"]) for r in RATE_FUNCTIONS}
                    for c in classes
                }
        groups.append(record)

    ranked = sorted(
        (r for r in groups if not r["small"] and r["accuracy"] is not None),
        key=lambda r: r["accuracy"],
    )
    return {
        "name": s.name,
        "kind": s.kind,
        "columns": list(s.frame.columns),
        "definition": s.definition,
        "rates_class": focus,
        "bootstrap": settings,
        "groups": groups,
        "small_groups": small,
        "worst_group": ranked[0]["group"] if ranked else None,
        "best_group": ranked[-1]["group"] if ranked else None,
        "worst_group_accuracy": ranked[0]["accuracy"] if ranked else None,
        "comparisons": comparisons,
        "ratios": ratios,
    }


def _comparison(measure, positive, per_pair, values: pd.Series, se: pd.Series) -> dict[str, Any]:
    """The rankable groups' values and standard errors behind one gap, in display order."""
    return {
        "measure": measure,
        "positive_class": positive,
        "per_pair": per_pair,
        "values": {str(g): float(v) for g, v in values.items()},
        "standard_errors": {str(g): float(se[g]) for g in values.index},
    }


# Other probes' per-example results → a per-group measure: (probe, arrays, measure, metric).
_CROSS_PROBE = (
    ("adversarial", ("robust_correct",), "robust_accuracy", mean_of),
    ("calibration", ("confidence", "correct"), "ece", calibration_error),
)


def measure_cross_probe(
    context,
    slicings: list[Slicing],
    reports: list[dict[str, Any]],
    seeds: np.random.Generator,
    *,
    min_group_size: int,
    n_boot: int,
    alpha: float,
) -> list[tuple[str, str, str]]:
    """Robust accuracy and ECE per group from the other probes' per-example results, added to
    ``reports`` in place; returns ``(probe, measure, reason)`` for results that were unusable."""
    n = len(context.data)
    y = context.data.y.numpy()
    pred = context.clean_predictions.numpy()
    problems: list[tuple[str, str, str]] = []
    for probe, keys, measure, fn in _CROSS_PROBE:
        if probe not in context.artifacts:
            continue
        parsed = _per_example(context.artifacts[probe], keys, n)
        if isinstance(parsed, str):
            problems.append((probe, measure, parsed))
            continue
        idx = parsed["indices"]
        if measure == "robust_accuracy":
            params = {"values": parsed["robust_correct"].astype(np.float64)}
        else:
            params = {k: parsed[k].astype(np.float64) for k in ("confidence", "correct")}
        for s, report in zip(slicings, reports, strict=True):
            members = {g: m[idx] for g, m in s.members.items() if m[idx].any()}
            frame = s.frame.iloc[idx].reset_index(drop=True)
            settings = boot_settings(seeds, n_boot, alpha)
            mf = _frame({measure: fn}, y[idx], pred[idx], frame, sample_params={measure: params})
            value = _relabel(mf.by_group, s, members)[measure]
            intervals = _group_intervals(
                {measure: params}, y[idx], pred[idx], frame, mf.by_group.index, settings
            )
            low, sd_low, sd_high, high = (_relabel(q, s, members)[measure] for q in intervals)
            counts = pd.Series({g: int(m.sum()) for g, m in members.items()})
            by_record = {r["group"]: r for r in report["groups"]}
            for g in value.index:
                record = by_record[g]
                record[measure] = _num(value[g])
                record[f"{measure}_ci"] = _ci(low[g], high[g])
                record[f"{measure}_count"] = int(counts[g])
            rankable = value[counts.reindex(value.index) >= min_group_size].dropna()
            summary: dict[str, Any] = {
                "probe": probe,
                "examples": int(len(idx)),
                "bootstrap": settings,
                "eps": context.artifacts[probe].get("eps") if probe == "adversarial" else None,
            }
            if len(rankable):
                worst = rankable.idxmin() if measure == "robust_accuracy" else rankable.idxmax()
                summary["worst_group"] = str(worst)
                summary["worst_value"] = float(rankable[worst])
            if len(rankable) >= 2:
                report["comparisons"][f"{measure}_difference"] = _comparison(
                    measure, None, 1, rankable, (sd_high - sd_low) / 2.0
                )
            report.setdefault("cross_probe", {})[measure] = summary
    return problems


def _group_intervals(
    columns: dict[str, Any],
    y: np.ndarray,
    pred: np.ndarray,
    frame: pd.DataFrame,
    index: pd.Index,
    settings: dict[str, Any],
) -> list[pd.DataFrame]:
    """``MetricFrame(columns, …, **settings).by_group_ci``, computed vectorized.

    ``columns`` maps a column name to what it bootstraps: ``"accuracy"``,
    ``"<rate>@<class>"`` (selection / true-positive / false-positive rate), or, for the
    cross-probe measures, ``{"values": …}`` (a per-example mean) or ``{"confidence": …,
    "correct": …}`` (a group's ECE). ``index``: the groups as MetricFrame's ``by_group`` lists
    them (every row of ``frame`` is one of them).
    """
    if frame.shape[1] == 1:
        groups = pd.Index(index).get_indexer(frame.iloc[:, 0])
    else:
        groups = pd.MultiIndex.from_tuples(list(index)).get_indexer(pd.MultiIndex.from_frame(frame))
    if (groups < 0).any():
        raise ValueError("a row belongs to no group of the MetricFrame")
    n_groups = len(index)
    common = {"n_boot": int(settings["n_boot"]), "random_state": int(settings["random_state"])}
    samples: dict[str, np.ndarray] = {}
    confusion = None
    for name, spec in columns.items():
        if isinstance(spec, dict) and "values" in spec:
            samples[name] = vboot.group_means_bootstrap(
                groups, spec["values"], n_groups=n_groups, **common
            )
        elif isinstance(spec, dict):
            samples[name] = vboot.group_ece_bootstrap(
                groups, spec["confidence"], spec["correct"], n_groups=n_groups, **common
            )
        else:
            if confusion is None:
                k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
                confusion = vboot.group_confusion_bootstrap(
                    groups, y, pred, n_groups=n_groups, n_classes=k, **common
                )
            if name == "accuracy":
                samples[name] = vboot.accuracy_from_confusion(confusion)
            else:
                rate, positive = name.split("@")
                samples[name] = vboot.RATES_FROM_CONFUSION[rate](confusion, int(positive))
    quantiles = {n: vboot.group_quantiles(v, settings["ci_quantiles"]) for n, v in samples.items()}
    return [
        pd.DataFrame({n: q[i] for n, q in quantiles.items()}, index=index)
        for i in range(len(settings["ci_quantiles"]))
    ]


# --- helpers --------------------------------------------------------------------------------
def _ratio(values: pd.Series) -> float | None:
    values = values.dropna()
    if len(values) < 2 or float(values.max()) <= 0:
        return None
    return float(values.min() / values.max())


def _widest(table: pd.DataFrame, classes: list[int], rates: tuple[str, ...]):
    """The class and rate with the largest between-group gap (None when nothing compares)."""
    best = None
    for c in classes:
        for rate in rates:
            column = table[f"{rate}@{c}"].dropna()
            if len(column) < 2:
                continue
            gap = float(column.max() - column.min())
            if best is None or gap > best["gap"]:
                best = {"class": c, "rate": rate, "gap": gap}
    return best


def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _ci(low, high) -> list[float | None]:
    return [_num(low), _num(high)]


def _relabel(table: pd.DataFrame, s: Slicing, present: dict[str, np.ndarray]) -> pd.DataFrame:
    """MetricFrame rows relabelled ``col=value, …``, empty intersections dropped, proxy slices in
    their natural order (class index, quantile rank)."""
    table = table.copy()
    table.index = [group_label(k, list(s.frame.columns), s.kind) for k in table.index]
    keep = [g for g in (s.order or table.index) if g in present and g in table.index]
    return table.loc[keep]


def _values_of(label: str, s: Slicing) -> dict[str, str]:
    first = int(np.argmax(s.members[label]))
    return {c: str(s.frame[c].iloc[first]) for c in s.frame.columns}


def _per_example(artifact: Any, keys: tuple[str, ...], n: int) -> dict[str, np.ndarray] | str:
    """Validate another probe's per-example arrays: ``indices`` into the audit data plus ``keys``
    aligned with them. A string says what is wrong."""
    if not isinstance(artifact, dict) or "indices" not in artifact:
        return "no 'indices'"

    def as_array(value) -> np.ndarray:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        return np.asarray(value).reshape(-1)

    idx = as_array(artifact["indices"]).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        return f"indices outside the {n} audit examples"
    out = {"indices": idx}
    for key in keys:
        if key not in artifact:
            return f"no {key!r}"
        values = as_array(artifact[key])
        if len(values) != len(idx):
            return f"{key!r} has {len(values)} values for {len(idx)} indices"
        out[key] = values
    return out

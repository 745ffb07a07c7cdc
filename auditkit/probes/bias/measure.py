"""Measure: cut the audit data into groups and read per-group numbers off fairlearn's
``MetricFrame`` on the shared clean predictions, with bootstrap intervals and standard errors.

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

from auditkit.errors import AuditkitInputError
from auditkit.functional.fairness import (
    RATE_FUNCTIONS,
    accuracy,
    calibration_error,
    image_statistics,
    mean_of,
    quantile_slices,
    rate_metrics,
)

PROXY_NOTE = "proxy slice, not a demographic"
SINGLE_GROUP = (
    "every sensitive column has a single group ({columns}); a bias audit compares at least two "
    "groups: pass a column with two or more values"
)
NO_COLUMNS = (
    "the data has no sensitive columns and proxy_slices is 'never'; pass group columns "
    "(--sensitive, or group arrays in .npz/.pt) to audit groups"
)
_SD_LOW, _SD_HIGH = 0.15865525393145707, 0.8413447460685429  # ±1 standard deviation


@dataclass
class Slicing:
    """One way of cutting the audit data into groups (a column, an intersection, a proxy)."""

    name: str
    kind: str  # "sensitive" | "proxy"
    frame: pd.DataFrame
    definition: str
    rates: bool = True  # False when slicing by the true label makes rates meaningless
    order: list[str] | None = None
    members: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Plan:
    """What the audit will slice: the slicings, the columns behind them, or why it cannot run."""

    slicings: list[Slicing]
    columns: list[str]  # sensitive columns audited
    single_group_columns: dict[str, str]  # ignored columns → their only value
    skip_reason: str | None = None


@dataclass
class BiasMeasurement:
    """Everything measured, as plain data; ``judge.judge`` reads nothing else.

    ``slicings``: one dict per slicing (``measure_slicing``), with ``cross_probe`` per-group
    numbers added by ``measure_cross_probe``. ``cross_probe_problems``: ``(probe, measure,
    reason)`` for other probes' results that could not be used.
    """

    slicings: list[dict[str, Any]]
    columns: list[str]
    single_group_columns: dict[str, str]
    classes: list[int]
    class_names: list[str]
    overall_accuracy: float | None
    n_boot: int
    cross_probe_problems: list[tuple[str, str, str]] = field(default_factory=list)


# --- planning -------------------------------------------------------------------------------
def plan(context, *, sensitive, intersections: bool, proxy_slices: str, quantiles: int) -> Plan:
    """The slicings to audit and the group columns behind them (or the reason to skip)."""
    data = context.data
    wanted = list(sensitive or data.groups)
    missing = [c for c in wanted if c not in data.groups]
    if missing:
        raise AuditkitInputError(
            f"--set bias.sensitive: no column {', '.join(missing)} in the data "
            f"(it has: {', '.join(data.groups) or 'no sensitive columns'})"
        )
    columns = {c: np.asarray(data.groups[c]).astype(str) for c in wanted}
    usable = [c for c in wanted if len(np.unique(columns[c])) >= 2]
    single = {c: str(columns[c][0]) for c in wanted if c not in usable}
    if single and not usable:
        described = ", ".join(f"{c}: {v}" for c, v in single.items())
        return Plan([], [], {}, SINGLE_GROUP.format(columns=described))
    slicings = [
        Slicing(c, "sensitive", _categorical({c: columns[c]}), f"sensitive column {c}")
        for c in usable
    ]
    if len(usable) > 1 and intersections:
        slicings.append(
            Slicing(
                " × ".join(usable),
                "sensitive",
                _categorical({c: columns[c] for c in usable}),
                f"intersections of {', '.join(usable)}",
            )
        )
    if not usable and proxy_slices == "never":
        return Plan([], [], {}, NO_COLUMNS)
    if not usable or proxy_slices == "always":
        slicings.extend(proxy_slicings(context, quantiles))
    if not slicings:
        return Plan([], usable, single, "no slicing has two or more groups to compare")
    for s in slicings:
        s.members = _members(s.frame, s.kind)
    return Plan(slicings, usable, single)


def proxy_slicings(context, quantiles: int) -> list[Slicing]:
    """True class, and image brightness / contrast / ink-coverage quantiles — proxies only."""
    data = context.data
    names = class_names(context)
    y = data.y.numpy()
    out: list[Slicing] = []
    present = np.unique(y)
    if len(present) >= 2:
        labels = np.array([f"class {names[int(v)]}" for v in y], dtype=object)
        present_order = [f"class {names[int(v)]}" for v in present]
        out.append(
            Slicing(
                "class (proxy)",
                "proxy",
                _categorical({"class (proxy)": labels}, present_order),
                f"true class of the example — {PROXY_NOTE}",
                rates=False,
                order=present_order,
            )
        )
    if data.modality == "image" and data.x.dim() >= 3:
        stats = image_statistics(data.x, data.input_range)
        explain = {
            "brightness": "mean pixel value",
            "contrast": "standard deviation of pixel values",
            "ink_coverage": "fraction of pixels brighter than the middle of the input range",
        }
        for stat, values in stats.items():
            labels, order = quantile_slices(values, int(quantiles), stat.replace("_", " "))
            if len(order) < 2:
                continue
            title = f"{stat.replace('_', ' ')} (proxy)"
            out.append(
                Slicing(
                    title,
                    "proxy",
                    _categorical({title: labels}, order),
                    f"{explain[stat]}, cut at quantiles — {PROXY_NOTE}",
                    order=order,
                )
            )
    return out


def classes_of_interest(context, y: np.ndarray, positive_class) -> list[int]:
    """The positive class (index or name), 1 for binary tasks, else every class present."""
    k = context.adapter.num_classes
    names = class_names(context)
    if positive_class is not None:
        if isinstance(positive_class, str) and not positive_class.lstrip("-").isdigit():
            if positive_class not in names:
                raise AuditkitInputError(
                    f"--set bias.positive_class={positive_class}: no such class "
                    f"(classes: {', '.join(names)})"
                )
            return [names.index(positive_class)]
        index = int(positive_class)
        if not 0 <= index < k:
            raise AuditkitInputError(
                f"--set bias.positive_class={positive_class}: must be a class index in 0..{k - 1}"
            )
        return [index]
    if k == 2:
        return [1]
    return [int(c) for c in np.unique(y)]


def class_names(context) -> list[str]:
    names = context.data.class_names
    k = context.adapter.num_classes
    return list(names) if names and len(names) >= k else [str(i) for i in range(k)]


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
    point = _relabel(_frame(point_metrics, y, pred, s.frame).by_group, s, s.members)
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
    boot = _frame(columns, y, pred, s.frame, **settings)
    low, sd_low, sd_high, high = (_relabel(q, s, s.members) for q in boot.by_group_ci)
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
            mf = _frame(
                {measure: fn}, y[idx], pred[idx], frame, sample_params={measure: params}, **settings
            )
            value = _relabel(mf.by_group, s, members)[measure]
            low, sd_low, sd_high, high = (_relabel(q, s, members)[measure] for q in mf.by_group_ci)
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


# --- helpers --------------------------------------------------------------------------------
def _categorical(columns: dict[str, np.ndarray], order: list[str] | None = None) -> pd.DataFrame:
    """Group columns as categoricals: MetricFrame groups them faster than strings, and the
    category order is the display order (class index, quantile rank)."""
    return pd.DataFrame(
        {
            name: pd.Categorical(values, categories=order or sorted(set(values.tolist())))
            for name, values in columns.items()
        }
    )


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


def _label(key, columns: list[str], kind: str) -> str:
    key = key if isinstance(key, tuple) else (key,)
    if kind == "proxy":
        return ", ".join(str(k) for k in key)
    return ", ".join(f"{c}={k}" for c, k in zip(columns, key, strict=True))


def _members(frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    """Boolean membership mask of every non-empty group of a slicing, by label."""
    columns = list(frame.columns)
    out: dict[str, np.ndarray] = {}
    for key, rows in frame.groupby(columns, observed=True).indices.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows] = True
        out[_label(key, columns, kind)] = mask
    return out


def _relabel(table: pd.DataFrame, s: Slicing, present: dict[str, np.ndarray]) -> pd.DataFrame:
    """MetricFrame rows relabelled ``col=value, …``, empty intersections dropped, proxy slices in
    their natural order (class index, quantile rank)."""
    table = table.copy()
    table.index = [_label(k, list(s.frame.columns), s.kind) for k in table.index]
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

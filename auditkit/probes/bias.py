"""Subgroup bias: who does the model fail? Per-group rates with bootstrap intervals (fairlearn).

Groups come from the data's sensitive columns; several columns are audited one by one and as
their intersections (fairlearn's ``MetricFrame`` intersects the columns of a DataFrame). Every
number is read from a ``MetricFrame`` built on the shared clean predictions; its ``n_boot``
bootstrap gives the error bars. Without sensitive columns the probe audits PROXY slices (true
class; image brightness, contrast and ink-coverage quantiles) and says so everywhere: a proxy
slice is not a demographic. Cross-probe: per-group robust accuracy and ECE come from the
adversarial and calibration probes' per-example results in ``context.artifacts``.

Decisions:
- A disparity (accuracy, demographic parity, equalized odds) is the gap between the highest and
  the lowest group among groups with at least ``min_group_size`` examples; smaller groups are
  shown, flagged and never ranked. Its interval is ``gap ± z·√(se₁² + se₂²)``, each group's
  standard error read off the MetricFrame bootstrap, with ``z`` Bonferroni-adjusted for the
  comparisons behind the maximum (group pairs × classes × rates), so picking the extreme pair
  out of many does not manufacture significance. (``MetricFrame.difference_ci`` bootstraps
  ``max − min``, which is never below 0, so it cannot say whether a gap is real.) An interval
  that includes 0 is reported as "not significant at this sample size".
- Status: ``failed`` when, on real sensitive columns, a disparity exceeds its threshold even at
  the low end of its interval (``max_accuracy_difference``, ``max_equalized_odds_difference``,
  and ``max_demographic_parity_difference`` when set: demographic parity is reported but not
  judged by default, because it also moves with legitimate base-rate differences). ``warned``
  for the same on proxy slices or cross-probe metrics, or when groups are too small to rank.
  Otherwise ``passed``. A gap whose point estimate is above the threshold but whose interval
  reaches below it is an info finding ("not conclusive at this sample size"): with a dozen
  gaps per audit, judging point estimates (or "significant and above") flagged fair models by
  chance. Policy gates (``bias.accuracy_difference <= 0.05``) still judge the point estimate.
- Positive class: ``positive_class`` (a class index, or a class name that is not a number); by
  default 1 for binary tasks. For
  multiclass tasks without it, selection rate / TPR / FPR are computed one-vs-rest for every
  class; the disparities take the worst class (named in the details), and the per-group table
  shows the rates of the class with the largest equalized-odds gap ("class of interest").
- Proxy slices get accuracy and equalized-odds gaps but no demographic-parity gap: slices such as
  brightness quartiles differ in their class mix, so their selection rates mostly measure that
  mix, while TPR/FPR condition on the true class.
- Metric names: the DESIGN names that policies gate on (``worst_group_accuracy``,
  ``accuracy_difference``, ``equalized_odds_difference``, ``min_group_size``, the ratios, the
  cross-probe ``worst_group_robust_accuracy`` / ``worst_group_ece`` …) are demographic: they are
  computed from sensitive columns only and are None when the data has none, so a gate on them
  fails closed as "not measured" instead of judging per-class recall. Proxy slices publish the
  same aggregates as ``proxy_*`` (``proxy_worst_slice_accuracy``, ``proxy_accuracy_difference``,
  …) and their checks as ``proxy_<disparity>[slicing]``; proxy-only audits headline
  ``proxy_worst_slice_accuracy``. The ``proxy_*`` metrics appear only when proxy slices were
  audited (no sensitive columns, or ``proxy_slices="always"``); then they describe the proxy
  slices alone and never mix with the demographic numbers. ``overall_accuracy`` is not a group
  metric and is always reported.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from statistics import NormalDist
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
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import Check, Finding, ProbeResult

PROXY_NOTE = "proxy slice, not a demographic"
DEFAULT_N_BOOT = {"fast": 50, "standard": 100, "thorough": 500}
SINGLE_GROUP = (
    "every sensitive column has a single group ({columns}); a bias audit compares at least two "
    "groups: pass a column with two or more values"
)
NO_COLUMNS = (
    "the data has no sensitive columns and proxy_slices is 'never'; pass group columns "
    "(--sensitive, or group arrays in .npz/.pt) to audit groups"
)
_SD_LOW, _SD_HIGH = 0.15865525393145707, 0.8413447460685429  # ±1 standard deviation
_RATE_LABELS = {
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate",
    "false_positive_rate": "false positive rate",
}


@dataclass
class _Slicing:
    """One way of cutting the audit data into groups (a column, an intersection, a proxy)."""

    name: str
    kind: str  # "sensitive" | "proxy"
    frame: pd.DataFrame
    definition: str
    rates: bool = True  # False when slicing by the true label makes rates meaningless
    order: list[str] | None = None
    members: dict[str, np.ndarray] = field(default_factory=dict)


class BiasProbe(Probe):
    """Per-group accuracy, selection and error rates with bootstrap intervals, built on
    fairlearn's ``MetricFrame``; worst group, differences and ratios; intersections; proxy
    slices for data without sensitive columns; robust accuracy and ECE per group.

    Example:
        >>> result = BiasProbe(budget="fast", min_group_size=50).run(context)
        >>> result.metrics["accuracy_difference"], result.details["slicings"][0]["groups"]
    """

    name = "bias"
    title = "Subgroup bias"
    description = "Who does the model fail? Accuracy and error rates per group, with error bars."
    order = 80
    # DESIGN names are demographic: measured on sensitive columns only, None without them (a
    # gate on them then fails closed as "not measured"). Proxy slices publish under proxy_*.
    metrics = {
        "overall_accuracy": MetricSpec("higher", "accuracy on all audit examples"),
        "worst_group_accuracy": MetricSpec(
            "higher", "accuracy of the worst group with at least min_group_size examples"
        ),
        "accuracy_difference": MetricSpec(
            "lower", "best minus worst group accuracy (largest over columns and intersections)"
        ),
        "accuracy_ratio": MetricSpec("higher", "worst over best group accuracy (smallest)"),
        "demographic_parity_difference": MetricSpec(
            "lower", "largest gap in selection rate (share predicted positive) between groups"
        ),
        "demographic_parity_ratio": MetricSpec(
            "higher", "smallest ratio of selection rates between groups"
        ),
        "equalized_odds_difference": MetricSpec(
            "lower", "largest gap in true- or false-positive rate between groups"
        ),
        "min_group_size": MetricSpec(None, "examples in the smallest non-empty group"),
        "small_groups": MetricSpec("lower", "groups below min_group_size (flagged, not ranked)"),
        "worst_group_robust_accuracy": MetricSpec(
            "higher", "robust accuracy (adversarial probe) of the worst group"
        ),
        "robust_accuracy_difference": MetricSpec(
            "lower", "best minus worst group robust accuracy (adversarial probe's examples)"
        ),
        "worst_group_ece": MetricSpec("lower", "ECE (calibration probe) of the worst group"),
        "ece_difference": MetricSpec("lower", "largest gap in ECE between groups"),
        "proxy_worst_slice_accuracy": MetricSpec(
            "higher", f"accuracy of the worst slice with min_group_size+ examples — {PROXY_NOTE}"
        ),
        "proxy_accuracy_difference": MetricSpec(
            "lower", f"best minus worst slice accuracy (largest over slicings) — {PROXY_NOTE}"
        ),
        "proxy_accuracy_ratio": MetricSpec(
            "higher", f"worst over best slice accuracy (smallest) — {PROXY_NOTE}"
        ),
        "proxy_equalized_odds_difference": MetricSpec(
            "lower", f"largest gap in true- or false-positive rate between slices — {PROXY_NOTE}"
        ),
        "proxy_min_slice_size": MetricSpec(
            None, f"examples in the smallest non-empty slice — {PROXY_NOTE}"
        ),
        "proxy_small_slices": MetricSpec(
            "lower", f"slices below min_group_size (flagged, not ranked) — {PROXY_NOTE}"
        ),
        "proxy_worst_slice_robust_accuracy": MetricSpec(
            "higher", f"robust accuracy (adversarial probe) of the worst slice — {PROXY_NOTE}"
        ),
        "proxy_robust_accuracy_difference": MetricSpec(
            "lower", f"best minus worst slice robust accuracy — {PROXY_NOTE}"
        ),
        "proxy_worst_slice_ece": MetricSpec(
            "lower", f"ECE (calibration probe) of the worst slice — {PROXY_NOTE}"
        ),
        "proxy_ece_difference": MetricSpec(
            "lower", f"largest gap in ECE between slices — {PROXY_NOTE}"
        ),
    }
    budget_levels = {
        "fast": f"{DEFAULT_N_BOOT['fast']} bootstrap resamples for the intervals",
        "standard": f"{DEFAULT_N_BOOT['standard']} bootstrap resamples",
        "thorough": f"{DEFAULT_N_BOOT['thorough']} bootstrap resamples",
    }
    options = {
        "sensitive": None,
        "intersections": True,
        "positive_class": None,
        "min_group_size": 30,
        "n_boot": None,
        "confidence": 0.95,
        "max_accuracy_difference": 0.05,
        "max_equalized_odds_difference": 0.10,
        "max_demographic_parity_difference": None,
        "max_robust_accuracy_difference": 0.10,
        "max_ece_difference": 0.05,
        "proxy_slices": "auto",
        "proxy_quantiles": 4,
    }

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        super().__init__(budget=budget, **options)
        c = self.config
        if not isinstance(c["min_group_size"], int) or c["min_group_size"] < 1:
            raise AuditkitInputError(
                f"--set bias.min_group_size={c['min_group_size']}: must be a positive integer"
            )
        if c["n_boot"] is not None and (not isinstance(c["n_boot"], int) or c["n_boot"] < 10):
            # Fewer resamples cannot estimate a standard error; intervals would be fiction.
            raise AuditkitInputError(
                f"--set bias.n_boot={c['n_boot']}: must be an integer ≥ 10 (bootstrap resamples)"
            )
        if not 0.0 < float(c["confidence"]) < 1.0:
            raise AuditkitInputError(f"--set bias.confidence={c['confidence']}: must be in (0, 1)")
        if c["proxy_slices"] not in ("auto", "always", "never"):
            raise AuditkitInputError(
                f"--set bias.proxy_slices={c['proxy_slices']}: use auto, always or never"
            )
        if not isinstance(c["proxy_quantiles"], int) or c["proxy_quantiles"] < 2:
            raise AuditkitInputError(
                f"--set bias.proxy_quantiles={c['proxy_quantiles']}: must be an integer ≥ 2"
            )
        for key in (k for k in c if k.startswith("max_")):
            if c[key] is not None and float(c[key]) < 0:
                raise AuditkitInputError(f"--set bias.{key}={c[key]}: must be ≥ 0 (or None)")
        if isinstance(c["sensitive"], str):
            c["sensitive"] = [s for s in c["sensitive"].split(",") if s]
        self.n_boot = int(c["n_boot"] or DEFAULT_N_BOOT[budget])
        self.alpha = 1.0 - float(c["confidence"])

    # --- planning -----------------------------------------------------------------------
    def skip_reason(self, context) -> str | None:
        return super().skip_reason(context) or self._plan(context)[2]

    def _plan(self, context) -> tuple[list[_Slicing], list[Check], str | None]:
        """The slicings to audit, checks about the group columns, or why nothing can run."""
        data = context.data
        wanted = list(self.config["sensitive"] or data.groups)
        missing = [c for c in wanted if c not in data.groups]
        if missing:
            raise AuditkitInputError(
                f"--set bias.sensitive: no column {', '.join(missing)} in the data "
                f"(it has: {', '.join(data.groups) or 'no sensitive columns'})"
            )
        columns = {c: np.asarray(data.groups[c]).astype(str) for c in wanted}
        usable = [c for c in wanted if len(np.unique(columns[c])) >= 2]
        single = [c for c in wanted if c not in usable]
        checks: list[Check] = []
        if single:
            described = ", ".join(f"{c}: {columns[c][0]}" for c in single)
            if not usable:
                return [], [], SINGLE_GROUP.format(columns=described)
            checks.append(
                Check(
                    "single_group_columns",
                    "warned",
                    f"ignored columns with one group only ({described}); nothing to compare",
                    {"columns": single},
                )
            )
        slicings: list[_Slicing] = []
        for c in usable:
            slicings.append(
                _Slicing(c, "sensitive", _categorical({c: columns[c]}), f"sensitive column {c}")
            )
        if len(usable) > 1 and self.config["intersections"]:
            slicings.append(
                _Slicing(
                    " × ".join(usable),
                    "sensitive",
                    _categorical({c: columns[c] for c in usable}),
                    f"intersections of {', '.join(usable)}",
                )
            )
        mode = self.config["proxy_slices"]
        if usable:
            checks.insert(
                0,
                Check(
                    "demographic_groups",
                    "passed",
                    f"sensitive columns audited: {', '.join(usable)}",
                    {"columns": usable},
                ),
            )
        elif mode == "never":
            return [], [], NO_COLUMNS
        else:
            checks.insert(
                0,
                Check(
                    "demographic_groups",
                    "skipped",
                    "the data has no sensitive columns: audited PROXY slices instead (true "
                    "class, image statistics); a proxy slice is not a demographic",
                    {"columns": []},
                ),
            )
        if not usable or mode == "always":
            slicings.extend(self._proxy_slicings(context))
        if not slicings:
            return [], checks, "no slicing has two or more groups to compare"
        for s in slicings:
            s.members = _members(s.frame, s.kind)
        return slicings, checks, None

    def _proxy_slicings(self, context) -> list[_Slicing]:
        data = context.data
        names = _class_names(context)
        y = data.y.numpy()
        out: list[_Slicing] = []
        present = np.unique(y)
        if len(present) >= 2:
            labels = np.array([f"class {names[int(v)]}" for v in y], dtype=object)
            present_order = [f"class {names[int(v)]}" for v in present]
            out.append(
                _Slicing(
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
            q = int(self.config["proxy_quantiles"])
            for stat, values in stats.items():
                labels, order = quantile_slices(values, q, stat.replace("_", " "))
                if len(order) < 2:
                    continue
                title = f"{stat.replace('_', ' ')} (proxy)"
                out.append(
                    _Slicing(
                        title,
                        "proxy",
                        _categorical({title: labels}, order),
                        f"{explain[stat]}, cut at quantiles — {PROXY_NOTE}",
                        order=order,
                    )
                )
        return out

    # --- running ------------------------------------------------------------------------
    def run(self, context) -> ProbeResult:
        slicings, checks, skip = self._plan(context)
        if skip:
            return ProbeResult(name=self.name, status="skipped", skip_reason=skip, summary=skip)
        y = context.data.y.numpy()
        pred = context.clean_predictions.numpy()
        classes = self._classes_of_interest(context, y)
        seeds = context.rng(self.name)
        reports = [self._audit_slicing(s, y, pred, classes, seeds) for s in slicings]
        checks = checks + self._cross_probe(context, slicings, reports, seeds)
        return self._result(context, reports, checks, classes)

    def _classes_of_interest(self, context, y: np.ndarray) -> list[int]:
        k = context.adapter.num_classes
        names = _class_names(context)
        wanted = self.config["positive_class"]
        if wanted is not None:
            if isinstance(wanted, str) and not wanted.lstrip("-").isdigit():
                if wanted not in names:
                    raise AuditkitInputError(
                        f"--set bias.positive_class={wanted}: no such class "
                        f"(classes: {', '.join(names)})"
                    )
                return [names.index(wanted)]
            index = int(wanted)
            if not 0 <= index < k:
                raise AuditkitInputError(
                    f"--set bias.positive_class={wanted}: must be a class index in 0..{k - 1}"
                )
            return [index]
        if k == 2:
            return [1]
        return [int(c) for c in np.unique(y)]

    def _frame(self, metrics, y, pred, features, **kwargs):
        """A fairlearn MetricFrame (bootstrapped when ``n_boot`` is passed)."""
        from fairlearn.metrics import MetricFrame

        # Quantiles of a metric that is undefined in some resamples (a TPR without positives)
        # warn about NaN slices; the NaN itself is what we report.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return MetricFrame(
                metrics=metrics, y_true=y, y_pred=pred, sensitive_features=features, **kwargs
            )

    def _boot_settings(self, seeds: np.random.Generator) -> dict[str, Any]:
        # Quantiles: the two-sided interval for the error bars, and ±1 standard deviation
        # (15.87% / 84.13%), whose half-width is a bootstrap standard error that stays stable
        # with few resamples (extreme quantiles do not).
        return {
            "n_boot": self.n_boot,
            "ci_quantiles": [self.alpha / 2, _SD_LOW, _SD_HIGH, 1 - self.alpha / 2],
            "random_state": int(seeds.integers(0, 2**31 - 1)),
        }

    def _audit_slicing(
        self,
        s: _Slicing,
        y: np.ndarray,
        pred: np.ndarray,
        classes: list[int],
        seeds: np.random.Generator,
    ) -> dict[str, Any]:
        """Per-group numbers with intervals, and the disparities of one slicing."""
        from fairlearn.metrics import count

        min_size = int(self.config["min_group_size"])
        point_metrics: dict[str, Any] = {"count": count, "accuracy": accuracy}
        if s.rates:
            for c in classes:
                point_metrics.update(rate_metrics(c, f"@{c}"))
        point = _relabel(self._frame(point_metrics, y, pred, s.frame).by_group, s, s.members)
        rankable = [g for g in point.index if point.loc[g, "count"] >= min_size]
        small = [g for g in point.index if point.loc[g, "count"] < min_size]

        # What the disparities compare: accuracy, and (with rates) the class and rate with the
        # widest selection-rate and TPR/FPR gaps among rankable groups.
        table = point.loc[rankable]
        compared: dict[str, tuple[str, int | None, int, float | None]] = {}
        if len(table["accuracy"].dropna()) >= 2:
            compared["accuracy_difference"] = (
                "accuracy",
                None,
                1,
                self.config["max_accuracy_difference"],
            )
        focus = classes[0] if s.rates else None
        if s.rates and len(rankable) >= 2:
            # Proxy slices differ in class mix, so their selection rates mostly measure that
            # mix; TPR/FPR condition on the true class and stay meaningful.
            dp = _widest(table, classes, ("selection_rate",)) if s.kind == "sensitive" else None
            eo = _widest(table, classes, ("true_positive_rate", "false_positive_rate"))
            if dp is not None:
                compared["demographic_parity_difference"] = (
                    "selection_rate",
                    dp["class"],
                    len(classes),
                    self.config["max_demographic_parity_difference"],
                )
            if eo is not None:
                focus = eo["class"]
                compared["equalized_odds_difference"] = (
                    eo["rate"],
                    eo["class"],
                    2 * len(classes),
                    self.config["max_equalized_odds_difference"],
                )

        # One bootstrapped frame: accuracy for the error bars, plus the compared rates.
        columns = {"accuracy": accuracy}
        for measure, c, _, _ in compared.values():
            if c is not None:
                columns[f"{measure}@{c}"] = partial(RATE_FUNCTIONS[measure], positive=c)
        settings = self._boot_settings(seeds)
        boot = self._frame(columns, y, pred, s.frame, **settings)
        low, sd_low, sd_high, high = (_relabel(q, s, s.members) for q in boot.by_group_ci)
        se = (sd_high - sd_low) / 2.0

        disparities: dict[str, dict[str, Any]] = {}
        for key, (measure, c, per_pair, threshold) in compared.items():
            column = measure if c is None else f"{measure}@{c}"
            values = table[column].dropna()
            disparities[key] = self._disparity(
                values,
                se[column],
                comparisons=_pairs(len(values)) * per_pair,
                measure=measure,
                threshold=threshold,
                positive=c,
            )
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
            "disparities": disparities,
            "ratios": ratios,
        }

    def _disparity(
        self,
        values: pd.Series,
        standard_errors: pd.Series,
        *,
        comparisons: int,
        measure: str,
        threshold: float | None,
        positive: int | None = None,
    ) -> dict[str, Any]:
        """Highest-minus-lowest group value and its interval.

        The interval is ``gap ± z · √(se_high² + se_low²)`` with each group's standard error
        from the MetricFrame bootstrap (disjoint groups resample nearly independently) and
        ``z`` Bonferroni-adjusted for ``comparisons``: picking the extreme pair out of many
        must not manufacture significance.
        """
        ordered = values.sort_values(kind="stable")
        lower, higher = str(ordered.index[0]), str(ordered.index[-1])
        gap = float(ordered.iloc[-1] - ordered.iloc[0])
        se = math.sqrt(float(standard_errors[higher]) ** 2 + float(standard_errors[lower]) ** 2)
        z = float(NormalDist().inv_cdf(1 - self.alpha / (2 * comparisons)))
        ci = _ci(gap - z * se, gap + z * se)
        significant = ci[0] is not None and ci[0] > 0
        limit = None if threshold is None else float(threshold)
        return {
            "value": gap,
            "measure": measure,
            "positive_class": positive,
            "higher_group": higher,
            "higher": float(ordered.iloc[-1]),
            "lower_group": lower,
            "lower": float(ordered.iloc[0]),
            "standard_error": _num(se),
            "ci": ci,
            "confidence": 1 - self.alpha,
            "comparisons": comparisons,
            "significant": significant,
            "threshold": limit,
            "above_threshold": limit is not None and gap > limit,
            # Judged on the interval: above the threshold even at its low end.
            "exceeds": limit is not None and ci[0] is not None and ci[0] > limit,
            "groups_compared": len(values),
        }

    # --- cross-probe --------------------------------------------------------------------
    def _cross_probe(self, context, slicings, reports, seeds) -> list[Check]:
        """Robust accuracy and ECE per group from the other probes' per-example results."""
        n = len(context.data)
        y = context.data.y.numpy()
        pred = context.clean_predictions.numpy()
        min_size = int(self.config["min_group_size"])
        checks: list[Check] = []
        for probe, keys, measure, fn, threshold in (
            (
                "adversarial",
                ("robust_correct",),
                "robust_accuracy",
                mean_of,
                "max_robust_accuracy_difference",
            ),
            (
                "calibration",
                ("confidence", "correct"),
                "ece",
                calibration_error,
                "max_ece_difference",
            ),
        ):
            if probe not in context.artifacts:
                continue
            parsed = _per_example(context.artifacts[probe], keys, n)
            if isinstance(parsed, str):
                checks.append(
                    Check(
                        f"{measure}_per_group",
                        "warned",
                        f"{probe} results unusable ({parsed}); {measure} per group skipped",
                    )
                )
                continue
            idx = parsed["indices"]
            if measure == "robust_accuracy":
                params = {"values": parsed["robust_correct"].astype(np.float64)}
            else:
                params = {k: parsed[k].astype(np.float64) for k in ("confidence", "correct")}
            for s, report in zip(slicings, reports, strict=True):
                members = {g: m[idx] for g, m in s.members.items() if m[idx].any()}
                frame = s.frame.iloc[idx].reset_index(drop=True)
                settings = self._boot_settings(seeds)
                mf = self._frame(
                    {measure: fn},
                    y[idx],
                    pred[idx],
                    frame,
                    sample_params={measure: params},
                    **settings,
                )
                value = _relabel(mf.by_group, s, members)[measure]
                low, sd_low, sd_high, high = (
                    _relabel(q, s, members)[measure] for q in mf.by_group_ci
                )
                counts = pd.Series({g: int(m.sum()) for g, m in members.items()})
                by_record = {r["group"]: r for r in report["groups"]}
                for g in value.index:
                    record = by_record[g]
                    record[measure] = _num(value[g])
                    record[f"{measure}_ci"] = _ci(low[g], high[g])
                    record[f"{measure}_count"] = int(counts[g])
                rankable = value[counts.reindex(value.index) >= min_size].dropna()
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
                    report["disparities"][f"{measure}_difference"] = self._disparity(
                        rankable,
                        (sd_high - sd_low) / 2.0,
                        comparisons=_pairs(len(rankable)),
                        measure=measure,
                        threshold=self.config[threshold],
                    )
                report.setdefault("cross_probe", {})[measure] = summary
        return checks

    # --- assembling ---------------------------------------------------------------------
    def _result(self, context, reports, checks, classes) -> ProbeResult:
        y = context.data.y.numpy()
        pred = context.clean_predictions.numpy()
        names = _class_names(context)
        proxy_only = all(r["kind"] == "proxy" for r in reports)
        conf = f"{1 - self.alpha:.0%}"
        # Never present a proxy as a demographic: the DESIGN names (what policy gates read) come
        # from sensitive columns only and stay None without them; proxy slices publish the same
        # aggregates under proxy_* names, and only when proxy slices were audited.
        sensitive = [r for r in reports if r["kind"] == "sensitive"]
        proxies = [r for r in reports if r["kind"] == "proxy"]
        cross = [
            m
            for m in ("robust_accuracy", "ece")
            if any(m in r.get("cross_probe", {}) for r in reports)
        ]
        metrics: dict[str, float | None] = {"overall_accuracy": accuracy(y, pred)}
        metrics.update(_aggregates(sensitive, cross))
        if proxies:
            proxy = _aggregates(proxies, cross)
            metrics.update({_PROXY_NAMES[k]: proxy[k] for k in _PROXY_NAMES if k in proxy})
        headline = sensitive or proxies

        findings: list[Finding] = []
        for r in reports:
            for key, d in r["disparities"].items():
                status = _disparity_status(key, d, r["kind"])
                prefix = "proxy_" if r["kind"] == "proxy" else ""
                checks.append(
                    Check(
                        f"{prefix}{key}[{r['name']}]",
                        status,
                        _disparity_text(key, d, r, names, conf),
                        {k: d[k] for k in ("value", "ci", "significant", "threshold", "exceeds")},
                    )
                )
                finding = _disparity_finding(key, d, r, names, conf, status)
                if finding is not None:
                    findings.append(finding)
        small = [
            (r["name"], g["group"], g["count"]) for r in reports for g in r["groups"] if g["small"]
        ]
        min_size = int(self.config["min_group_size"])
        checks.append(
            Check(
                "min_group_size",
                "warned" if small else "passed",
                (
                    f"{len(small)} group(s) below {min_size} examples, flagged and not ranked: "
                    + "; ".join(f"{g} (n={n})" for _, g, n in small[:8])
                    + (" …" if len(small) > 8 else "")
                )
                if small
                else f"every group has at least {min_size} examples",
                {"min_group_size": min_size, "small_groups": [g for _, g, _ in small]},
            )
        )
        if small:
            findings.append(
                Finding(
                    "warning",
                    f"{len(small)} group(s) have fewer than {min_size} examples and are not "
                    f"ranked: {', '.join(g for _, g, _ in small[:5])}"
                    + (" …" if len(small) > 5 else ""),
                    why="with so few examples a group's accuracy is too noisy to compare; a "
                    "model can fail a small group badly without it showing in the averages",
                    action="collect more examples of these groups, or merge categories, "
                    "then audit again",
                )
            )
        if proxy_only:
            findings.append(
                Finding(
                    "info",
                    "no sensitive columns: the groups here are PROXY slices (true class, image "
                    "statistics), not demographics",
                    why="a slice such as 'dim images' can hint at who a model fails, but it is "
                    "not a person's group and says nothing about fairness to people",
                    action="pass sensitive columns (--sensitive for tables, group arrays in "
                    ".npz/.pt, --groups-file for image folders) to audit real groups",
                )
            )

        severity = {"critical": 0, "warning": 1, "info": 2}
        findings.sort(key=lambda f: severity[f.severity])
        statuses = {c.status for c in checks}
        status = (
            "failed" if "failed" in statuses else "warned" if "warned" in statuses else "passed"
        )
        return ProbeResult(
            name=self.name,
            status=status,
            metrics=metrics,
            checks=checks,
            summary=_summary(headline, proxy_only, min_size),
            headline="proxy_worst_slice_accuracy" if proxy_only else "worst_group_accuracy",
            findings=findings,
            figures=_figures(
                reports, metrics["overall_accuracy"], names, conf, self.n_boot, min_size
            ),
            details={
                "slice_kind": "proxy" if proxy_only else "sensitive",
                "note": (
                    f"PROXY slices ({PROXY_NOTE}): the data has no sensitive columns"
                    if proxy_only
                    else "groups from the data's sensitive columns and their intersections"
                ),
                "classes_of_interest": [names[c] for c in classes],
                "positive_class": names[classes[0]] if len(classes) == 1 else None,
                "settings": {
                    "n_boot": self.n_boot,
                    "confidence": 1 - self.alpha,
                    "min_group_size": min_size,
                    "thresholds": {k: v for k, v in self.config.items() if k.startswith("max_")},
                },
                "interval_method": (
                    "per-group intervals: fairlearn MetricFrame bootstrap quantiles "
                    f"({self.n_boot} resamples); disparity intervals: gap ± z·√(se₁² + se₂²) "
                    "with bootstrap standard errors of the highest and lowest group and z "
                    "Bonferroni-adjusted for the comparisons behind the maximum; groups below "
                    "min_group_size are not ranked"
                ),
                "slicings": reports,
            },
        )


# DESIGN (demographic) aggregate → its proxy-slice name. No demographic parity for proxies:
# slices differ in class mix, so their selection rates are not compared (see the module notes).
_PROXY_NAMES = {
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


def _aggregates(reports: list[dict[str, Any]], cross: list[str]) -> dict[str, float | None]:
    """Worst group, largest gaps, smallest ratios and sizes over ``reports`` (all None when
    there are none), under the DESIGN names; cross-probe names only for the probes in
    ``cross``."""

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


def _class_names(context) -> list[str]:
    names = context.data.class_names
    k = context.adapter.num_classes
    return list(names) if names and len(names) >= k else [str(i) for i in range(k)]


def _pairs(n: int) -> int:
    return max(1, n * (n - 1) // 2)


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


def _relabel(table: pd.DataFrame, s: _Slicing, present: dict[str, np.ndarray]) -> pd.DataFrame:
    """MetricFrame rows relabelled ``col=value, …``, empty intersections dropped, proxy slices
    in their natural order (class index, quantile rank)."""
    table = table.copy()
    table.index = [_label(k, list(s.frame.columns), s.kind) for k in table.index]
    keep = [g for g in (s.order or table.index) if g in present and g in table.index]
    return table.loc[keep]


def _values_of(label: str, s: _Slicing) -> dict[str, str]:
    first = int(np.argmax(s.members[label]))
    return {c: str(s.frame[c].iloc[first]) for c in s.frame.columns}


def _per_example(artifact: Any, keys: tuple[str, ...], n: int) -> dict[str, np.ndarray] | str:
    """Validate another probe's per-example arrays: ``indices`` into the audit data plus
    ``keys`` aligned with them. A string says what is wrong."""
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


_CORE = ("accuracy_difference", "equalized_odds_difference", "demographic_parity_difference")


def _disparity_status(key: str, d: dict[str, Any], kind: str) -> str:
    if not (d["significant"] and d["exceeds"]):
        return "passed"
    return "failed" if kind == "sensitive" and key in _CORE else "warned"


def _measure_name(d: dict[str, Any], names: list[str]) -> str:
    measure = d["measure"]
    if measure in _RATE_LABELS:
        text = _RATE_LABELS[measure]
        if d.get("positive_class") is not None:
            text += f" (class {names[d['positive_class']]})"
        return text
    return {"accuracy": "accuracy", "robust_accuracy": "robust accuracy", "ece": "ECE"}[measure]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _interval(d: dict[str, Any], conf: str) -> str:
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


def _disparity_text(key, d, report, names, conf) -> str:
    proxy = f" ({PROXY_NOTE})" if report["kind"] == "proxy" else ""
    verdict = "significant" if d["significant"] else "not significant at this sample size"
    limit = _threshold_text(d)
    return (
        f"{report['name']}{proxy}: {_measure_name(d, names)} {_pct(d['higher'])} for "
        f"{d['higher_group']} vs {_pct(d['lower'])} for {d['lower_group']}: gap "
        f"{d['value']:.1%} ({_interval(d, conf)}; {verdict}){limit}"
    )


def _disparity_finding(key, d, report, names, conf, status) -> Finding | None:
    proxy = report["kind"] == "proxy"
    tag = f" — {PROXY_NOTE}" if proxy else ""
    if status == "passed":
        if not d["above_threshold"]:
            return None
        if d["significant"]:
            title = "is above the threshold, but not conclusively at this sample size"
            why = (
                f"its {_interval(d, conf)} excludes 0 but reaches below the "
                f"{d['threshold']:.1%} threshold"
            )
        else:
            title = "is not significant at this sample size"
            why = (
                f"its {_interval(d, conf)} includes 0: the groups cannot be told apart with "
                "this many examples"
            )
        return Finding(
            "info",
            f"{report['name']}: {_measure_name(d, names)} gap of {d['value']:.1%} between "
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
        "look at the examples in this slice; if real groups matter, audit them with "
        "sensitive columns"
        if proxy
        else "check the training labels of this group for historical bias and the features "
        "for proxies of the group; rebalance or reweight, or post-process (fairlearn's "
        "ThresholdOptimizer), then audit again"
    )
    return Finding(
        "critical" if status == "failed" else "warning",
        f"{worse}: {_measure_name(d, names)} {_pct(worse_value)} vs {_pct(better_value)} for "
        f"{better} (gap {d['value']:.1%}, {_interval(d, conf)}){tag}",
        why=why,
        action=action,
    )


def _summary(headline: list[dict[str, Any]], proxy_only: bool, min_size: int) -> str:
    prefix = "PROXY slices, not demographics (no sensitive columns): " if proxy_only else ""
    scored = [r for r in headline if "accuracy_difference" in r["disparities"]]
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


def _figures(reports, overall, names, conf, n_boot, min_size) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    for r in reports:
        proxy = r["kind"] == "proxy"
        suffix = f" — {PROXY_NOTE}" if proxy else ""
        slug = "".join(ch if ch.isalnum() else "-" for ch in r["name"]).strip("-")
        caption = (
            f"Whiskers: {conf} bootstrap interval (fairlearn MetricFrame, {n_boot} resamples); "
            f"line: overall accuracy. Flagged bars have fewer than {min_size} examples and are "
            "not ranked."
        )
        figures.append(
            {
                "kind": "bar",
                "id": f"bias-accuracy-{slug}",
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
        figures.append(_table(r, names, conf, suffix))
    for measure, label in (("robust_accuracy", "Robust accuracy"), ("ece", "ECE")):
        candidates = [r for r in reports if f"{measure}_difference" in r["disparities"]]
        if not candidates:
            continue
        r = max(candidates, key=lambda r: r["disparities"][f"{measure}_difference"]["value"])
        proxy = r["kind"] == "proxy"
        cross = r["cross_probe"][measure]
        eps = f" at eps {cross['eps']}" if cross.get("eps") is not None else ""
        figures.append(
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
    return figures


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
            row += [fmt(g[k]) for k in (*_RATE_LABELS, "false_negative_rate")]
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
        "id": "bias-table-"
        + "".join(ch if ch.isalnum() else "-" for ch in report["name"]).strip("-"),
        "title": f"Per-group metrics: {report['name']}{suffix}",
        "columns": columns,
        "rows": rows,
        "caption": caption,
    }

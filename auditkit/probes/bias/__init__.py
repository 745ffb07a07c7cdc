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

The package has the same rooms as every probe: ``options`` (``BiasOptions``), ``measure`` (reads
per-group numbers off MetricFrame and returns a ``BiasMeasurement``; ``_slicing`` cuts the data
into groups), ``judge`` (gaps, checks, findings and metrics from the measurement alone),
``present`` (summary, figures, details) and ``probe`` (the class that wires them).
"""

from auditkit._lazy import lazy_exports

# Imported on first use: ``bias.options`` stays importable without torch (the CLI
# checks --set values before it loads anything heavy).
_EXPORTS = {
    "PROXY_NOTE": "_slicing",
    "BiasMeasurement": "measure",
    "BiasOptions": "options",
    "BiasProbe": "probe",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

"""Performance: clean accuracy, per-class accuracy and the confusion matrix.

The same rooms as every probe: ``options``, ``measure`` (per-class counts from the shared clean
predictions, plus what the adapter noticed), ``judge`` (checks, findings, metrics from that
measurement alone), ``present`` (summary, figures, details) and ``probe`` (the wiring).
"""

from auditkit.probes.performance.measure import PerformanceMeasurement
from auditkit.probes.performance.options import PerformanceOptions
from auditkit.probes.performance.probe import PerformanceProbe

__all__ = ["PerformanceMeasurement", "PerformanceOptions", "PerformanceProbe"]

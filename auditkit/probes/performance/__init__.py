"""Performance: clean accuracy, per-class accuracy and the confusion matrix.

The same rooms as every probe: ``options``, ``measure`` (per-class counts from the shared clean
predictions, plus what the adapter noticed), ``judge`` (checks, findings, metrics from that
measurement alone), ``present`` (summary, figures, details) and ``probe`` (the wiring).
"""

from auditkit._lazy import lazy_exports

# Imported on first use: ``performance.options`` stays importable without torch (the CLI
# checks --set values before it loads anything heavy).
_EXPORTS = {
    "PerformanceMeasurement": "measure",
    "PerformanceOptions": "options",
    "PerformanceProbe": "probe",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

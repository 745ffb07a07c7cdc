"""Calibration and uncertainty: does the model know what it doesn't know?

Calibration follows Guo et al. (2017): ECE/MCE over equal-width confidence bins (plus
equal-mass and classwise ECE), Brier score, NLL, and temperature scaling fitted by NLL on the
``calibration`` split and judged on the ``evaluation`` split. Uncertainty splits predictive
entropy into aleatoric and epistemic parts from MC dropout or test-time augmentation;
out-of-distribution detection uses the maximum softmax probability (Hendrycks & Gimpel 2017);
selective prediction is summarised by the risk–coverage curve and its area (AURC).

The same rooms as every probe: ``options``, ``measure`` (runs the model: confidences, the
temperature fit, uncertainty samples, OOD scores), ``judge`` (checks, findings, metrics from
that measurement alone), ``present`` (summary, figures, details) and ``probe`` (the wiring).
"""

from auditkit._lazy import lazy_exports

# Imported on first use: ``calibration.options`` stays importable without torch (the CLI
# checks --set values before it loads anything heavy).
_EXPORTS = {
    "CalibrationMeasurement": "measure",
    "CalibrationOptions": "options",
    "CalibrationProbe": "probe",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

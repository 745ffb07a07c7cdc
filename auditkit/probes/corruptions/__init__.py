"""Corruption robustness: accuracy under common corruptions at five severities.

Hendrycks & Dietterich (2019) measure robustness to the corruptions inputs meet in practice
(noise, blur, weather, compression) at five severities, summarised by the mean corruption error
(mCE) against a reference model. Here the images are corrupted with
``torchvision.transforms.v2`` inside the adapter's input box, with levels calibrated for the
input's size; tables get per-column noise, missing values and category swaps. Calibration under
shift (ECE per severity) asks whether confidence falls when accuracy does.

The same rooms as every probe: ``options``, ``catalog`` / ``tabular`` (the corruptions),
``measure`` (runs the model), ``judge`` (checks, findings, metrics), ``present`` (summary,
figures, details), ``sizing`` and ``probe`` (the wiring); ``baseline`` reads a reference
audit.json.
"""

from auditkit.probes.corruptions.measure import CorruptionsMeasurement
from auditkit.probes.corruptions.options import CorruptionsOptions
from auditkit.probes.corruptions.probe import CorruptionsProbe

__all__ = ["CorruptionsMeasurement", "CorruptionsOptions", "CorruptionsProbe"]

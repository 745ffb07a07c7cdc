"""auditkit-example: a complete small probe, accuracy under random input noise.

The package is one probe with the same rooms as auditkit's built-in probes:

- ``options``: the option schema (``--set noise_robustness.KEY=VALUE``),
- ``measure``: runs the model on noisy copies, returns a ``NoiseMeasurement`` (plain data),
- ``judge``: metrics, checks and findings from the measurement alone (no model),
- ``present``: summary, figures as data, details,
- ``probe``: the ``NoiseRobustnessProbe`` class wiring them,

plus ``templates/noise_robustness.html.j2``, the probe's own section of the HTML report.
"""

from auditkit_example.options import NoiseOptions
from auditkit_example.probe import NoiseRobustnessProbe

__all__ = ["NoiseOptions", "NoiseRobustnessProbe"]

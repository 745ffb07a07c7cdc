"""Memorization capacity: the random-label test (Zhang et al., 2017).

"Understanding deep learning requires rethinking generalization" showed that standard networks
reach ~100% training accuracy on CIFAR-10 when every label is replaced at random, that held-out
accuracy falls toward chance as label corruption grows, and that fitting random labels takes only
a small constant factor longer than fitting the true ones. Training accuracy alone therefore says
nothing about generalization.

This probe runs that test on the user's own architecture: a freshly re-initialized copy (see
``auditkit.reinit``) is trained, through the same normalization the audit uses, on a seeded
subset of the audit data whose labels are replaced at random with probability p, and scored on
the rest of the audit data against the true labels. The audited model is never modified.

The probe is a package with the same rooms as every probe: ``options``, ``measure`` (trains the
fresh copies, returns a ``MemorizationMeasurement``), ``judge`` (metrics, checks, verdict and
findings from the measurement alone), ``present`` (summary, figures, details) and ``probe``.
"""

from auditkit._lazy import lazy_exports

# Imported on first use: ``memorization.options`` stays importable without torch (the CLI
# checks --set values before it loads anything heavy).
_EXPORTS = {
    "INCONCLUSIVE": "judge",
    "VERDICT_CANNOT": "judge",
    "VERDICT_MEMORIZES": "judge",
    "LevelRun": "measure",
    "corrupt_labels": "measure",
    "MemorizationOptions": "options",
    "MemorizationProbe": "probe",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

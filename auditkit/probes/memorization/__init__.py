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

from auditkit.probes.memorization.judge import INCONCLUSIVE, VERDICT_CANNOT, VERDICT_MEMORIZES
from auditkit.probes.memorization.measure import LevelRun, corrupt_labels
from auditkit.probes.memorization.options import MemorizationOptions
from auditkit.probes.memorization.probe import MemorizationProbe

__all__ = [
    "INCONCLUSIVE",
    "VERDICT_CANNOT",
    "VERDICT_MEMORIZES",
    "LevelRun",
    "MemorizationOptions",
    "MemorizationProbe",
    "corrupt_labels",
]

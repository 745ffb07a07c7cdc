"""auditkit: audit trained models for robustness, calibration, subgroup bias and memorization.

Example:
    >>> import auditkit
    >>> result = auditkit.scan("model.pt2", "digits", budget="fast")
    >>> result.metrics["adversarial.robust_accuracy"]
"""

from auditkit._version import __version__
from auditkit.adapters import CallableAdapter, ModelAdapter, TorchModelAdapter
from auditkit.api import scan
from auditkit.data import AuditData, load_data
from auditkit.errors import AuditkitError, AuditkitInputError
from auditkit.loading import ModelMetadata, load_model, save_model
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import AuditResult, Check, Finding, GateResult, ProbeResult

__all__ = [
    "AuditData",
    "AuditResult",
    "AuditkitError",
    "AuditkitInputError",
    "CallableAdapter",
    "Check",
    "Finding",
    "GateResult",
    "MetricSpec",
    "ModelAdapter",
    "ModelMetadata",
    "Probe",
    "ProbeResult",
    "TorchModelAdapter",
    "__version__",
    "load_data",
    "load_model",
    "save_model",
    "scan",
]

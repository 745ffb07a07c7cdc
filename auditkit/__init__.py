"""auditkit: audit trained models for robustness, calibration, subgroup bias and memorization.

Example:
    >>> import auditkit
    >>> result = auditkit.scan("model.pt2", "digits", budget="fast")
    >>> result.metrics["adversarial.robust_accuracy"]
"""

from auditkit import _moved
from auditkit._version import __version__
from auditkit.adapters import CallableAdapter, ModelAdapter, TorchModelAdapter
from auditkit.api import scan
from auditkit.data import AuditData, load_data
from auditkit.errors import AuditkitError, AuditkitInputError
from auditkit.loading import ModelMetadata, load_model, save_model
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import AuditResult, Check, Finding, GateResult, ProbeResult

_moved.install()  # auditkit.safety, auditkit.archfile, ...: documented paths of moved modules


def write_outputs(result: AuditResult, out_dir):  # noqa: ANN201 - documented in auditkit.outputs
    """Write audit.json, report.html, junit.xml and summary.md (see ``auditkit.outputs``)."""
    from auditkit.outputs import write_outputs as write

    return write(result, out_dir)


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
    "write_outputs",
]

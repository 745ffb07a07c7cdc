"""auditkit: audit trained models for robustness, calibration, subgroup bias and memorization.

Example:
    >>> import auditkit
    >>> result = auditkit.scan("model.pt2", "digits", budget="fast")
    >>> result.metrics["adversarial.robust_accuracy"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from auditkit import _moved
from auditkit._version import __version__

# Public names and the module each lives in. They are imported on first use, not here, so that
# ``auditkit --version``, ``--help`` and flag errors do not pay for importing torch.
_LAZY = {
    "CallableAdapter": "auditkit.adapters", "ModelAdapter": "auditkit.adapters",
    "TorchModelAdapter": "auditkit.adapters", "scan": "auditkit.api",
    "AuditData": "auditkit.data", "load_data": "auditkit.data",
    "AuditkitError": "auditkit.errors", "AuditkitInputError": "auditkit.errors",
    "ModelMetadata": "auditkit.loading", "load_model": "auditkit.loading",
    "save_model": "auditkit.loading", "MetricSpec": "auditkit.probes.base",
    "Probe": "auditkit.probes.base", "AuditResult": "auditkit.results",
    "Check": "auditkit.results", "Finding": "auditkit.results", "GateResult": "auditkit.results",
    "ProbeResult": "auditkit.results",
}

if TYPE_CHECKING:
    from auditkit.adapters import CallableAdapter, ModelAdapter, TorchModelAdapter
    from auditkit.api import scan
    from auditkit.data import AuditData, load_data
    from auditkit.errors import AuditkitError, AuditkitInputError
    from auditkit.loading import ModelMetadata, load_model, save_model
    from auditkit.probes.base import MetricSpec, Probe
    from auditkit.results import AuditResult, Check, Finding, GateResult, ProbeResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'auditkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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

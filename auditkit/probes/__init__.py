"""Built-in probes. They are discovered through the ``auditkit.probes`` entry points."""

from auditkit.probes.base import BUDGETS, MetricSpec, Probe

__all__ = ["BUDGETS", "MetricSpec", "Probe"]

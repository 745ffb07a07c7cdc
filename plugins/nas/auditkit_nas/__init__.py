"""auditkit-nas: architecture search whose reward is the audit (``auditkit generate nas``)."""

__version__ = "0.1.0"

"""Audit data: built-in sets (no downloads), user files, deterministic splits."""

from auditkit.data.core import AuditData, make_splits
from auditkit.data.loaders import builtin_datasets, from_dataloader, from_tensors, load_data

__all__ = [
    "AuditData",
    "builtin_datasets",
    "from_dataloader",
    "from_tensors",
    "load_data",
    "make_splits",
]

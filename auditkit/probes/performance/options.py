"""Options of the performance probe: none; it reads the shared clean predictions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PerformanceOptions:
    """Nothing to set: the same work at every budget."""

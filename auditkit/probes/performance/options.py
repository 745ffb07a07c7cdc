"""Options of the performance probe: none (interim dict until auditkit.options lands)."""

from __future__ import annotations

from typing import Any

OPTIONS: dict[str, Any] = {}

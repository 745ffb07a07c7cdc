"""One count of gates held and checks passed, read by every output.

summary.md once said "1 of 4 gates hold" in its verdict line and "Gates: 2 of 4 hold" under it:
one count treated a failed warn-severity gate as holding, the other did not. Each renderer
counting on its own is how that happens, so the console, summary.md, junit.xml, the report and
audit.json all call ``audit_counts`` and print ``counts_text``.

A gate *holds* when its rule is met, whatever its severity (a failed warn-only gate does not
hold; it just does not fail the audit). A check *passed* when its status is ``passed``; skipped
(not applicable) checks are counted apart and are not in the denominator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CHECK_STATUSES = ("passed", "warned", "failed", "skipped")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def gate_counts(gates: Sequence[Any]) -> tuple[int, int]:
    """``(held, total)``: gates whose rule is met, of all gates (``GateResult`` or dicts)."""
    return sum(bool(_get(g, "passed")) for g in gates), len(gates)


def check_counts(checks: Sequence[Any]) -> dict[str, int]:
    """Checks per status, and ``applicable`` (every check not skipped)."""
    counts = dict.fromkeys(CHECK_STATUSES, 0)
    for check in checks:
        status = str(_get(check, "status"))
        counts[status] = counts.get(status, 0) + 1
    counts["applicable"] = len(checks) - counts["skipped"]
    return counts


def audit_counts(probes: Mapping[str, Any], gates: Sequence[Any]) -> dict[str, int]:
    """Gates held of total, and checks by status over every probe."""
    held, total = gate_counts(gates)
    checks = [c for p in probes.values() for c in (_get(p, "checks") or [])]
    return {"gates_held": held, "gates_total": total,
            **{f"checks_{k}": v for k, v in check_counts(checks).items()}}


def counts_text(counts: Mapping[str, int]) -> str:
    """``2 of 4 gates hold; 17 of 19 applicable checks passed (3 not applicable)``."""
    parts = []
    if counts["gates_total"]:
        parts.append(f"{counts['gates_held']} of {counts['gates_total']} gates hold")
    parts.append(
        f"{counts['checks_passed']} of {counts['checks_applicable']} applicable checks passed"
        + (f" ({counts['checks_skipped']} not applicable)" if counts["checks_skipped"] else "")
    )
    return "; ".join(parts)

"""Objectives are audit.json metric names; their better side comes from the probes' MetricSpec."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditkit.errors import AuditkitInputError


@dataclass(frozen=True)
class Objective:
    """One metric the search optimizes: ``probe.metric`` and which way is better."""

    probe: str
    metric: str
    direction: str  # "higher" | "lower"

    @property
    def name(self) -> str:
        return f"{self.probe}.{self.metric}"

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "higher" else "minimize"

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "higher" else -1.0

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "probe": self.probe, "metric": self.metric, "direction": self.direction}


def probe_metrics() -> dict[str, dict[str, Any]]:
    """``{probe: {metric: MetricSpec}}`` of every installed probe that loads, in run order."""
    from auditkit.registry import discover_probes

    return {
        name: dict(getattr(entry.obj, "metrics", {}) or {})
        for name, entry in discover_probes().items()
        if entry.loaded
    }


def parse_objectives(
    text: str | Sequence[str], catalogue: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Objective]:
    """Resolve ``accuracy,adversarial.robust_accuracy,calibration.ece`` into objectives.

    A bare metric name that several probes report goes to a probe another objective already
    needs (so ``accuracy`` with ``calibration.ece`` costs no extra probe), else to the first in
    run order.
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise AuditkitInputError("--objectives: name at least one audit.json metric, e.g. accuracy")
    catalogue = probe_metrics() if catalogue is None else catalogue
    known = ", ".join(f"{p}.{m}" for p, ms in catalogue.items() for m, s in ms.items() if _direction(s))
    qualified = {n.split(".", 1)[0] for n in names if "." in n}
    objectives: list[Objective] = []
    for name in names:
        if "." in name:
            probe, metric = name.split(".", 1)
            owners = [probe] if metric in catalogue.get(probe, {}) else []
        else:
            metric = name
            owners = [p for p, ms in catalogue.items() if metric in ms]
            owners = [p for p in owners if p in qualified] or owners[:1]
        if not owners:
            raise AuditkitInputError(f"--objectives {name}: no installed probe reports it; known: {known}")
        direction = _direction(catalogue[owners[0]][metric])
        if direction is None:
            raise AuditkitInputError(
                f"--objectives {name}: {owners[0]}.{metric} has no better side, so it cannot be "
                f"optimized; known: {known}"
            )
        objective = Objective(owners[0], metric, direction)
        if objective in objectives:
            raise AuditkitInputError(f"--objectives {name}: named twice")
        objectives.append(objective)
    return objectives


def _direction(spec: Any) -> str | None:
    direction = getattr(spec, "direction", None)
    if direction is None and isinstance(spec, Mapping):
        direction = spec.get("direction")
    return direction if direction in ("higher", "lower") else None


def scalarize(values: Sequence[float], objectives: Sequence[Objective]) -> float:
    """The controller's reward: the objectives summed, each signed so that higher is better."""
    return float(sum(o.sign * float(v) for o, v in zip(objectives, values, strict=True)))

"""nas.json: the summary of a study (every trial once, the Pareto front, the reward curve).

Below both ``search`` (which runs trials) and ``report`` (which renders them): each reads it,
neither needs the other for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auditkit_nas.objectives import Objective, scalarize

NAS_SCHEMA_VERSION = "1.0"


def trial_state(trial: Any) -> str:
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.FAIL:
        return "interrupted" if trial.user_attrs.get("interrupted") else "failed"
    return trial.state.name.lower()


def summarize(study: Any, objectives: Sequence[Objective], settings: dict[str, Any]) -> dict[str, Any]:
    """The nas.json document of a study: every trial once, the Pareto front as trial numbers."""
    from auditkit_nas.controller import moving_average

    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        values = t.values if t.values is not None and len(t.values) == len(objectives) else None
        trials.append({
            "number": t.number,
            "state": trial_state(t),
            "architecture": t.user_attrs.get("architecture"),
            "decisions": dict(t.params),
            "parameters": t.user_attrs.get("parameters"),
            "metrics": {o.name: v for o, v in zip(objectives, values, strict=True)} if values else {},
            "reward": scalarize(values, objectives) if values else None,
            "seconds": t.user_attrs.get("seconds"),
            "error": t.user_attrs.get("error"),
            "worker": t.user_attrs.get("worker"),
        })
    front = sorted(t.number for t in study.best_trials) if trials else []
    complete = [t for t in trials if t["state"] == "complete"]
    rewards = [t["reward"] for t in complete]
    chosen = max(
        (t for t in complete if t["number"] in front), key=lambda t: (t["reward"], -t["number"]),
        default=None,
    )
    return {
        "schema_version": NAS_SCHEMA_VERSION,
        "settings": settings,
        "objectives": [o.to_dict() for o in objectives],
        "trials": trials,
        "pareto_front": front,
        "chosen": chosen["number"] if chosen else None,
        "reward": {
            "definition": "sum of the objectives, each signed so that higher is better",
            "trials": [t["number"] for t in complete],
            "values": rewards,
            "moving_average": moving_average(rewards, 0.8),
        },
        "counts": {
            state: sum(1 for t in trials if t["state"] == state)
            for state in ("complete", "failed", "interrupted", "running")
        },
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    from auditkit.results import jsonable

    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(jsonable(document), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)

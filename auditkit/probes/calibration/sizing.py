"""What the calibration probe's passes cost, and how they shrink to fit the clock."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from auditkit.sizing import LADDER_OOD, LADDER_SAMPLES, Cost, ProbeSizing

MIN_MC_SAMPLES = 4
#: Examples per generated OOD set (AUROC against the audit data stays meaningful).
MIN_OOD = 64
#: Examples per batch of the calibration passes the estimates assume (they go through the
#: adapter's automatic batches).
_CALIBRATION_BATCH = 512


class CalibrationSizing(ProbeSizing):
    """Fewer uncertainty samples (down to 4), then smaller generated OOD sets (down to 64)."""

    option_keys = ("num_samples", "ood_size")
    labels = {"num_samples": "MC-dropout", "ood_size": "OOD examples"}

    def settings(self, opts: Any, *, budget: str, clean_accuracy: float) -> dict[str, Any]:
        return {
            "num_samples": opts.num_samples,
            "max_examples": opts.max_examples,
            # Three generated sets, or the user's (at most ood_size examples).
            "ood_sets": 3 if opts.ood is None else 1,
            "ood_size": opts.ood_size,
        }

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        limit = s["max_examples"]
        n = n_data if limit is None else min(int(limit), n_data)
        sets = int(s.get("ood_sets", 0))
        passes = int(s["num_samples"]) * 2 + 2
        return cost.forward_seconds(
            passes * n + sets * int(s.get("ood_size", 0)),
            passes * math.ceil(n / _CALIBRATION_BATCH) + sets,
        )

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        reasons = []
        for key, ladder, floor, label in (
            ("num_samples", LADDER_SAMPLES, MIN_MC_SAMPLES, "MC-dropout / TTA samples"),
            ("ood_size", LADDER_OOD, MIN_OOD, "OOD examples per set"),
        ):
            before = int(s[key])
            if self.fit_to_ladder(
                s, key, ladder, floor, current=before, target=target, n_data=n_data, cost=cost,
                fixed=fixed,
            ) and s[key] < before:
                reasons.append(f"{label} {before} → {s[key]}")
        return reasons

"""What the bias probe's bootstrap costs, and how it shrinks to fit the clock."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from auditkit.sizing import LADDER_BOOT, Cost, ProbeSizing

MIN_BOOT = 50


class BiasSizing(ProbeSizing):
    """Fewer bootstrap rounds (down to 50). No model passes: the bootstrap is vectorized,
    ~30 ns per resampled row over a handful of slicings and cross-probe frames."""

    option_keys = ("n_boot",)
    labels = {"n_boot": "bootstrap rounds"}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        return int(s["n_boot"]) * n_data * 8 * 30e-9

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        before = int(s["n_boot"])
        if self.fit_to_ladder(
            s, "n_boot", LADDER_BOOT, MIN_BOOT, current=before, target=target, n_data=n_data,
            cost=cost, fixed=fixed,
        ) and s["n_boot"] < before:
            return [f"bootstrap rounds {before} → {s['n_boot']}"]
        return []

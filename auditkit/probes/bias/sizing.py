"""What the bias probe's bootstrap costs, and how it shrinks to fit the clock."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from auditkit.sizing import LADDER_BOOT, Cost, ProbeSizing, ladder_fit

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
        if "n_boot" not in fixed and self.seconds(s, n_data, cost) > target and s["n_boot"] > MIN_BOOT:
            wanted = ladder_fit(
                LADDER_BOOT, lambda v: self.seconds({"n_boot": v}, n_data, cost), target,
                MIN_BOOT, int(s["n_boot"]),
            )
            if wanted < s["n_boot"]:
                reason = f"bootstrap rounds {s['n_boot']} → {wanted}"
                s["n_boot"] = wanted
                return [reason]
        return []

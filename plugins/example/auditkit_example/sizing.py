"""Sizing: what the probe's work costs at the measured model cost, and how it shrinks.

auditkit measures the model's cost per example before the probes run; when the scan's work
would exceed its budget's time, each probe gives up work in proportion. This probe's work is
``draws`` noisy forward passes over ``n_examples`` examples at every nonzero noise level.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from auditkit.sizing import LADDER_EXAMPLES, Cost, ProbeSizing, ladder_fit

#: Below this many examples the accuracy under noise is too coarse to compare with the clean one.
MIN_EXAMPLES = 50
#: Examples per forward pass the estimate assumes (the adapter batches automatically).
_BATCH = 256


class NoiseSizing(ProbeSizing):
    """One noisy copy per level, then the headline level alone (sigma 0 costs nothing: it is
    read from the shared clean pass), then fewer examples, down to 50."""

    option_keys = ("draws", "sigmas", "n_examples")
    labels = {"draws": "noisy copies", "sigmas": "noise levels", "n_examples": "examples"}

    def settings(self, opts: Any, *, budget: str, clean_accuracy: float) -> dict[str, Any]:
        return {"draws": opts.draws, "n_examples": opts.n_examples, "sigmas": opts.sigmas,
                "headline_sigma": opts.headline_sigma}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        levels = len({*s["sigmas"], s["headline_sigma"]} - {0.0})
        n = min(int(s["n_examples"]), n_data)
        passes = levels * int(s["draws"])
        return cost.forward_seconds(passes * n, passes * math.ceil(n / _BATCH))

    def shrink(self, s: dict[str, Any], target: float, n_data: int, cost: Cost,
               fixed: Collection[str]) -> list[str]:
        """Each step only while over the target, and never on an option the user set."""
        reasons = []
        if "draws" not in fixed and self.seconds(s, n_data, cost) > target and s["draws"] > 1:
            reasons.append(f"noisy copies per level {s['draws']} → 1")
            s["draws"] = 1
        levels = sorted({*s["sigmas"], s["headline_sigma"]})
        if ("sigmas" not in fixed and self.seconds(s, n_data, cost) > target
                and len(set(levels) - {0.0}) > 1):
            reasons.append(
                f"noise levels {', '.join(f'{v:g}' for v in levels)} → 0, "
                f"{s['headline_sigma']:g} (the headline)"
            )
            s["sigmas"] = (0.0,)
        n = min(int(s["n_examples"]), n_data)
        if "n_examples" not in fixed and self.seconds(s, n_data, cost) > target and n > MIN_EXAMPLES:
            # The largest size on auditkit's ladder (50, 100, 200, 500, …) that fits.
            wanted = ladder_fit(LADDER_EXAMPLES,
                                lambda v: self.seconds({**s, "n_examples": v}, n_data, cost),
                                target, MIN_EXAMPLES, n)
            if wanted < n:
                reasons.append(f"examples {n} → {wanted}")
                s["n_examples"] = wanted
        return reasons

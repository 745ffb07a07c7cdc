"""What the corruptions probe's passes cost, and how they shrink to fit the clock.

The work is one forward pass over ``n_examples`` examples per corruption and severity (the
corruptions themselves cost little next to a model's pass, and are not estimated).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from auditkit.probes.corruptions.catalog import IMAGE_CORRUPTIONS
from auditkit.probes.corruptions.options import FAST_CORRUPTIONS
from auditkit.probes.corruptions.tabular import TABLE_CORRUPTIONS
from auditkit.sizing import LADDER_EXAMPLES, Cost, ProbeSizing

#: Fewer examples than this make a severity's accuracy too coarse to see a trend in.
MIN_EXAMPLES = 100
_BATCH = 256
_FEW_SEVERITIES = (1, 3, 5)


class CorruptionsSizing(ProbeSizing):
    """Severities 1, 3, 5 only, then the four ``fast`` corruptions, then fewer examples
    (down to 100)."""

    option_keys = ("severities", "corruptions", "n_examples")
    labels = {"severities": "severities", "corruptions": "corruptions", "n_examples": "examples"}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        n = n_data if s["n_examples"] is None else min(int(s["n_examples"]), n_data)
        chosen = s["corruptions"] or IMAGE_CORRUPTIONS
        # one data kind runs: its images' corruptions or its table's, not both
        kinds = max(sum(c in IMAGE_CORRUPTIONS for c in chosen),
                    sum(c in TABLE_CORRUPTIONS for c in chosen))
        passes = kinds * len(set(s["severities"]))
        return cost.forward_seconds(passes * n, passes * math.ceil(n / _BATCH))

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        reasons = []
        severities = tuple(sorted(set(s["severities"])))
        if ("severities" not in fixed and self.seconds(s, n_data, cost) > target
                and len(severities) > len(_FEW_SEVERITIES)):
            s["severities"] = _FEW_SEVERITIES
            reasons.append(f"severities {len(severities)} → 3 (1, 3, 5)")
        kinds = s["corruptions"] or IMAGE_CORRUPTIONS
        if ("corruptions" not in fixed and self.seconds(s, n_data, cost) > target
                and len(kinds) > len(FAST_CORRUPTIONS)):
            s["corruptions"] = FAST_CORRUPTIONS + TABLE_CORRUPTIONS
            reasons.append(f"corruptions {len(kinds)} → {len(FAST_CORRUPTIONS)} "
                           f"({', '.join(FAST_CORRUPTIONS)})")
        n = n_data if s["n_examples"] is None else min(int(s["n_examples"]), n_data)
        before = s["n_examples"]
        if self.fit_to_ladder(s, "n_examples", LADDER_EXAMPLES, MIN_EXAMPLES, current=n,
                              target=target, n_data=n_data, cost=cost, fixed=fixed) \
                and s["n_examples"] != before:
            reasons.append(f"examples {n} → {s['n_examples']}")
        return reasons

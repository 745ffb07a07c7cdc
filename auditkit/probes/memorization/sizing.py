"""What the memorization probe's training costs, and how it shrinks to fit the clock."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from auditkit.sizing import LADDER_TRAIN, Cost, ProbeSizing

#: The smallest training subset: below it the random-label test stops meaning anything.
MIN_TRAIN = 8
#: Memorization keeps every corruption level down to this subset size, and the true-label
#: reference beside the random labels down to the next.
KEEP_LEVELS_TRAIN = 64
KEEP_REFERENCE_TRAIN = 32
#: Epochs a level is expected to train for, at most its cap (planning only). Fitting stops at
#: the target accuracy, and the epochs it takes do not grow with the cap. Random labels took
#: the demo CNN (no batch norm) 52 epochs on 256 digits, a ResNet-18 25 epochs on 256 digits
#: upscaled to 32×32 and 6 on 32 of them, a ResNet-50 2–3 epochs on 8–16 noise images at
#: 224×224 (batch norm judged with recomputed statistics; read through running averages the
#: same ResNet-50 needed 64–67). (Planning for 60 % of the cap instead charged a ResNet-18
#: `standard` scan 263 s for 16 s of training.)
EXPECTED_EPOCHS = 64
#: The same for a network whose batch-norm statistics are recomputed before each check (an
#: ``nn.Module`` with batch norm): it fits within a few dozen epochs (25 at most above), and 64
#: charged a ResNet-18 `standard` scan of 1,000 images 313 s for 16 s of training, which cut
#: the other probes' work on a machine only a little slower.
EXPECTED_EPOCHS_PRECISE_BN = 32
#: What the training loop's mode switches and accuracy passes add to the bare passes (a
#: ResNet-50 at 224×224 on 2 idle CPU cores: 1.0×).
MEMORIZATION_OVERHEAD = 1.1
#: The time limit per level: this multiple of what its whole epoch cap takes at the recorded
#: cost, so the clock never ends a level that would finish at the measured speed.
TIME_LIMIT_SAFETY = 1.5


def _trainable(n_data: int) -> int:
    """Examples memorization may train on: at most half the audit data (the rest is held out)."""
    return max(1, n_data // 2)


class MemorizationSizing(ProbeSizing):
    """Smaller subset first (down to ``KEEP_LEVELS_TRAIN``), then only the two ends of the
    corruption scale (true and random labels), then the subset down to
    ``KEEP_REFERENCE_TRAIN``, then random labels alone (the random-label test itself, without
    the true-label reference), then the subset down to ``MIN_TRAIN``. A subset small enough to
    fit is still the random-label test. The epoch cap is kept, and the time limit is set well
    above the planned time so the clock is a safety net, not the experiment."""

    option_keys = ("train_size", "corruption_levels", "time_limit_s")
    labels = {"train_size": "training subset", "corruption_levels": "corruption levels"}
    derived = {"corruption_levels": "levels"}

    def settings(self, opts: Any, *, budget: str, clean_accuracy: float) -> dict[str, Any]:
        levels = tuple(sorted(set(opts.corruption_levels)))
        return {
            "train_size": int(opts.train_size),
            "max_epochs": int(opts.max_epochs),
            "time_limit_s": float(opts.time_limit_s),
            "corruption_levels": levels,
            "levels": len(levels) + bool(opts.random_pixels),
            "batch_size": int(opts.batch_size),
        }

    def pilot(self, probe: Any, context: Any) -> dict[str, float]:
        """How many batch-norm layers get their statistics recomputed before each accuracy
        check (one more forward pass over the subset per epoch)."""
        from auditkit.reinit import batch_norm_layers

        model = getattr(context.adapter, "model", None)
        return {"batch_norm_layers": len(batch_norm_layers(model))} if model is not None else {}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        """Expected: each level trains for ``EXPECTED_EPOCHS`` (``EXPECTED_EPOCHS_PRECISE_BN``
        with batch norm), at most its cap (fitting stops early at the target accuracy; random
        labels take a small constant factor longer than true ones). The clock limit covers the
        whole cap, see ``finish``."""
        expected = EXPECTED_EPOCHS_PRECISE_BN if s.get("batch_norm_layers") else EXPECTED_EPOCHS
        epochs = float(max(1, min(expected, int(s["max_epochs"]))))
        return int(s["levels"]) * epochs * self.epoch_seconds(s, n_data, cost)

    @staticmethod
    def epoch_seconds(s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        from auditkit.probes.memorization.measure import _EVAL_BATCH  # its accuracy passes

        n = min(int(s["train_size"]), _trainable(n_data))
        steps = math.ceil(n / int(s.get("batch_size", 32)))
        # Training steps (passes plus one optimizer step per batch), the batch-norm statistics
        # pass where the model has batch norm, then the accuracy pass.
        passes = (
            cost.train_seconds(n, steps)
            + steps * cost.optimizer_step_s
            + (cost.forward_seconds(n, steps) if s.get("batch_norm_layers") else 0.0)
            + cost.forward_seconds(n, math.ceil(n / _EVAL_BATCH))
        )
        return MEMORIZATION_OVERHEAD * passes

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        reasons = []
        default_n = min(int(s["train_size"]), _trainable(n_data))
        default_levels = tuple(s.get("corruption_levels") or ())

        def over(key: str) -> bool:
            """Over the target, and ``key`` is not the user's to keep."""
            return key not in fixed and self.seconds(s, n_data, cost) > target

        def subset(floor: int) -> None:
            self.fit_to_ladder(
                s, "train_size", LADDER_TRAIN, floor,
                current=min(int(s["train_size"]), _trainable(n_data)),
                target=target, n_data=n_data, cost=cost, fixed=fixed,
            )

        subset(max(KEEP_LEVELS_TRAIN, MIN_TRAIN))
        levels = tuple(s.get("corruption_levels") or ())
        if over("corruption_levels") and len(levels) > 2:
            ends = (min(levels), max(levels))
            s["corruption_levels"] = ends
            s["levels"] = 2 + (int(s["levels"]) - len(levels))
            levels = ends
        subset(max(KEEP_REFERENCE_TRAIN, MIN_TRAIN))
        if over("corruption_levels") and len(levels) > 1 and max(levels) == 1:
            s["levels"] = 1 + (int(s["levels"]) - len(levels))
            s["corruption_levels"] = (1.0,)
        subset(MIN_TRAIN)
        levels = tuple(s.get("corruption_levels") or ())
        if levels != default_levels:
            why = (
                "random labels alone: the test itself, without the true-label reference"
                if len(levels) == 1
                else "true and random labels"
            )
            reasons.append(
                f"corruption levels {', '.join(f'{p:g}' for p in default_levels)} → "
                f"{', '.join(f'{p:g}' for p in levels)} ({why})"
            )
        if min(int(s["train_size"]), _trainable(n_data)) < default_n:
            reasons.insert(
                0,
                f"training subset {default_n} → {s['train_size']} examples (still the "
                "random-label test, on fewer examples)",
            )
        return reasons

    def finish(
        self, s: dict[str, Any], n_data: int, cost: Cost, fixed: Collection[str]
    ) -> None:
        # The clock is a safety net above what the whole epoch cap takes, never the
        # experiment: a level that needs every epoch still finishes.
        if "time_limit_s" in fixed:
            return
        cap = int(s["max_epochs"]) * self.epoch_seconds(s, n_data, cost)
        s["time_limit_s"] = float(max(s["time_limit_s"], math.ceil(TIME_LIMIT_SAFETY * cap)))

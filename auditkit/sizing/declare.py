"""How a probe declares the sizing of its work (``Probe.sizing``): the plugin-facing part.

A ``ProbeSizing`` estimates a probe's seconds from its settings and the measured ``Cost``, and
says how to shrink its work down to a floor that keeps its experiment conclusive; sizes snap to
the ladders below (``ladder_fit``). Built-in probes declare theirs in their own packages,
plugins the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from auditkit.sizing.cost import Cost

#: A probe whose budget's work costs less than this share of the limit keeps all of it, and
#: larger ones are never asked to fit in less.
NEGLIGIBLE_SHARE = 0.02


LADDER_EXAMPLES = (20, 50, 100, 200, 500, 1000, 2000, 5000)


LADDER_TRAIN = (8, 16, 32, 64, 128, 256, 512, 1000, 2000, 5000)


LADDER_BOOT = (50, 100, 200, 500)


LADDER_SAMPLES = (4, 8, 16, 20, 32, 50)


LADDER_OOD = (64, 128, 256, 500, 1000, 2000)


# --- the probes' side: what their work costs, and how it shrinks ---------------------------
class ProbeSizing:
    """How a probe's work is sized to the clock: set an instance as the probe class's
    ``sizing`` attribute (built-in probes and plugins alike; a probe without one runs its
    budget's work as declared, and is listed under ``not_sized`` in the plan).

    The planner asks ``settings`` for the estimator's inputs (from the probe's options for the
    budget, the user's included), estimates them with ``seconds``, and, when the whole scan's
    estimate exceeds the limit, calls ``shrink`` with the probe's share of the limit (its
    estimate times limit / total). Settings named in ``option_keys`` that the plan changed are
    handed to the probe as options; an option the user set is restored after shrinking (with
    the settings ``derived`` from it), and the reasons that start with its ``labels`` entry are
    dropped. Estimates and shrinkers must be pure functions of their arguments: the plan is
    recorded, and ``--resume`` and diffs rely on the same cost giving the same plan.

    Example (a probe that makes ``draws`` noisy passes over at most ``n_examples``)::

        class NoiseSizing(ProbeSizing):
            option_keys = ("draws",)
            labels = {"draws": "noisy copies"}

            def settings(self, opts, *, budget, clean_accuracy):
                return {"draws": opts.draws, "n_examples": opts.n_examples}

            def seconds(self, s, n_data, cost):
                n = min(s["n_examples"], n_data)
                return cost.forward_seconds(s["draws"] * n, s["draws"])

            def shrink(self, s, target, n_data, cost, fixed):
                if self.seconds(s, n_data, cost) > target and s["draws"] > 1 \
                        and "draws" not in fixed:
                    reason = f"noisy copies {s['draws']} → 1"
                    s["draws"] = 1
                    return [reason]
                return []
    """

    #: Settings that are the probe's options (changed ones are passed to the probe).
    option_keys: tuple[str, ...] = ()
    #: Option → the start of the reason that changes it (to drop it when the user set it).
    labels: Mapping[str, str] = {}
    #: Option → an estimator setting that follows from it (kept with it when the user set it).
    derived: Mapping[str, str] = {}
    #: Metric → the options it exists only with. A policy that gates the metric sets them, as
    #: if the user had (``options_for_gates``), so the plan keeps them (the adversarial probe's
    #: L2 metrics: the L2 attacks). A metric a plan may still drop says why when unmeasured.
    gated: Mapping[str, Mapping[str, Any]] = {}

    def settings(self, opts: Any, *, budget: str, clean_accuracy: float) -> dict[str, Any]:
        """The estimator's inputs from the parsed options (default: the ``option_keys``).
        ``clean_accuracy`` is the share of the audit data the model gets right."""
        return {k: getattr(opts, k) for k in self.option_keys}

    def pilot(self, probe: Any, context: Any) -> dict[str, float]:
        """Optional: a few passes that tell how this model behaves under the probe's work (the
        adversarial probe: the share of a sample one FGSM step fools), measured once before
        planning, recorded with the cost and merged into ``settings``. Deterministic, and
        cheap: a pass or two over the diagnostic sample."""
        return {}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        """Estimated seconds of the work ``s`` on ``n_data`` audit examples at ``cost``."""
        raise NotImplementedError

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        """Give up work in ``s`` (in place), in a fixed order and down to floors that keep the
        experiment conclusive, while the estimate exceeds ``target``; one reason per changed
        setting ("EOT draws 8 → 2"). Leave the options in ``fixed`` (the user set them) as
        they are and give up other work instead."""
        return []

    def fit_to_ladder(
        self, s: dict[str, Any], key: str, ladder: Sequence[int], floor: int, *, current: int,
        target: float, n_data: int, cost: Cost, fixed: Collection[str],
    ) -> bool:
        """One step of a shrinker: unless the user set ``key`` or ``s`` already fits ``target``
        or ``current`` (what ``s[key]`` amounts to on this data) is at ``floor``, set ``s[key]``
        to ``ladder_fit``'s size between ``floor`` and ``current``. Returns whether it did."""
        if key in fixed or current <= floor or self.seconds(s, n_data, cost) <= target:
            return False
        s[key] = ladder_fit(
            ladder, lambda v: self.seconds({**s, key: v}, n_data, cost), target, floor, current
        )
        return True

    def finish(
        self, s: dict[str, Any], n_data: int, cost: Cost, fixed: Collection[str]
    ) -> None:
        """Settings that follow from the final plan (``fixed``: the options the user set), such
        as a safety limit derived from the planned work. Runs after the estimates, so what it
        changes is not estimated; runs for every model that is not small, with or without a
        time limit (``thorough``)."""


def ladder_fit(
    ladder: Sequence[int], seconds: Callable[[int], float], target: float, floor: int,
    default: int,
) -> int:
    """The largest size within [floor, default] (a ladder step, or ``default`` itself) whose
    estimate fits ``target``; when none does, the largest that costs at most a tenth more
    than the floor, so work that costs little — examples that share a latency-bound pass — is
    not given up for a small saving. Estimates are searched, not divided: a pass's latency makes
    them affine, not proportional, in the size."""
    floor = min(max(floor, 1), default)
    limit = max(target, 1.1 * seconds(floor))
    steps = {v for v in ladder if floor <= v <= default} | {floor, default}
    return max(v for v in steps if v == floor or seconds(v) <= limit)


def sizing_of(probe: Any) -> ProbeSizing | None:
    """A probe's (class's or instance's) ``sizing``, or None."""
    sizing = getattr(probe, "sizing", None)
    return sizing if isinstance(sizing, ProbeSizing) else None

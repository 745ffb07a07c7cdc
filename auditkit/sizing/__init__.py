"""Budgets that fit the clock: measure what the model costs, then size each probe's work.

Before the probes run, the pipeline measures the model's forward and forward+backward seconds
per example on the audit device (a few small batches, the fastest of three timings, under the
machine's current load), and
plans each probe's work — examples attacked, PGD steps and restarts, EOT draws, the memorization
subset, MC samples, bootstrap rounds — so that ``fast`` takes about a minute of probe time and
``standard`` about ten (``max_minutes`` sets another limit).

Decisions:
- Each probe declares how its work is sized (``Probe.sizing``, a ``ProbeSizing``: built-in
  probes in their own packages, plugins the same way). A probe's work is estimated from its
  settings and the measured cost (gradient passes × backward seconds + forward passes ×
  forward seconds). When the estimate of the budget's
  defaults fits the limit, nothing changes: small models (the demo) keep exactly their budget's
  work, so their numbers never depend on the machine's speed.
- Otherwise every probe's share shrinks in proportion to its estimate, and each probe gives up
  work in a fixed order down to a floor that keeps its experiment conclusive: fewer examples
  attacked before fewer steps or restarts; memorization trains on a smaller subset (a subset
  small enough to fit is still the random-label test) and keeps its epoch cap, and its time
  limit is set well above the planned time so the clock is a safety net, not the experiment.
  Sizes snap to a short ladder (50, 100, 200, 500, …), so a few percent of timing noise does
  not move the plan.
- The plan is a pure function of (budget, limit, recorded cost, data size, user options): with
  the same recorded cost the same plan comes back. The cost is recorded in audit.json and in the
  checkpoint folder; ``--resume`` reuses it, so a resumed audit sizes its work as the first run
  did. Options the user set explicitly are never changed.

Rooms: ``cost`` (measure and record what the model costs), ``declare`` (``ProbeSizing``: how a
probe's work is sized, the plugin-facing part), ``plan`` (the pure work plan), ``threads`` and
``layout`` (what pays on this machine now). This module holds the pipeline's one call,
``fit_to_clock``, and re-exports the public names (``from auditkit.sizing import ProbeSizing``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from auditkit.sizing.cost import (
    _MAX_MEASURE_BATCH,
    COST_FILE,
    MEASURE_REPEATS,
    SMALL_MODEL_ACTIVATION_BYTES,
    SMALL_MODEL_PARAMETERS,
    Cost,
    measure_cost,
    small_model_reason,
)
from auditkit.sizing.declare import (
    LADDER_BOOT,
    LADDER_EXAMPLES,
    LADDER_OOD,
    LADDER_SAMPLES,
    LADDER_TRAIN,
    NEGLIGIBLE_SHARE,
    ProbeSizing,
    ladder_fit,
    sizing_of,
)
from auditkit.sizing.layout import apply_layout, choose_layout, layout_switchable, restore_layout
from auditkit.sizing.plan import BUDGET_SECONDS, WorkPlan, options_for_gates, plan_work
from auditkit.sizing.threads import choose_threads


def _pilots(probes: Sequence[Any], context: Any) -> dict[str, dict[str, float]]:
    """Each sized probe's ``pilot`` (one that raises gives nothing: it is planned without)."""
    found: dict[str, dict[str, float]] = {}
    for probe in probes:
        sizing = sizing_of(probe)
        if sizing is None or getattr(probe, "opts", None) is None:
            continue
        try:
            values = {str(k): float(v) for k, v in dict(sizing.pilot(probe, context)).items()}
        except Exception:
            continue
        if values:
            found[probe.name] = values
    return found


def size_probes(
    selected: list,
    context,
    *,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
    checkpoint=None,
    reuse: bool = False,
    max_minutes: float | None = None,
    cost: Cost | Mapping[str, Any] | None = None,
    given: Sequence[Any] = (),
) -> tuple[list, WorkPlan | None]:
    """The pipeline's hook: measure (or reuse) the cost, plan, and rebuild the probes to plan.

    Probes the caller passed as instances are used as given (their options are theirs). May
    lower torch's CPU threads for the scan (``choose_threads``): the caller restores them.
    Returns the probes to run and the plan (None when the cost could not be measured).
    """
    import json
    from pathlib import Path

    recorded: Cost | None = None
    if isinstance(cost, Cost):
        recorded = cost
    elif isinstance(cost, Mapping):
        recorded = Cost.from_dict(cost)
    path = Path(checkpoint) / COST_FILE if checkpoint is not None else None
    if recorded is None and reuse and path is not None and path.is_file():
        try:
            recorded = Cost.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None  # a damaged record is measured again
    from auditkit import distributed

    # Probes the caller built are run with their own options: neither piloted nor sized.
    ours = [p for p in selected if not any(p is g for g in given)]
    small = small_model_reason(context.adapter)
    threads = (
        choose_threads(context.adapter, context.data.x, small=small is not None)
        if distributed.is_main()
        else None
    )
    if distributed.state().active:
        threads = distributed.broadcast_object(threads)
        if threads:
            torch.set_num_threads(int(threads["threads"]))
    layout_before = getattr(context.adapter, "channels_last", None)
    if recorded is None and distributed.is_main():
        try:
            # The layout first: the cost is measured in the layout the probes will run in.
            layout = choose_layout(context.adapter, context.data.x, small=small is not None)
            recorded = measure_cost(context.adapter, context.data.x[:_MAX_MEASURE_BATCH])
            recorded = dataclasses.replace(recorded, layout=layout)
        except Exception:  # sizing must never take the audit down: run the budget as declared
            restore_layout(context.adapter, layout_before)
            recorded = None
        if recorded is not None and small is None:
            # A small model is never resized: its pilots would change nothing.
            recorded = dataclasses.replace(recorded, pilots=_pilots(ours, context))
    if distributed.state().active:
        # Rank 0's cost for everyone: every rank must plan exactly the same work.
        shared = distributed.broadcast_object(recorded.to_dict() if recorded else None)
        recorded = Cost.from_dict(shared) if shared is not None else None
    if recorded is None:
        return selected, None
    # A recorded cost's layout (resume, --cost-from, or rank 0's choice on every rank).
    channels_last = apply_layout(context.adapter, recorded.layout, small=small is not None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded.to_dict()), encoding="utf-8")
    plan = plan_work(
        recorded,
        budget=budget,
        n_examples=len(context.data),
        probes=ours,
        max_minutes=max_minutes,
        user_options=options,
        small_model=small,
        clean_accuracy=float(context.clean_correct.float().mean()) if len(context.data) else 1.0,
    )
    passed = [p.name for p in selected if not any(p is o for o in ours)]
    if passed:
        plan = dataclasses.replace(plan, not_sized=[*plan.not_sized, *passed])
    if threads:
        plan = dataclasses.replace(plan, threads=threads)
    if context.adapter.device.type == "cpu":
        plan = dataclasses.replace(plan, channels_last=channels_last)
    sized = []
    for probe in selected:
        extra = plan.options.get(probe.name)
        if extra and any(probe is o for o in ours):
            user = dict((options or {}).get(probe.name, {}))
            probe = type(probe)(budget=budget, **{**extra, **user})
        sized.append(probe)
    return sized, plan


#: Passes of one thread check (``choose_threads``: 4 on the default threads, 2 on one).
_RECHECK_PASSES = 6


def recheck_threads(adapter, x: torch.Tensor, plan: WorkPlan | None, probe: str) -> WorkPlan | None:
    """Before a later probe: cores that turned busy (or whose other job was quiet when the scan
    began) are noticed too. Only ever lowers the threads, once, and records from which probe;
    never for small models, a GPU, torchrun ranks or a scan without a plan."""
    from auditkit import distributed

    if (plan is None or plan.small_model or plan.threads or adapter.device.type != "cpu"
            or distributed.state().active):
        return plan
    # The check is 6 passes of 2 examples: worth it only before a probe that costs ten times
    # that (not before the bias probe, which reads the clean pass, nor a plugin's few passes).
    check = _RECHECK_PASSES * plan.cost.forward_seconds(2, 1)
    estimate = plan.estimates.get(probe)  # none for a probe the caller passed in
    if estimate is not None and estimate < 10 * check:
        return plan
    found = choose_threads(adapter, x, small=False, size=2)
    return dataclasses.replace(plan, threads={**found, "from_probe": probe}) if found else plan


class Fitting:
    """A scan's sizing while its probes run: the probes to run, the plan (None when unsized),
    and the thread check before each later probe. What ``fit_to_clock`` yields."""

    def __init__(self, probes: list, plan: WorkPlan | None, adapter: Any, x: torch.Tensor) -> None:
        self.probes = probes
        self.plan = plan
        self._adapter = adapter
        self._x = x

    def before_probe(self, index: int, name: str, log: Callable[[str], None]) -> None:
        """Before the ``index``-th probe (1-based) runs: recheck the threads (``recheck_threads``)
        and log a change."""
        if index > 1 and self.plan is not None:
            switched = recheck_threads(self._adapter, self._x, self.plan, name)
            if switched is not self.plan:
                self.plan = switched
                log(f"sizing: {self.plan.threads_summary()}")


@contextmanager
def fit_to_clock(
    selected: list,
    context: Any,
    *,
    x: torch.Tensor,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
    checkpoint: Any = None,
    reuse: bool = False,
    enabled: bool = False,
    max_minutes: float | None = None,
    cost: Cost | Mapping[str, Any] | None = None,
    given: Sequence[Any] = (),
) -> Iterator[Fitting]:
    """The pipeline's one call: size the probes (``size_probes``, when ``enabled``), yield the
    ``Fitting``, and give back torch's threads and the model's layout however the scan ends."""
    threads_before = torch.get_num_threads()
    layout_before = getattr(context.adapter, "channels_last", None)
    try:
        plan = None
        if enabled:
            selected, plan = size_probes(
                selected, context, budget=budget, options=options, checkpoint=checkpoint,
                reuse=reuse, max_minutes=max_minutes, cost=cost, given=given,
            )
        yield Fitting(selected, plan, context.adapter, x)
    finally:
        torch.set_num_threads(threads_before)
        restore_layout(context.adapter, layout_before)


__all__ = [
    "BUDGET_SECONDS", "COST_FILE", "Fitting", "fit_to_clock", "LADDER_BOOT", "LADDER_EXAMPLES", "LADDER_OOD",
    "LADDER_SAMPLES", "LADDER_TRAIN", "MEASURE_REPEATS", "NEGLIGIBLE_SHARE",
    "SMALL_MODEL_ACTIVATION_BYTES", "SMALL_MODEL_PARAMETERS", "Cost", "ProbeSizing", "WorkPlan",
    "apply_layout", "choose_layout", "choose_threads", "ladder_fit", "layout_switchable",
    "measure_cost", "options_for_gates", "plan_work", "recheck_threads", "restore_layout",
    "size_probes", "sizing_of", "small_model_reason",
]

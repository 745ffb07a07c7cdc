"""The work plan: from (budget, limit, recorded cost, data size, user options) to each probe's
options. A pure function of those inputs: the same recorded cost gives the same plan.

Each probe declares how its work is sized (``ProbeSizing``); sizes snap to short ladders so a
few percent of timing noise does not move the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditkit.sizing.cost import Cost
from auditkit.sizing.declare import NEGLIGIBLE_SHARE, ProbeSizing, sizing_of
from auditkit.sizing.threads import _THREADS_WORTH


def options_for_gates(
    targets: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """``options`` plus the options the gated metrics ``targets`` ("probe.metric") exist only
    with, as each probe's sizing declares them in ``gated``; a value already set wins."""
    from auditkit.registry import discover_probes

    merged = {p: dict(o) for p, o in (options or {}).items()}
    registered = discover_probes()
    for target in targets:
        probe, _, metric = str(target).partition(".")
        sizing = sizing_of(_probe_class(probe, registered)) if probe in registered else None
        try:
            needed = dict(dict(getattr(sizing, "gated", {}) or {}).get(metric) or {})
        except (TypeError, ValueError):  # a plugin's malformed declaration: nothing is kept
            continue
        for key, value in needed.items():
            merged.setdefault(probe, {}).setdefault(key, value)
    return merged


def _probe_class(probe: str | type | Any, registered: Mapping[str, Any]) -> type | None:
    """A probe class from a registered name, a class or an instance (None: unknown name)."""
    if isinstance(probe, str):
        entry = registered.get(probe)
        return entry.obj if entry is not None and entry.loaded else None
    return probe if isinstance(probe, type) else type(probe)


def _settings_of(
    probe: Any, cls: type, sizing: ProbeSizing, budget: str, given: Mapping[str, Any],
    clean_accuracy: float,
) -> dict[str, Any]:
    """The estimator's inputs: an instance's own options, else the probe's options for the
    budget with the user's (parsed as the probe parses them)."""
    opts = getattr(probe, "opts", None) if not isinstance(probe, (str, type)) else None
    if opts is None and getattr(cls, "Options", None) is not None:
        from auditkit.options import parse_options

        opts = parse_options(cls, dict(given), budget)
    if opts is None:
        raise TypeError(f"probe {getattr(cls, 'name', cls)!r} declares a sizing but no Options")
    return sizing.settings(opts, budget=budget, clean_accuracy=clean_accuracy)


@dataclass(frozen=True)
class WorkPlan:
    """Each probe's work, why, and what it is expected to cost."""

    budget: str
    limit_seconds: float | None
    cost: Cost
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)
    default_estimates: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    unfit: list[str] = field(default_factory=list)
    small_model: str | None = None
    #: Probes that declare no ``sizing``: they run their budget's work as declared.
    not_sized: list[str] = field(default_factory=list)
    #: Probes whose sizing raised (``"Type: message"``): they run their budget's work.
    errors: dict[str, str] = field(default_factory=dict)
    #: Set when the scan runs on fewer CPU threads than torch's default (``choose_threads``).
    threads: dict[str, Any] | None = None
    #: Whether a CPU scan ran the network in channels_last (``choose_layout``; None on a GPU).
    channels_last: bool | None = None

    @property
    def reduced(self) -> bool:
        return any(self.reasons.values())

    @property
    def noteworthy(self) -> bool:
        """Worth saying before the probes run and in summary.md: work was reduced, the threads
        or the memory layout switched, a sizing failed, or the work stays above the limit."""
        over = self.limit_seconds is not None and self.small_model is None and (
            sum(self.estimates.values()) > 1.1 * self.limit_seconds
        )
        return bool(self.reduced or self.threads or self.errors or over or self.layout_summary())

    def summary(self) -> str:
        """One sentence for the report and the console, and one each when the scan switched its
        CPU memory layout or threads."""
        text = self._work_summary()
        for extra in (self.layout_summary(), self.threads_summary()):
            if extra:
                text += " " + extra
        return text

    def layout_summary(self) -> str:
        """The sentence on the CPU memory layout the scan switched to ("" when it kept it)."""
        layout = self.cost.layout
        if not layout or not layout["channels_last"]:
            return ""
        if not self.channels_last:
            return (
                "The recorded cost's channels_last layout does not apply to this model (not a "
                "plain conv net, a small one, or already in its own layout): it ran in its own."
            )
        seconds = layout["seconds"]
        return (
            "Ran in the channels_last memory layout: a forward and gradient pass took "
            f"{seconds['channels_last'] * 1e3:.3g} ms in it and {seconds['default'] * 1e3:.3g} "
            "ms in the default layout."
        )

    def threads_summary(self) -> str:
        """The sentence on the CPU threads the scan switched to ("" when it kept them)."""
        t = self.threads
        if not t:
            return ""
        since = f" from the {t['from_probe']} probe on" if t.get("from_probe") else ""
        return (
            f"Ran on {t['threads']} of {t['default']} CPU threads{since}: a pass took "
            f"{t['seconds'][str(t['default'])] * 1e3:.3g} ms on {t['default']} and "
            f"{t['seconds'][str(t['threads'])] * 1e3:.3g} ms on {t['threads']} (more threads "
            f"are kept only when {_THREADS_WORTH:g}× faster: on cores busy with other work they "
            "stall)."
        )

    def _work_summary(self) -> str:
        text = self._plan_summary()
        if self.errors:
            text += (
                f" Sizing failed for {', '.join(sorted(self.errors))} ("
                + "; ".join(self.errors[n] for n in sorted(self.errors))
                + "): run with their budget's work."
            )
        return text

    def _plan_summary(self) -> str:
        total = sum(self.estimates.values())
        per = _per_example_text(self.cost)
        if self.limit_seconds is None:
            return f"Work not sized to the clock ({self.budget} budget); model cost {per}."
        limit = _duration(self.limit_seconds)
        if self.small_model is not None:
            return (
                f"The {self.budget} budget's full work is kept: {self.small_model} (estimated "
                f"{_duration(total)} of probe time at {per})."
            )
        if not self.reduced and total > 1.1 * self.limit_seconds:
            return (
                f"The {self.budget} budget's work is kept although it exceeds its {limit} "
                f"(estimated {_duration(total)} of probe time at {per}): the options you set "
                "are never changed, and nothing else could be reduced."
            )
        if not self.reduced:
            return (
                f"The {self.budget} budget's full work fits its {limit} (estimated "
                f"{_duration(total)} of probe time at {per}); nothing was reduced."
            )
        changes = "; ".join(f"{p}: {', '.join(r)}" for p, r in self.reasons.items() if r)
        text = (
            f"Sized to the {self.budget} budget's {limit} at the measured {per}: {changes} "
            f"(estimated {_duration(total)}, {self._attack_basis()})."
        )
        if self.unfit:
            text += (
                f" Even at their smallest conclusive size {', '.join(self.unfit)} exceed "
                "their share of the limit."
                if len(self.unfit) > 1
                else f" Even at its smallest conclusive size {self.unfit[0]} exceeds its share "
                "of the limit."
            )
        return text

    def _attack_basis(self) -> str:
        fooled = self.cost.pilots.get("adversarial", {}).get("fgsm_fooled")
        if fooled is None:
            return (
                "counting every attack step; an attack stops at the first step that fools an "
                "example"
            )
        return (
            f"one FGSM step fooled {fooled:.0%} of a sample, so attacks on those are expected "
            "to stop early; every other example is counted at every step"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "limit_seconds": self.limit_seconds,
            "cost": self.cost.to_dict(),
            "options": {k: dict(v) for k, v in self.options.items()},
            "estimated_seconds": {k: round(v, 3) for k, v in self.estimates.items()},
            "default_estimated_seconds": {
                k: round(v, 3) for k, v in self.default_estimates.items()
            },
            "reasons": {k: list(v) for k, v in self.reasons.items()},
            "unfit": list(self.unfit),
            "not_sized": list(self.not_sized),
            "errors": dict(self.errors),
            "small_model": self.small_model,
            "threads": dict(self.threads) if self.threads else None,
            "channels_last": self.channels_last,
            "reduced": self.reduced,
            "noteworthy": self.noteworthy,
            "summary": self.summary(),
        }


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _per_example_text(cost: Cost) -> str:
    def ms(v: float) -> str:
        return f"{v * 1e3:.3g} ms"

    text = (
        f"{ms(cost.forward_s)} forward and {ms(cost.backward_s)} forward+backward per example "
        f"on {cost.device}"
    )
    if cost.backward_latency_s >= 1e-3:
        text += f", plus {ms(cost.backward_latency_s)} per batched gradient pass"
    return text


def plan_work(
    cost: Cost,
    *,
    budget: str,
    n_examples: int,
    probes: Sequence[str | type | Any],
    max_minutes: float | None = None,
    user_options: Mapping[str, Mapping[str, Any]] | None = None,
    small_model: str | None = None,
    clean_accuracy: float = 1.0,
) -> WorkPlan:
    """Size each probe's work to the limit; a pure function of its arguments.

    Args:
        cost: the recorded per-example cost (``measure_cost`` or ``Cost.from_dict``).
        budget: ``fast`` | ``standard`` | ``thorough``.
        n_examples: audit examples.
        probes: the probes that will run: registered names, probe classes or instances. Those
            that declare a ``sizing`` (``ProbeSizing``) are sized; the others are listed in
            ``not_sized``.
        max_minutes: a limit on probe time replacing the budget's (None: the budget's).
        user_options: options the user set; they are used as given and never changed.
        clean_accuracy: share of the audit data the model gets right (only those are
            attacked).
        small_model: why the model counts as small (``small_model_reason``): then nothing is
            reduced whatever the timings say, so a load spike during the measurement can never
            change a small model's numbers.

    Example:
        >>> plan = plan_work(cost, budget="fast", n_examples=60, probes=["adversarial"])
        >>> plan.options["adversarial"]
    """
    limit = BUDGET_SECONDS[budget] if max_minutes is None else float(max_minutes) * 60.0
    user_options = user_options or {}
    registered: Mapping[str, Any] = {}
    if any(isinstance(p, str) for p in probes):
        from auditkit.registry import discover_probes

        registered = discover_probes()
    sizings: dict[str, ProbeSizing] = {}
    settings: dict[str, dict[str, Any]] = {}
    defaults_cost: dict[str, float] = {}
    not_sized: list[str] = []
    errors: dict[str, str] = {}
    for probe in probes:
        cls = _probe_class(probe, registered)
        name = probe if isinstance(probe, str) else str(
            getattr(cls, "name", "") or getattr(cls, "__name__", cls)
        )
        sizing = sizing_of(cls)
        if cls is None or sizing is None:
            not_sized.append(name)
            continue
        given = {k: v for k, v in dict(user_options.get(name, {})).items() if v is not None}
        try:
            # A plugin's sizing code must never take the audit down: a probe whose sizing
            # fails runs its budget's work, and the plan says why.
            defaults = _settings_of(probe, cls, sizing, budget, given, clean_accuracy)
            defaults.update(cost.pilots.get(name, {}))
            seconds = float(sizing.seconds(defaults, n_examples, cost))
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            not_sized.append(name)
            continue
        sizings[name], settings[name], defaults_cost[name] = sizing, defaults, seconds
    total = sum(defaults_cost.values())
    reasons: dict[str, list[str]] = {name: [] for name in settings}
    unfit: list[str] = []
    planned = {name: dict(s) for name, s in settings.items()}
    fixed = {name: frozenset(dict(user_options.get(name, {}))) for name in settings}
    if limit is not None and total > limit and small_model is None:
        factor = limit / total
        for name, s in planned.items():
            sizing = sizings[name]
            trial = dict(s)
            try:
                # Work that costs under NEGLIGIBLE_SHARE of the limit is never given up: a
                # proportional share would cut 100 bootstrap rounds to 50 to save 6 ms.
                target = max(
                    defaults_cost[name] * factor,
                    min(defaults_cost[name], NEGLIGIBLE_SHARE * limit),
                )
                changes = sizing.shrink(trial, target, n_examples, cost, fixed[name])
                # A setting the user chose is theirs: keep it (should a shrinker have changed
                # it), and drop the reason that changed it.
                for key in fixed[name]:
                    for k in (key, sizing.derived.get(key)):
                        if k in s:
                            trial[k] = s[k]
                        elif k is not None:
                            trial.pop(k, None)
                sizing.seconds(trial, n_examples, cost)  # the plan must be estimable
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                trial, changes = dict(s), []
            planned[name] = trial
            reasons[name] = [
                reason
                for reason in changes
                if not any(reason.startswith(sizing.labels.get(k, k)) for k in fixed[name])
            ]
    estimates = {
        name: float(sizings[name].seconds(s, n_examples, cost)) for name, s in planned.items()
    }
    if limit is not None and total > limit and sum(estimates.values()) > 1.1 * limit:
        # Named: the probes still above their share at their smallest conclusive size.
        factor = limit / total
        unfit = [
            n
            for n in planned
            if estimates[n] > 1.1 * defaults_cost[n] * factor
            and estimates[n] - defaults_cost[n] * factor > 1.0
        ]
    if small_model is None:
        for name, s in planned.items():
            done = dict(s)
            try:
                sizings[name].finish(done, n_examples, cost, fixed[name])
                planned[name] = done
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
    options = {}
    for name, s in planned.items():
        changed = {
            k: s[k]
            for k in sizings[name].option_keys
            if k in s and s[k] != settings[name].get(k) and k not in fixed[name]
        }
        if changed:
            options[name] = changed
    return WorkPlan(
        small_model=small_model,
        budget=budget,
        limit_seconds=limit,
        cost=cost,
        options=options,
        estimates=estimates,
        default_estimates=defaults_cost,
        reasons={k: v for k, v in reasons.items() if v},
        unfit=unfit,
        not_sized=not_sized,
        errors=errors,
    )


#: Probe-time limits per budget (seconds). ``thorough`` promises depth, not speed.
BUDGET_SECONDS: dict[str, float | None] = {"fast": 60.0, "standard": 600.0, "thorough": None}

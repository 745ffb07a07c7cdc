"""The probe contract: declare needs and metrics, store options, ``run(context) -> ProbeResult``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from auditkit.errors import AuditkitInputError
from auditkit.options import BUDGETS, options_dict, parse_options
from auditkit.results import ProbeResult, jsonable

if TYPE_CHECKING:
    from auditkit.context import AuditContext
    from auditkit.sizing import ProbeSizing


def check_budget(budget: str) -> str:
    """``budget`` if it is one of ``BUDGETS``; otherwise the one-line error users see."""
    if budget not in BUDGETS:
        raise AuditkitInputError(
            f"--budget {budget}: unknown budget; use one of {', '.join(BUDGETS)}"
        )
    return budget


@dataclass(frozen=True)
class MetricSpec:
    """A metric a probe reports: which direction is better, and what it means."""

    direction: Literal["higher", "lower"] | None
    description: str


class Probe(ABC):
    """A probe audits one failure mode.

    Subclasses set the class attributes below, keep ``__init__`` to storing and validating
    keyword-only options, and implement ``run``. The runner reads the declared needs to skip a
    probe with a reason instead of letting it crash.

    Class attributes:
        name: registry name, also the prefix of metric names in policies (``name.metric``).
        title: human title for the report.
        description: one sentence on what the probe asks of the model.
        order: run order (lower first); cross-probe consumers run late.
        needs_gradients: skip for models without input gradients.
        needs_training: needs to retrain a copy of the architecture.
        metrics: every metric the probe can report, with its direction.
        budget_levels: what ``fast`` / ``standard`` / ``thorough`` mean for this probe.
        Options: the options dataclass (fields made with ``auditkit.options.option``); the
            constructor parses keyword options into ``self.opts``, an instance of it, with the
            budget's defaults filled in. Unknown or invalid options raise the one-line
            ``AuditkitInputError`` before any work.
        sizing: a ``auditkit.sizing.ProbeSizing`` that estimates this probe's work from its
            options and the measured model cost, and shrinks it when the scan would exceed
            its budget's time (None: the budget's work runs as declared).
        report_template: ``"package:relative/path.html.j2"``, a Jinja partial the HTML report
            renders inside this probe's section (variables ``probe``: the probe's audit.json
            entry, ``view``: its view dict); ``None`` for the generic section only.
        options: deprecated: the old ``{name: default}`` dict, kept only until every probe
            declares ``Options``; values reach the probe unvalidated in ``self.config``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    order: ClassVar[int] = 50
    needs_gradients: ClassVar[bool] = False
    needs_training: ClassVar[bool] = False
    metrics: ClassVar[dict[str, MetricSpec]] = {}
    budget_levels: ClassVar[dict[str, str]] = {}
    Options: ClassVar[type | None] = None
    report_template: ClassVar[str | None] = None
    sizing: ClassVar[ProbeSizing | None] = None
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        check_budget(budget)
        self.budget = budget
        if self.Options is not None:
            self.opts = parse_options(type(self), options, budget)
            self.config: dict[str, Any] = options_dict(self.opts)
            return
        # Compatibility for probes that still declare the old ``options`` dict.
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise AuditkitInputError(
                f"--set {self.name}.{unknown[0]}={options[unknown[0]]}: unknown option for "
                f"probe {self.name}; accepted: options {valid}"
            )
        self.opts = None
        self.config = {**self.options, **{k: _legacy_value(v) for k, v in options.items()}}

    def resolved_options(self) -> dict[str, Any]:
        """The options this probe runs with, as JSON-ready data (recorded in audit.json)."""
        if self.opts is not None:
            return options_dict(self.opts)
        return {
            k: jsonable(v)
            if v is None or isinstance(v, (bool, int, float, str, list, tuple))
            else f"<{type(v).__name__}>"
            for k, v in self.config.items()
        }

    def not_applicable(self, context: AuditContext) -> str | None:
        """What this probe applies to (e.g. ``"node classifiers"``) when the model in
        ``context`` is not of that kind, else None.

        Unlike ``skip_reason`` (the probe could apply but cannot run here), a probe that does
        not apply is recorded as skipped with ``details["not_applicable"]`` and the report lists
        it in one line under the scorecard instead of giving it a tile and a section.
        """
        return None

    def skip_reason(self, context: AuditContext) -> str | None:
        """Why this probe cannot run on this model/data, or None."""
        if self.needs_gradients and not context.adapter.supports_gradients:
            return f"{context.adapter.format} model exposes no input gradients"
        if self.needs_training and not hasattr(context.adapter, "model"):
            return f"{context.adapter.format} model cannot be re-initialized and trained"
        return None

    @abstractmethod
    def run(self, context: AuditContext) -> ProbeResult:
        """Audit the model in ``context`` and return what was found."""


def _legacy_value(value: Any) -> Any:
    """What the old ``--set`` parsing produced from a string: its JSON value, else the string."""
    if not isinstance(value, str):
        return value
    import json

    try:
        return json.loads(value)
    except ValueError:
        return value

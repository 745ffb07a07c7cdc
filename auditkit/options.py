"""Probe options: declared once as a typed dataclass, parsed in one place.

A probe declares its options as a frozen dataclass whose fields are made with :func:`option`
(type, default, per-budget defaults, bounds, accepted values, one-line meaning). One parser,
:func:`parse_options`, turns what a user wrote into a validated instance, whichever way it came:

- ``--set probe.key=value`` on the command line (strings),
- the policy file's ``[checks.<probe>]`` table (TOML values),
- ``auditkit.scan(..., options={"probe": {"key": value}})`` (Python values).

Every error is one line naming the option, the value and what is accepted, raised as
:class:`~auditkit.errors.AuditkitInputError` (exit 2) before any work::

    --set adversarial.steps=0: below the minimum; accepted: a whole number ≥ 1

Example:
    >>> @dataclass(frozen=True)
    ... class PGDOptions:
    ...     steps: int = option(20, "PGD steps per restart", minimum=1,
    ...                         budgets={"fast": 10, "standard": 20, "thorough": 100})
    ...     eps: float = option(0.1, "L-inf radius in input units", minimum=0.0, warn_above=1.0)
    >>> class PGDProbe(Probe):
    ...     name = "pgd"
    ...     Options = PGDOptions
    >>> parse_options(PGDProbe, {"steps": "50"}, "fast").steps
    50
    >>> PGDProbe(budget="fast").opts.steps   # what a probe sees: the budget's default
    10
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from auditkit.errors import AuditkitInputError

BUDGETS = ("fast", "standard", "thorough")
_META_KEY = "auditkit_option"
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")
# What the command line and TOML can produce; anything else came from Python code.
_PLAIN = (str, Path, bool, int, float, list, tuple, dict, _dt.date, _dt.time)


class OptionWarning(UserWarning):
    """A value inside the hard bounds but beyond the declared sensible range (``warn_above``)."""


@dataclass(frozen=True)
class OptionSpec:
    """What :func:`option` records about one field (read by the parser, ``probes --verbose``
    and the tests)."""

    meaning: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[Any, ...] | None = None
    budgets: Mapping[str, Any] | None = None
    warn_above: float | None = None
    path: bool = False
    data: bool = False


def option(
    default: Any,
    meaning: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    choices: tuple[Any, ...] | None = None,
    budgets: Mapping[str, Any] | None = None,
    warn_above: float | None = None,
    path: bool = False,
    data: bool = False,
) -> Any:
    """A dataclass field for a probe option.

    Args:
        default: the value when neither the user nor the budget sets one (immutable: use a tuple
            for sequences).
        meaning: one line for ``auditkit probes --verbose`` and the author's guide.
        minimum, maximum: hard bounds for numbers (and each element of a tuple); inclusive unless
            ``exclusive_minimum`` / ``exclusive_maximum``.
        choices: the accepted values of a ``str`` (or of each element of a tuple of ``str``);
            matched case-insensitively, stored in the spelling given here.
        budgets: per-budget defaults, e.g. ``{"fast": 10, "standard": 20, "thorough": 100}``.
        warn_above: a soft bound: a larger value is accepted with a one-line warning.
        path: the value names a file that must exist (checked when the options are parsed).
        data: the value names a data set: an existing file or folder, or a built-in data set
            name (``digits``, or one a plugin registers); from Python also a data object.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable: use a tuple instead of a list")
    spec = OptionSpec(
        meaning=meaning,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=exclusive_minimum,
        exclusive_maximum=exclusive_maximum,
        choices=tuple(choices) if choices is not None else None,
        budgets=dict(budgets) if budgets is not None else None,
        warn_above=warn_above,
        path=path,
        data=data,
    )
    return dataclasses.field(default=default, metadata={_META_KEY: spec})


# --- the declared type of a field ------------------------------------------------------
@dataclass(frozen=True)
class _Kind:
    """A field's type reduced to what the parser needs."""

    base: type  # bool | int | float | str
    sequence: bool = False
    optional: bool = False
    literal: tuple[Any, ...] | None = None

    def text(self) -> str:
        name = {bool: "bool", int: "int", float: "float", str: "str"}[self.base]
        if self.literal is not None:
            name = "|".join(str(v) for v in self.literal)
        if self.sequence:
            name = f"{name},…"
        return f"{name} | none" if self.optional else name


def _kind(annotation: Any, where: str) -> _Kind:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"{where}: unsupported option type {annotation!r}")
        annotation = args[0]
        origin = typing.get_origin(annotation)
    sequence = False
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{where}: tuple options are written tuple[X, ...]")
        sequence, annotation = True, args[0]
        origin = typing.get_origin(annotation)
    literal = None
    if origin is Literal:
        literal = typing.get_args(annotation)
        annotation = type(literal[0])
    if annotation not in (bool, int, float, str):
        raise TypeError(f"{where}: unsupported option type {annotation!r}")
    return _Kind(annotation, sequence, optional, literal)


@dataclass(frozen=True)
class OptionField:
    """One declared option: name, type, default, per-budget defaults and constraints."""

    name: str
    kind: _Kind
    default: Any
    spec: OptionSpec

    @property
    def choices(self) -> tuple[Any, ...] | None:
        return self.kind.literal if self.kind.literal is not None else self.spec.choices

    def default_for(self, budget: str) -> Any:
        budgets = self.spec.budgets or {}
        return budgets.get(budget, self.default)

    def accepted(self) -> str:
        """What the parser accepts, in words (the tail of every error message)."""
        kind, spec = self.kind, self.spec
        if kind.base is bool:
            text = "true or false"
        elif self.choices is not None:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif spec.path:
            text = "the path of an existing file"
        elif spec.data:
            text = "a data file or folder, or a built-in data set name"
        elif kind.base is str:
            text = "text"
        else:
            text = "a whole number" if kind.base is int else "a number"
            bounds = []
            if spec.minimum is not None:
                bounds.append(f"{'>' if spec.exclusive_minimum else '≥'} {spec.minimum:g}")
            if spec.maximum is not None:
                bounds.append(f"{'<' if spec.exclusive_maximum else '≤'} {spec.maximum:g}")
            if bounds:
                text += " " + " and ".join(bounds)
        if kind.sequence:
            text = f"a comma-separated list of {_plural(text)}"
        if kind.optional:
            text += ", or none"
        return text


def _plural(text: str) -> str:
    for single, many in (("a whole number", "whole numbers"), ("a number", "numbers"),
                         ("one of", "values from"), ("true or false", "true/false values"),
                         ("the path of an existing file", "paths"), ("text", "texts"),
                         ("a data file or folder", "data files or folders")):
        if text.startswith(single):
            return many + text[len(single):]
    return text


def option_fields(options_cls: type) -> list[OptionField]:
    """The declared options of an Options dataclass, in declaration order."""
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        raise TypeError(f"{options_cls!r} is not an options dataclass")
    hints = typing.get_type_hints(options_cls)
    fields = []
    for f in dataclasses.fields(options_cls):
        spec = f.metadata.get(_META_KEY) or OptionSpec(meaning="")
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{options_cls.__name__}.{f.name}: every option needs a default")
        fields.append(OptionField(f.name, _kind(hints[f.name], f"{options_cls.__name__}.{f.name}"),
                                  f.default, spec))
    return fields


# --- parsing ---------------------------------------------------------------------------
class _Invalid(Exception):
    """Why a value was refused (turned into the one-line error by the caller)."""


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(_shown(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if not isinstance(value, (int, float)) else f"{value!r}"


def error_message(probe: str, key: str, value: Any, why: str, accepted: str) -> str:
    """The one error style for every option, wherever it was written."""
    return f"--set {probe}.{key}={_shown(value)}: {why}; accepted: {accepted}"


def _scalar(value: Any, field: OptionField) -> Any:
    base, spec = field.kind.base, field.spec
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise _Invalid("not true or false")
    if base is str:
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # TOML and Python write an index or a numeric name as a number
        if not isinstance(value, str):
            raise _Invalid(f"expected text, got a {type(value).__name__}")
        text = value.strip()
        choices = field.choices
        if choices is not None:
            matches = [c for c in choices if str(c).lower() == text.lower()]
            if not matches:
                raise _Invalid("not an accepted value")
            return matches[0]
        return text
    # numbers
    if isinstance(value, bool):
        raise _Invalid("a true/false value is not a number")
    number: float | int
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if base is int and _looks_int(text) else float(text)
        except ValueError:
            raise _Invalid("not a whole number" if base is int else "not a number") from None
    elif isinstance(value, (int, float)) or hasattr(value, "__float__"):
        number = value if isinstance(value, (int, float)) else float(value)
    else:
        raise _Invalid(f"expected a number, got a {type(value).__name__}")
    if isinstance(number, float) and not math.isfinite(number):
        raise _Invalid("not a finite number")
    if base is int:
        if isinstance(number, float):
            if not number.is_integer():
                raise _Invalid("not a whole number")
            number = int(number)
    else:
        number = float(number)
    if field.choices is not None and number not in field.choices:
        raise _Invalid("not an accepted value")
    if spec.minimum is not None and (
        number < spec.minimum or (spec.exclusive_minimum and number == spec.minimum)
    ):
        raise _Invalid("below the minimum")
    if spec.maximum is not None and (
        number > spec.maximum or (spec.exclusive_maximum and number == spec.maximum)
    ):
        raise _Invalid("above the maximum")
    return number


def _looks_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _convert(value: Any, field: OptionField) -> Any:
    kind = field.kind
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
        if kind.optional:
            return None
        raise _Invalid("a value is required here")
    if kind.sequence:
        if isinstance(value, str):
            text = value.strip()
            if text[:1] + text[-1:] in ("[]", "()"):  # also accept "[0.1, 0.2]"
                text = text[1:-1]
            items: list[Any] = [v for v in (p.strip() for p in text.split(",")) if v]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        if not items:
            raise _Invalid("no values given")
        return tuple(_scalar(v, field) for v in items)
    if (field.spec.path or field.spec.data) and not isinstance(value, _PLAIN):
        return value  # the Python API may hand over a data object instead of a path
    converted = _scalar(value, field)
    if field.spec.path:
        target = Path(converted).expanduser()
        if not target.exists():
            raise _Invalid("no such file")
        if not target.is_file():
            raise _Invalid("not a regular file")
    if field.spec.data and not Path(converted).expanduser().exists():
        from auditkit.data.loaders import builtin_datasets

        if converted not in builtin_datasets():
            raise _Invalid("no such file, folder or built-in data set")
    return converted


def _warn_if_large(field: OptionField, value: Any, raw: Any, probe: str) -> None:
    limit = field.spec.warn_above
    if limit is None or value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, (int, float)) and v > limit for v in values):
        warnings.warn(
            f"--set {probe}.{field.name}={_shown(raw)}: larger than the usual ≤ {limit:g}; "
            "using it anyway",
            OptionWarning,
            stacklevel=3,
        )


def parse_options(probe_cls: Any, raw: Mapping[str, Any] | None, budget: str) -> Any:
    """Validated options for ``probe_cls`` (a Probe class with an ``Options`` dataclass).

    Args:
        probe_cls: the probe class (its ``name`` goes into messages, its ``Options`` is the
            schema).
        raw: ``{option: value}``; values may be strings as typed on the command line, TOML
            values or Python values.
        budget: fills every option the user left out with its per-budget default.

    Raises:
        AuditkitInputError: one line naming the option, the value and what is accepted.
    """
    options_cls = probe_cls.Options
    name = getattr(probe_cls, "name", "") or probe_cls.__name__
    fields = {f.name: f for f in option_fields(options_cls)}
    raw = dict(raw or {})
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise AuditkitInputError(error_message(
            name, unknown[0], raw[unknown[0]], f"unknown option for probe {name}",
            "options " + (", ".join(fields) or "(none)"),
        ))
    values = {}
    for key, field in fields.items():
        if key not in raw:
            values[key] = field.default_for(budget)
            continue
        try:
            values[key] = _convert(raw[key], field)
        except _Invalid as why:
            raise AuditkitInputError(
                error_message(name, key, raw[key], str(why), field.accepted())
            ) from None
        _warn_if_large(field, values[key], raw[key], name)
    return options_cls(**values)


def options_dict(opts: Any) -> dict[str, Any]:
    """The resolved options as JSON-ready data (tuples become lists, data objects their repr)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(opts):
        value = getattr(opts, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            value = f"<{type(value).__name__}>"
        out[f.name] = value
    return out


def describe_options(probe_cls: Any) -> list[dict[str, Any]]:
    """Each option's name, type, default (per budget), what is accepted and what it means.

    Read by ``auditkit probes --verbose``; probes still declaring the old ``options`` dict get
    their names and defaults only.
    """
    options_cls = getattr(probe_cls, "Options", None)
    if options_cls is None:
        return [
            {"name": key, "type": type(default).__name__ if default is not None else "?",
             "default": default, "budget_defaults": {}, "accepted": "?", "meaning": ""}
            for key, default in (getattr(probe_cls, "options", None) or {}).items()
        ]
    rows = []
    for field in option_fields(options_cls):
        per_budget = {b: field.default_for(b) for b in BUDGETS}
        varies = len({repr(v) for v in per_budget.values()}) > 1
        rows.append({
            "name": field.name,
            "type": field.kind.text(),
            "default": field.default,
            "budget_defaults": per_budget if varies else {},
            "accepted": field.accepted(),
            "meaning": field.spec.meaning,
            "warn_above": field.spec.warn_above,
        })
    return rows


def format_option(probe: str, row: Mapping[str, Any]) -> str:
    """One line of ``probes --verbose`` for an option."""
    if row["accepted"] == "?":  # a probe still declaring the old options dict
        return f"    option    --set {probe}.{row['name']}=… (default {_shown(row['default'])})"
    if row["budget_defaults"]:
        default = ", ".join(f"{b} {_shown(v)}" for b, v in row["budget_defaults"].items())
    else:
        default = _shown(row["default"])
    meaning = f": {row['meaning']}" if row["meaning"] else ""
    soft = f"; usually ≤ {row['warn_above']:g}" if row.get("warn_above") is not None else ""
    return (
        f"    option    --set {probe}.{row['name']}=<{row['type']}> (default {default}; "
        f"accepted: {row['accepted']}{soft}){meaning}"
    )


__all__ = [
    "BUDGETS",
    "OptionField",
    "OptionSpec",
    "OptionWarning",
    "describe_options",
    "error_message",
    "format_option",
    "option",
    "option_fields",
    "options_dict",
    "parse_options",
]

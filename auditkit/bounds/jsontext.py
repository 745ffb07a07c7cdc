"""JSON and TOML text from files, parsed with bounded depth, size and counts.

Python's ``json`` recurses once per nesting level: ten thousand ``[`` end in a
``RecursionError`` (an internal error, exit 3) and ``NaN``/``Infinity`` are accepted as
numbers that later poison every comparison. ``loads`` measures the nesting in one linear scan
before parsing, limits the text's size and the number of values, and refuses non-finite
numbers, each in one line naming the file and what to fix.
"""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

from auditkit.errors import AuditkitInputError, one_line

#: Deepest nesting any auditkit file needs (audit.json nests about 8 levels).
MAX_DEPTH = 64
#: Largest JSON/TOML text read (an audit.json of a big scan is a few MB).
MAX_BYTES = 64 << 20
#: Most values (objects, arrays, strings, numbers) in one text.
MAX_VALUES = 5_000_000


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NotFinite(name)


def nesting_depth(text: str | bytes) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, strings skipped (one linear pass)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _count_values(value: Any, limit: int) -> int:
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


class JSONBoundsError(ValueError):
    """JSON text beyond the bounds, or not valid: the reason, without file or fix."""


def parse(
    text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES,
    max_values: int = MAX_VALUES, allow_nan: bool = False,
) -> Any:
    """``json.loads`` with bounds; raises ``JSONBoundsError`` (a ``ValueError``) with the reason.

    Callers that already turn ``ValueError`` into their own one-line message (embedded
    metadata, architecture headers) call this; others call ``loads``.
    """
    size = len(text)
    if size > max_bytes:
        raise JSONBoundsError(f"{size} bytes of JSON is more than auditkit reads ({max_bytes})")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JSONBoundsError(f"JSON nested {depth} levels deep (at most {max_depth})")
    try:
        if allow_nan:
            value = json.loads(text)
        else:
            value = json.loads(text, parse_constant=_refuse_constant)
    except _NotFinite as exc:
        raise JSONBoundsError(
            f"the JSON holds {exc} (not a number), which auditkit does not accept"
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise JSONBoundsError(f"not valid JSON ({one_line(exc, 120)})") from None
    if _count_values(value, max_values) > max_values:
        raise JSONBoundsError(f"the JSON holds more than {max_values} values")
    return value


def loads(text: str | bytes, *, what: str, fix: str, **bounds: Any) -> Any:
    """``parse`` whose refusal is one line: ``{what}: {problem}; {fix}`` (exit 2).

    Example:
        >>> loads('{"a": [1, 2]}', what="audit.json", fix="re-run the scan")
        {'a': [1, 2]}
    """
    try:
        return parse(text, **bounds)
    except JSONBoundsError as exc:
        raise AuditkitInputError(f"{what}: {exc}; {fix}") from None


def _toml_depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def toml_loads(text: str, *, what: str, fix: str, max_depth: int = MAX_DEPTH,
               max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """``tomllib.loads`` with bounds: size, depth (``tomllib`` recurses on nested inline
    arrays/tables) and no NaN/infinity."""
    if len(text) > max_bytes:
        raise AuditkitInputError(
            f"{what}: {len(text)} bytes of TOML is more than auditkit reads ({max_bytes}); {fix}"
        )
    # tomllib is pure Python: nesting beyond the interpreter's recursion limit is a
    # RecursionError (caught below), never a crash; the depth is measured on the result.
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise AuditkitInputError(f"{what}: TOML nested too deeply; {fix}") from None
    if _toml_depth(value) > max_depth:
        raise AuditkitInputError(f"{what}: TOML nested more than {max_depth} levels; {fix}")
    _refuse_nonfinite(value, what, fix)
    return value


def _refuse_nonfinite(value: Any, what: str, fix: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise AuditkitInputError(
                f"{what}: the file holds {item} (not a number), which auditkit does not accept; "
                f"{fix}"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)

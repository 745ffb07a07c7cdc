"""What ``auditkit generate --help`` says about each plugin generator, without importing it.

A generator is an entry point ``fn(argv) -> exit code`` (``auditkit.generators`` group). Loading
one imports its plugin (and torch), so the one-line summaries are read from the source instead:
the ``description=`` of the argument parser it builds (directly or through a helper in the same
module, as users read it in its ``--help``), else the function's docstring.
"""

from __future__ import annotations

import ast
import importlib.util
from importlib import metadata
from pathlib import Path

GROUP = "auditkit.generators"


def _source(module: str) -> Path | None:
    """The file of ``module`` found without executing it or its package."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    if not rest:
        return Path(spec.origin)
    base = Path(spec.origin).parent.joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _description(tree: ast.Module, name: str) -> str:
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if function is None:
        return ""
    doc = ast.get_docstring(function)
    return _parser_description(tree, name) or (doc.strip().splitlines()[0] if doc else "")


def _parser_description(tree: ast.Module, name: str, seen: frozenset[str] = frozenset()) -> str:
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if function is None or name in seen:
        return ""
    called = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "description":
                    text = _text(keyword.value)
                    if text:
                        return text
            if isinstance(node.func, ast.Name):
                called.append(node.func.id)
    for other in called:  # e.g. ``main`` calling ``parser()``
        text = _parser_description(tree, other, seen | {name})
        if text:
            return text
    return ""


def _text(node: ast.AST) -> str:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return ""
    return " ".join(str(value).split()) if isinstance(value, str) else ""


def summary(value: str) -> str:
    """One line about the generator at ``module:function`` (empty when none can be read)."""
    module, _, function = value.partition(":")
    path = _source(module)
    if path is None or not function:
        return ""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ""
    return _description(tree, function.split(".")[0])


def listing() -> dict[str, str]:
    """Installed generators, name → one-line summary, in name order."""
    entries = {e.name: e.value for e in metadata.entry_points(group=GROUP)}
    return {name: summary(value) for name, value in sorted(entries.items())}

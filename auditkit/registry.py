"""Plugin discovery through entry points. Built-ins register exactly as third parties do.

Groups: ``auditkit.probes`` (Probe classes), ``auditkit.datasets`` (data set builders),
``auditkit.generators`` (``auditkit generate NAME``), ``auditkit.architectures`` (network factories
that architecture files name, see ``auditkit.loading.archfile``), ``auditkit.adapters`` (adapter factories
those files name). A plugin that fails to load becomes a
visible errored row, never a crash.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

PROBE_GROUP = "auditkit.probes"
GENERATOR_GROUP = "auditkit.generators"
ARCHITECTURE_GROUP = "auditkit.architectures"
ADAPTER_GROUP = "auditkit.adapters"


@dataclass(frozen=True)
class PluginEntry:
    """One discovered plugin: what it is, which distribution provided it, and whether it loads."""

    name: str
    group: str
    value: str
    distribution: str
    version: str
    obj: Any = None
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None and self.obj is not None


OWN_DISTRIBUTION = "auditkit"


def _distribution_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "?"


_SCANNED: dict[str, tuple[Any, metadata.EntryPoints]] = {}


def _mtime(entry: str) -> int | None:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return None


def _group_entry_points(group: str) -> metadata.EntryPoints:
    """The group's installed entry points, scanned once while ``sys.path`` and its folders are
    unchanged.

    A scan reads every distribution's metadata (~15 ms with 170 installed) and a scan asks for
    the same group several times (an architecture file: its check, its sandbox trial, its load).
    An install or removal changes the folder it lands in (its mtime), a plugin put on
    ``sys.path`` at run time changes the path, and a replaced ``metadata.entry_points`` (tests
    hiding a plugin) is seen too.
    """
    key = (group, metadata.entry_points, tuple(sys.path), tuple(_mtime(p) for p in sys.path))
    cached = _SCANNED.get(group)
    if cached is None or cached[0] != key:
        cached = _SCANNED[group] = (key, metadata.entry_points(group=group))
    return cached[1]


def iter_entry_points(group: str) -> Iterator[metadata.EntryPoint]:
    """One entry point per name. An editable and a regular install can list the same entry;
    when a plugin reuses a built-in's name the built-in wins, whatever the order of sys.path."""
    chosen: dict[str, metadata.EntryPoint] = {}
    for ep in _group_entry_points(group):
        if ep.name not in chosen or (
            _distribution_name(ep) == OWN_DISTRIBUTION
            and _distribution_name(chosen[ep.name]) != OWN_DISTRIBUTION
        ):
            chosen[ep.name] = ep
    yield from chosen.values()


def discover(group: str) -> dict[str, PluginEntry]:
    """Load every entry point of ``group``; failures are recorded, not raised."""
    found: dict[str, PluginEntry] = {}
    for ep in iter_entry_points(group):
        dist = getattr(ep, "dist", None)
        dist_name = _distribution_name(ep)
        version = dist.version if dist is not None else "?"
        try:
            # A plugin's imports may warn (PyG scripts modules with the deprecated torch.jit):
            # nothing from a third party reaches the terminal before auditkit's own line.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj, error = ep.load(), None
        except Exception as exc:  # a broken plugin must not take auditkit down
            obj, error = None, f"{type(exc).__name__}: {exc}"
        found[ep.name] = PluginEntry(ep.name, group, ep.value, dist_name, version, obj, error)
    return found


def discover_probes() -> dict[str, PluginEntry]:
    """Probe classes by name, in run order (``Probe.order``, then name)."""
    entries = discover(PROBE_GROUP)

    def key(item: tuple[str, PluginEntry]) -> tuple[int, str]:
        return (getattr(item[1].obj, "order", 50) if item[1].loaded else 99, item[0])

    return dict(sorted(entries.items(), key=key))


def discover_generators() -> dict[str, PluginEntry]:
    return discover(GENERATOR_GROUP)

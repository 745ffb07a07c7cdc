"""Experiment trackers and model registries, reached only through plugins.

The core knows the URI schemes a tracker owns (``models:/``, ``runs:/``) so that, with the plugin
missing, ``auditkit scan models:/demo/1``, ``auditkit diff runs:/A runs:/B`` and ``--mlflow`` exit 2
with one line naming what to install, instead of "no such file". Everything else (the tracker's
client, its loaders, its logging) lives in the plugin, found under the ``auditkit.trackers`` entry
point group: a module with ``load_model_uri``, ``fetch_audit``, ``log_audit`` and
``set_tracking_uri``.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError

ENTRY_POINT_GROUP = "auditkit.trackers"
# scheme prefix -> tracker name; the plugin that serves each, and how to get it.
URI_SCHEMES = {"models:/": "mlflow", "runs:/": "mlflow"}
INSTALL_HINT = {
    "mlflow": "install the auditkit-mlflow plugin (pip install auditkit-mlflow, or pip install -e "
              "plugins/mlflow from the auditkit repository)",
}


# Flags whose value may be left out: ``--mlflow`` alone means the tracker's default store.
OPTIONAL_VALUES = {"--mlflow": "default"}


def fill_optional_value(args: list[str]) -> list[str]:
    """``scan m.pt2 --mlflow`` → ``scan m.pt2 --mlflow default`` (click options take a value
    or none, not either), when the flag ends the line or another option follows it."""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out


def uri_tracker(ref: str | Path | Any) -> str | None:
    """The tracker owning ``ref`` (``models:/name/3`` → ``"mlflow"``), None for a plain path."""
    if not isinstance(ref, (str, Path)):
        return None
    text = str(ref)
    for prefix, name in URI_SCHEMES.items():
        # pathlib folds "runs://x" to "runs:/x"; both spellings name the same run.
        if text.startswith(prefix):
            return name
    return None


def tracker(name: str, needed_for: str) -> Any:
    """The plugin module serving tracker ``name``, or exit-2 input error naming the install."""
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                return entry.load()
            except ImportError as exc:
                raise AuditkitInputError(
                    f"{needed_for}: the {name} plugin is installed but cannot be imported "
                    f"({exc}); {INSTALL_HINT.get(name, 'reinstall it')}"
                ) from None
    raise AuditkitInputError(
        f"{needed_for}: needs the {name} plugin, which is not installed; "
        f"{INSTALL_HINT.get(name, f'install a plugin for {name}')}"
    )


def load_model_uri(ref: str | Path, **kwargs: Any) -> Any:
    """A ``LoadedModel`` for a registry URI, loaded by the tracker's plugin."""
    name = uri_tracker(ref)
    assert name is not None, ref
    return tracker(name, str(ref)).load_model_uri(str(ref), **kwargs)


def fetch_audit(ref: str | Path, dest: Path) -> Path:
    """Download the audit.json a run logged into folder ``dest``; its local path."""
    name = uri_tracker(ref)
    assert name is not None, ref
    return Path(tracker(name, str(ref)).fetch_audit(str(ref), dest))


__all__ = ["ENTRY_POINT_GROUP", "URI_SCHEMES", "fetch_audit", "load_model_uri", "tracker",
           "uri_tracker"]

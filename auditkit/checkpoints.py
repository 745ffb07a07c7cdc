"""Checkpoints: each finished probe's result kept in ``--out``, reused only when still true.

A stored result is reused when the model, data, seed, budget, options, the probe's own code
(``_code_key``) and every upstream result it read (``_watching_reads`` records which) are the
same; anything else runs again. Split from the pipeline, which opens one ``_Checkpoint`` per
scan and watches each probe's reads of the shared context.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from auditkit._version import __version__
from auditkit.context import AuditContext
from auditkit.probes.base import Probe
from auditkit.results import ProbeResult


class _ReadLog:
    """Which entries of ``context.results`` / ``context.artifacts`` one probe looked at."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.names: set[str] = set()
        self.everything = False
        self.closed = False  # the probe finished: the runner's own reads are not its inputs

    def note(self, name: object) -> None:
        if not self.closed and isinstance(name, str) and name != self.owner:
            self.names.add(name)

    def note_everything(self) -> None:
        if not self.closed:
            self.everything = True


class _WatchedDict(dict):
    """A dict that records lookups: a probe's result depends on the upstream entries it read.

    Keyed access (``[]``, ``get``, ``in``, ``setdefault``, ``pop``) records that key, present or
    not (absence is an input too: bias skips its per-group robust accuracy without adversarial);
    anything that sees the whole mapping (iteration, ``len``, views, copies) records all of it.
    """

    def __init__(self, data: Mapping[str, Any], log: _ReadLog) -> None:
        super().__init__(data)
        self._log = log

    def _whole(self) -> None:
        self._log.note_everything()

    def __getitem__(self, key: Any) -> Any:
        self._log.note(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._log.note(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._log.note(key)
        return super().__contains__(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._log.note(key)
        return super().setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self._log.note(key)
        return super().pop(key, *default)

    def __iter__(self) -> Iterator[Any]:
        self._whole()
        return super().__iter__()

    def __len__(self) -> int:
        self._whole()
        return super().__len__()

    def keys(self) -> Any:
        self._whole()
        return super().keys()

    def values(self) -> Any:
        self._whole()
        return super().values()

    def items(self) -> Any:
        self._whole()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._whole()
        return dict(super().items())

    def popitem(self) -> Any:
        self._whole()
        return super().popitem()

    def __eq__(self, other: object) -> bool:
        self._whole()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # a dict, unhashable like any other

    def __repr__(self) -> str:
        self._whole()
        return super().__repr__()


@contextmanager
def _watching_reads(context: AuditContext, owner: str) -> Iterator[_ReadLog]:
    """Record which other probes' results ``owner`` reads while it runs."""
    log = _ReadLog(owner)
    results, artifacts = context.results, context.artifacts
    context.results = _WatchedDict(results, log)
    context.artifacts = _WatchedDict(artifacts, log)
    try:
        yield log
    finally:
        log.closed = True
        # Plain dicts again, with whatever the probe added (its own artifacts).
        context.results = dict.copy(context.results)
        context.artifacts = dict.copy(context.artifacts)


def _upstream_identity(context: AuditContext, name: str) -> str | None:
    """What probe ``name`` left for later probes, as a short hash (None: it did not run).

    The result is hashed as stored (JSON, without its wall time), so a result served from a
    checkpoint has the same identity as the run that produced it; the artifact names tell a
    run whose per-example arrays could not be restored from one that has them.
    """
    result = dict.get(context.results, name)
    shared = dict.get(context.artifacts, name)
    if result is None and shared is None:
        return None
    stored = result.to_dict() if result is not None else None
    if stored is not None:
        stored.pop("seconds", None)
    text = json.dumps([stored, sorted(shared) if shared else None], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _present(context: AuditContext, owner: str) -> list[str]:
    return sorted((set(dict.keys(context.results)) | set(dict.keys(context.artifacts))) - {owner})


def _upstream(context: AuditContext, log: _ReadLog) -> dict[str, Any]:
    names = set(log.names)
    if log.everything:
        names |= set(_present(context, log.owner))
    return {
        "everything": log.everything,
        "present": _present(context, log.owner) if log.everything else None,
        "identities": {n: _upstream_identity(context, n) for n in sorted(names)},
    }


def _same_upstream(context: AuditContext, owner: str, stored: Mapping[str, Any]) -> bool:
    if stored.get("everything") and stored.get("present") != _present(context, owner):
        return False
    identities = stored.get("identities")
    if not isinstance(identities, Mapping):
        return False
    return all(_upstream_identity(context, n) == v for n, v in identities.items())


_DIGESTS: dict[tuple, str] = {}


def _source_digest(location: str) -> str:
    """A hash of a Python file, or of every Python file under a folder (names and bytes, in a
    fixed order). Computed again only when a file's size or modification time changed."""
    root = Path(location)
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    stamp = []
    for path in files:
        try:
            info = path.stat()
            stamp.append((str(path), info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append((str(path), 0, -1))
    key = (location, tuple(stamp))
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() if root.is_dir() else b"")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"?")
        _DIGESTS[key] = digest.hexdigest()[:16]
    return _DIGESTS[key]


def _code_key(probe: Probe) -> list[str]:
    """The code that computed a probe's result: auditkit's own source and, for a probe from
    elsewhere, its top-level package's (a plugin; every folder of a namespace package), else
    its module file's, else its class's source. The version string stays the same across
    development builds, so a checkpoint written by other code is never reused as if this code
    had computed it."""
    import inspect
    import sys

    keys = [_source_digest(str(Path(__file__).resolve().parent))]
    cls = type(probe) if not isinstance(probe, type) else probe
    module = sys.modules.get(cls.__module__)
    top = (getattr(module, "__package__", None) or "").split(".")[0]
    if top == "auditkit":
        return keys
    owner = sys.modules.get(top) if top else None
    if getattr(owner, "__file__", None):
        places = [str(Path(owner.__file__).resolve().parent)]
    else:
        places = [str(Path(p).resolve()) for p in getattr(owner, "__path__", None) or []]
    if not places and getattr(module, "__file__", None):
        places = [str(Path(module.__file__).resolve())]
    keys += [_source_digest(place) for place in places]
    if not places:  # python -c, a notebook: the class's own source where it can be read
        try:
            keys.append(hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()[:16])
        except (OSError, TypeError):
            keys.append(f"{cls.__module__}.{cls.__qualname__}")
    return keys


class _Checkpoint:
    """Finished probe results kept on disk so ``--resume`` never recomputes them.

    The directory is keyed by everything that decides a probe's inputs (see ``_checkpoint_key``).
    Each file also records the probe's own configuration and the upstream results it read
    (other probes' entries in ``context.results`` / ``context.artifacts``); a probe configured
    differently, or one that would now see different upstream results, is run again.

    Files are written whenever a directory is given (an interrupted run keeps what finished) and
    read only when ``read`` is set (``--resume``).
    """

    def __init__(self, directory: Path | None, key: str, *, read: bool) -> None:
        self.directory = directory / ".auditkit-checkpoint" / key if directory else None
        self.read = read and self.directory is not None

    @staticmethod
    def _config_key(probe: Probe) -> str:
        text = json.dumps(
            [getattr(probe, "budget", None), getattr(probe, "config", {}), _code_key(probe)],
            sort_keys=True, default=repr,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def load(self, probe: Probe, context: AuditContext) -> ProbeResult | None:
        """The stored result of ``probe``, or None when it must run (again)."""
        if not self.read or self.directory is None:
            return None
        path = self.directory / f"{probe.name}.json"
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("probe_config") != self._config_key(probe):
                return None
            if not _same_upstream(context, probe.name, stored["upstream"]):
                return None
            result = ProbeResult.from_dict(stored["result"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # a damaged checkpoint is recomputed, never trusted
        return result if result.status != "error" else None

    def load_artifacts(self, probe: Probe) -> dict[str, Any] | None:
        """Per-example arrays the probe shared with later probes (numbers only, no pickle)."""
        path = self.directory / f"{probe.name}.artifacts.npz" if self.directory else None
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k].item() if archive[k].ndim == 0 else archive[k]
                        for k in archive.files}
        except (OSError, ValueError):
            return None

    def save(
        self,
        probe: Probe,
        result: ProbeResult,
        artifacts: Mapping[str, Any] | None,
        upstream: Mapping[str, Any],
    ) -> None:
        if self.directory is None or result.status == "error":
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        shared = self.directory / f"{probe.name}.artifacts.npz"
        shared.unlink(missing_ok=True)  # never pair a new result with an older run's arrays
        if artifacts:
            # Cross-probe consumers (bias reads adversarial/calibration per-example results) must
            # see the same inputs on a resumed run as on the original one.
            arrays = {k: np.asarray(v) for k, v in artifacts.items()}
            if all(a.dtype != object for a in arrays.values()):
                tmp_shared = shared.with_suffix(".tmp")
                with open(tmp_shared, "wb") as fh:
                    np.savez(fh, **arrays)
                tmp_shared.replace(shared)
        path = self.directory / f"{probe.name}.json"
        tmp = path.with_suffix(".json.tmp")
        payload = {
            "probe_config": self._config_key(probe),
            "upstream": dict(upstream),
            "result": result.to_dict(),
        }
        tmp.write_text(json.dumps(payload, allow_nan=False), encoding="utf-8")
        tmp.replace(path)  # atomic: an interrupted run never leaves half a checkpoint


def _checkpoint_key(
    context: AuditContext,
    model: Mapping[str, Any],
    data_fingerprint: str,
    options: Mapping[str, Mapping[str, Any]] | None,
) -> str:
    """Everything that decides what a probe sees, hashed.

    The model file's hash alone is not enough: the same file audited with another --std,
    --input-range or device computes other numbers. The adapter's settings are part of the key,
    and so is a hash of the clean logits, which catches whatever else changes the model's outputs
    (another --arch for the same weights, an in-memory model without a file). The auditkit
    version is included because a new version may compute a probe differently.
    """
    adapter = context.adapter
    settings = {
        "format": adapter.format,
        "input_shape": list(adapter.input_shape),
        "input_range": list(adapter.input_range) if adapter.input_range else None,
        "mean": list(getattr(adapter, "mean", None) or []) or None,
        "std": list(getattr(adapter, "std", None) or []) or None,
        "output_kind": adapter.diagnostics.output_kind,
        "stochastic": adapter.diagnostics.stochastic,
        "supports_gradients": adapter.supports_gradients,
        "num_classes": adapter.num_classes,
        "device": adapter.device.type,
    }
    logits = hashlib.sha256(context.clean_logits.contiguous().numpy().tobytes()).hexdigest()
    text = json.dumps(
        [__version__, model.get("sha256"), settings, logits, data_fingerprint, context.seed,
         context.budget, sorted((options or {}).items())],
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]

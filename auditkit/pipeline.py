"""Run probes over a shared context: one clean forward pass, isolation, seeds, checkpoints."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit import errors
from auditkit._version import __version__
from auditkit.adapters.base import ModelAdapter
from auditkit.context import AuditContext, derive_seed, diagnostic_sample_size
from auditkit.data.core import AuditData, make_splits
from auditkit.errors import AuditkitInputError
from auditkit.probes.base import Probe, check_budget
from auditkit.progress import Progress
from auditkit.registry import discover_probes
from auditkit.results import AuditResult, ProbeResult, compute_verdict

DEFAULT_SEED = 0


def describe_splits(splits: Mapping[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Record the split rule, sizes and an index hash (the indices follow from the seed)."""
    return {
        "rule": "seeded permutation (numpy default_rng(seed)), first 30% → calibration",
        "seed": seed,
        **{
            name: {"n": int(len(idx)), "sha256": hashlib.sha256(idx.tobytes()).hexdigest()[:16]}
            for name, idx in splits.items()
        },
    }


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block with its own seeds and leave the caller's global RNG states as they were.

    Probes seed the global generators (dropout and some libraries draw from them); an audit
    called from a user's training script must not change what that script draws next.
    """
    import random

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _environment(adapter: ModelAdapter, seed: int) -> dict[str, Any]:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(adapter.device),
        "seed": seed,
        "threads": torch.get_num_threads(),
    }
    if adapter.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(adapter.device)
    from auditkit import distributed

    if distributed.state().active:
        env["world_size"] = distributed.state().world_size
        env["backend"] = distributed.state().backend
    return env


ProbeSpec = str | Probe | type[Probe]


def select_probes(
    names: Sequence[ProbeSpec] | None,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[list[Probe], list[ProbeResult]]:
    """Instantiate the requested probes; plugins that fail to load become error results.

    ``names`` holds registry names and, for the Python API and tests, ``Probe`` instances or
    subclasses (used as given, without a registry lookup).
    """
    check_budget(budget)
    entries = discover_probes()
    wanted: list[ProbeSpec] = list(dict.fromkeys(names)) if names else list(entries)
    direct = {_spec_name(s) for s in wanted if not isinstance(s, str)}
    unknown = [n for n in wanted if isinstance(n, str) and n not in entries]
    if unknown:
        raise AuditkitInputError(
            f"--probes {','.join(unknown)}: unknown probe (available: {', '.join(entries)})"
        )
    options = dict(options or {})
    stray = [n for n in options if n not in entries and n not in direct]
    if stray:
        raise AuditkitInputError(
            f"--set {stray[0]}.…: unknown probe {stray[0]!r} (available: {', '.join(entries)})"
        )
    probes, broken = [], []
    for spec in wanted:
        if isinstance(spec, Probe):
            probes.append(spec)
            continue
        if isinstance(spec, str):
            entry = entries[spec]
            name, cls = spec, entry.obj
            if not entry.loaded:
                broken.append(_broken(name, f"plugin failed to load: {entry.error}"))
                continue
        else:
            name, cls = _spec_name(spec), spec
        if not (isinstance(cls, type) and issubclass(cls, Probe)):
            broken.append(_broken(name, f"plugin is not a Probe subclass: {cls!r}"))
            continue
        try:
            probes.append(cls(budget=budget, **dict(options.get(name, {}))))
        except AuditkitInputError:
            raise  # unknown or invalid options are the user's to fix (exit 2)
        except Exception as exc:  # a plugin's constructor must not take the audit down
            broken.append(_broken(name, f"probe failed to start: {type(exc).__name__}: {exc}"))
    return probes, broken


def _spec_name(spec: Probe | type[Probe]) -> str:
    return str(getattr(spec, "name", "") or getattr(spec, "__name__", type(spec).__name__))


def _broken(name: str, message: str) -> ProbeResult:
    return ProbeResult(name=name, status="error", error=message, summary=message)


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


def run_probe(probe: Probe, context: AuditContext, *, debug: bool = False) -> ProbeResult:
    """Run one probe in isolation: an exception becomes ``status: error``, never a crash.

    The result records the options the probe ran with and its report partial, whatever
    happened, so audit.json says how every probe was configured.
    """
    from dataclasses import replace

    started = time.perf_counter()
    recorded = {
        "options": probe.resolved_options(),
        "report_template": getattr(probe, "report_template", None),
    }
    try:
        reason = probe.skip_reason(context)
        if reason:
            return ProbeResult(
                name=probe.name, status="skipped", skip_reason=reason, summary=reason, **recorded
            )
        seed_everything(derive_seed(context.seed, probe.name))
        result = probe.run(context)
        if not isinstance(result, ProbeResult):
            raise TypeError(f"run() returned a {type(result).__name__}, not a ProbeResult")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if debug:
            raise
        message = f"{type(exc).__name__}: {exc}"
        return ProbeResult(
            name=probe.name,
            status="error",
            error=message,
            summary=f"the probe crashed: {message}",
            details={"traceback": traceback.format_exc(limit=8)},
            seconds=round(time.perf_counter() - started, 4),
            **recorded,
        )
    # Rounded here, as audit.json stores it, so a result survives a JSON round trip unchanged.
    seconds = result.seconds or (time.perf_counter() - started)
    return replace(
        result, name=probe.name, seconds=round(float(seconds), 4),
        metric_info={**declared_metric_info(probe, result.metrics), **result.metric_info},
        options=result.options or recorded["options"],
        report_template=result.report_template or recorded["report_template"],
    )


def declared_metric_info(
    probe: Probe | type[Probe], metrics: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """What ``probe`` declares (direction, description) about each metric it reported; stored
    in audit.json so the report explains every metric from the JSON alone."""
    return {
        metric: {"direction": spec.direction, "description": spec.description}
        for metric, spec in getattr(probe, "metrics", {}).items()
        if metric in metrics
    }


def build_context(
    adapter: ModelAdapter,
    data: AuditData,
    *,
    seed: int = DEFAULT_SEED,
    budget: str = "standard",
    progress: Progress | None = None,
) -> AuditContext:
    """Validate model against data, diagnose the adapter and do the one shared clean pass.

    Probe tests use this directly: ``probe.run(build_context(adapter, data, budget="fast"))``.
    """
    if tuple(data.input_shape) != tuple(adapter.input_shape):
        raise AuditkitInputError(shape_mismatch_message(data, adapter.input_shape))
    if not len(data):
        raise AuditkitInputError(f"data {data.name}: no examples to audit")
    # The one label check (loaders only check that labels are integers): checked before any
    # forward pass, since an out-of-range label would crash the gradient check.
    if int(data.y.min()) < 0:
        raise AuditkitInputError(
            f"data {data.name} has label {int(data.y.min())}; labels must be class indices "
            "0..K-1"
        )
    if int(data.y.max()) >= adapter.num_classes:
        raise AuditkitInputError(
            f"data {data.name} has label {int(data.y.max())} but the model has only "
            f"{adapter.num_classes} outputs; check --data and the model's classes"
        )
    # The adapter is diagnosed on the first examples (output kind, randomness, gradients).
    sample = data.x[: min(len(data), diagnostic_sample_size(data.input_shape))]
    if hasattr(adapter, "diagnose"):
        adapter.diagnose(sample, data.y[: len(sample)])

    from auditkit import distributed

    # The single shared clean pass (split across ranks under torchrun, gathered on each).
    clean_logits = distributed.predict_logits(adapter, data.x)
    if clean_logits.ndim != 2 or clean_logits.shape != (len(data), adapter.num_classes):
        raise AuditkitInputError(
            f"model returns outputs of shape {tuple(clean_logits.shape)} for {len(data)} "
            f"examples; expected ({len(data)}, {adapter.num_classes})"
        )
    # NaN logits would turn every metric into NaN (or a silently wrong number) downstream.
    broken = int((~torch.isfinite(clean_logits)).any(dim=1).sum())
    if broken:
        raise AuditkitInputError(
            f"the model returns NaN/inf logits for {broken} of {len(data)} audit examples; "
            "check normalization (--mean/--std) and the model"
        )
    context = AuditContext(
        adapter=adapter,
        data=data,
        seed=seed,
        budget=budget,
        splits=make_splits(len(data), seed),
        clean_logits=clean_logits,
        progress=progress or Progress(False),
    )
    return context


def shape_mismatch_message(data: AuditData, model_shape: Sequence[int]) -> str:
    """The one-line error for data whose examples do not have the model's input shape.

    For a table it points at ``--keep-sensitive-features`` when the widths differ by exactly
    the sensitive columns (``api.build_adapter`` reports the same mismatch the same way).
    """
    hint: dict[str, Any] = {}
    if data.feature_names is not None and data.groups:
        columns = list(data.groups)
        hint = {
            "sensitive": columns,
            "sensitive_kept": all(c in data.feature_names for c in columns),
        }
    return errors.shape_mismatch(tuple(data.input_shape), tuple(model_shape), **hint)


def run_audit(
    adapter: ModelAdapter,
    data: AuditData,
    *,
    probes: Sequence[ProbeSpec] | None = None,
    budget: str = "standard",
    seed: int = DEFAULT_SEED,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    model_info: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool | None = None,
    debug: bool = False,
    max_minutes: float | None = None,
    size_to_clock: bool = True,
    cost: Any = None,
) -> AuditResult:
    """Audit ``adapter`` on ``data`` with the selected probes; gates are applied by the caller.

    Args:
        probes: registry names (default: every installed probe); ``Probe`` instances or
            subclasses are used as given.
        checkpoint_dir: write each finished probe's result there (under
            ``.auditkit-checkpoint/``), so an interrupted audit loses only the probe it was in.
        resume: reuse those results instead of recomputing them. A result is reused only for
            the same model file and weights (hash of the clean logits), adapter settings
            (normalization, input box, output kind, device type), data, seed, budget, options,
            auditkit version and probe configuration, and only when the other probes' results it
            read are the same now. ``None`` (default) reads whenever ``checkpoint_dir`` is given;
            ``False`` only writes (a plain run); ``True`` needs ``checkpoint_dir``.
        max_minutes: a limit on probe time replacing the budget's (``auditkit.sizing``).
        size_to_clock: measure the model's cost and size the probes' work to the budget.
        cost: a recorded cost (``audit.json``'s ``settings.sizing.cost``) to plan with instead
            of measuring, so a rerun sizes its work exactly as the recorded run did.

    Example:
        >>> result = run_audit(adapter, load_data("digits"), budget="fast", seed=0)
    """
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if resume and checkpoint_dir is None:
        raise AuditkitInputError(
            "resume=True needs checkpoint_dir: the folder an earlier run wrote its checkpoints to"
        )
    read_checkpoints = checkpoint_dir is not None if resume is None else bool(resume)
    selected, broken = select_probes(probes, budget, options)
    from auditkit import distributed

    if not distributed.is_main():
        # Under torchrun only rank 0 writes and shows progress; it also decides what is reused.
        checkpoint_dir, read_checkpoints, progress = None, False, Progress(False)
    progress = progress or Progress(False)  # a library call is silent unless asked
    with preserved_random_state():
        seed_everything(seed)
        return _run_selected(
            adapter, data, selected, broken, seed=seed, budget=budget, options=options,
            model_info=model_info, progress=progress, checkpoint_dir=checkpoint_dir,
            read_checkpoints=read_checkpoints, debug=debug, started_at=started_at, t0=t0,
            sizing={"enabled": size_to_clock, "max_minutes": max_minutes, "cost": cost,
                    "given": [p for p in selected if any(p is s for s in probes or [])]},
        )


def _run_selected(
    adapter: ModelAdapter,
    data: AuditData,
    selected: list[Probe],
    broken: list[ProbeResult],
    *,
    seed: int,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
    model_info: Mapping[str, Any] | None,
    progress: Progress,
    checkpoint_dir: str | Path | None,
    read_checkpoints: bool,
    debug: bool,
    started_at: str,
    t0: float,
    sizing: Mapping[str, Any] | None = None,
) -> AuditResult:

    from auditkit import distributed
    from auditkit.formats.model_path import model_path

    context = build_context(adapter, data, seed=seed, budget=budget, progress=progress)
    model = dict(model_info or {})
    model.setdefault("format", adapter.format)
    model.setdefault("num_classes", adapter.num_classes)
    model["adapter"] = adapter.describe()
    model.update(model_path(model["adapter"]))  # which path ran (white/black box), in words
    data_info = data.describe()
    data_info["splits"] = describe_splits(context.splits, seed)
    key = _checkpoint_key(context, model, data_info["fingerprint"], options)
    checkpoint = _Checkpoint(
        Path(checkpoint_dir) if checkpoint_dir else None, key, read=read_checkpoints
    )
    threads_before = torch.get_num_threads()
    layout_before = getattr(adapter, "channels_last", None)
    try:
        plan = None
        if sizing and sizing.get("enabled"):
            from auditkit.sizing import size_probes

            selected, plan = size_probes(
                selected, context, budget=budget, options=options, checkpoint=checkpoint.directory,
                reuse=read_checkpoints, **{k: sizing[k] for k in ("max_minutes", "cost", "given")},
            )

        results: dict[str, ProbeResult] = {r.name: r for r in broken}
        with progress.session():
            if plan is not None and plan.noteworthy:
                # Before the probes: what the clock changed, and how long the work will take.
                progress.log(f"sizing: {plan.summary()}")
            for index, probe in enumerate(selected, 1):
                progress.start_probe(probe.name, index, len(selected))
                cached = checkpoint.load(probe, context)
                artifacts = checkpoint.load_artifacts(probe) if cached is not None else None
                if distributed.state().active:
                    # Every rank runs (or reuses) exactly what rank 0 does.
                    cached, artifacts = distributed.broadcast_object((cached, artifacts))
                if cached is not None:
                    result = cached
                    if artifacts is not None:
                        context.artifacts[probe.name] = artifacts
                else:
                    if index > 1 and plan is not None:
                        from auditkit.sizing import recheck_threads

                        switched = recheck_threads(adapter, data.x, plan, probe.name)
                        if switched is not plan:
                            plan = switched
                            progress.log(f"sizing: {plan.threads_summary()}")
                    with _watching_reads(context, probe.name) as reads:
                        result = run_probe(probe, context, debug=debug)
                    context.results[probe.name] = result
                    checkpoint.save(
                        probe, result, context.artifacts.get(probe.name), _upstream(context, reads)
                    )
                results[probe.name] = result
                context.results[probe.name] = result
                progress.end_probe(probe.name, result.status, reused=cached is not None)

        ordered = {name: results[name] for name in [*(p.name for p in selected), *(b.name for b in broken)]}
        return AuditResult(
            model=model,
            data=data_info,
            environment=_environment(adapter, seed),
            probes=ordered,
            gates=[],
            verdict=compute_verdict(ordered, []),
            settings={
                "budget": budget,
                "seed": seed,
                "probes": list(ordered),
                "options": {k: dict(v) for k, v in (options or {}).items()},
                **({"sizing": plan.to_dict()} if plan is not None else {}),
            },
            started_at=started_at,
            duration_seconds=round(time.perf_counter() - t0, 3),
            auditkit_version=__version__,
        )
    finally:
        # Sizing may have lowered the threads or changed the layout for this scan.
        torch.set_num_threads(threads_before)
        from auditkit.sizing import restore_layout

        restore_layout(adapter, layout_before)

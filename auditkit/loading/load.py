"""``load_model``: the flow a model file takes, sniff → check → (sandboxed trial) → load.

Each step lives in its own room: ``sniff`` names the format, ``safety`` checks the bytes, the
``sandbox`` trial-loads risky formats in a child, and the per-format readers (``torch_formats``,
``foreign`` for ONNX and skops, ``archfile``) turn the file into a module or model object.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from auditkit import errors
from auditkit.bounds.trial import precheck as precheck_foreign
from auditkit.errors import AuditkitInputError, one_line
from auditkit.loading import guard, pickles, safety
from auditkit.loading.metadata import LoadedModel, ModelMetadata, _parse_metadata, sha256_file
from auditkit.loading.safety import DEFAULT_LIMITS, LoadLimits
from auditkit.loading.sniff import (
    ARCH_NOT_NEEDED,
    FORMAT_EXPORT,
    FORMAT_LEGACY_PICKLE,
    FORMAT_SAFETENSORS,
    FORMAT_TORCH_SAVE,
    FORMAT_TORCHSCRIPT,
    FORMATS_WITHOUT_ARCH,
    _read_prefix,
    sniff_format,
)
from auditkit.loading.torch_formats import FORMAT_LOADERS, _Request


def inspect_file(path: Path, fmt: str, limits: LoadLimits) -> None:
    """The format's own static checks, after ``sniff_format`` validated the container."""
    if fmt == FORMAT_SAFETENSORS:
        safety.check_safetensors(path, limits)
    elif fmt in (FORMAT_TORCH_SAVE, FORMAT_TORCHSCRIPT):
        pickles.check_pickled_storages(path, limits)
    elif fmt == FORMAT_EXPORT:
        safety.check_export_archive(path, safety.validate_zip(path, limits), limits)


def _refuse_unsafe_pickle_early(path: Path, limits: LoadLimits) -> None:
    """A raw pickle naming globals the weights-only loader refuses: say so without a child."""
    try:
        decoded = pickles.decode_pickle(_read_prefix(path, limits), streams=4)
    except Exception:  # not decodable here: the sandboxed loader reports it
        return
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):  # another torch: let the loader decide
        return
    unsafe = [
        g for g in dict.fromkeys(decoded.globals)
        if g not in allowed and not (g.startswith("torch.") and g.endswith("Storage"))
    ]
    if unsafe:
        what = one_line(f"it references {', '.join(unsafe)}", 160)
        raise AuditkitInputError(errors.PICKLE_REFUSED.format(path=path, what=what))


def load_model(
    path: str | Path,
    *,
    arch: str | Callable[[], nn.Module] | None = None,
    unsafe_pickle: bool = False,
    overrides: ModelMetadata | None = None,
    limits: LoadLimits | None = None,
    debug: bool = False,
    _sandboxed: bool = False,
) -> LoadedModel:
    """Load a model file of any supported format without executing untrusted code.

    The file is checked before torch reads it (``auditkit.loading.safety``): a regular file, a zip whose
    entries are safe and bounded, sizes that match their records. torch then reads it with a
    private temp folder and captured output; TorchScript and raw pickles are first trial-loaded
    in a child process under ``limits`` (time and memory).

    Args:
        path: the model file; its format is sniffed from the content.
        arch: network to load a state_dict / safetensors file into.
        unsafe_pickle: allow unpickling a whole ``nn.Module`` (runs code from the file).
        overrides: metadata the caller sets (``--mean``, ``--input-shape`` ...). Those fields win
            over the embedded ones and are not read from the file, so a malformed embedded
            field can be overridden instead of re-saving the model.
        limits: time, memory and archive limits (``LoadLimits``; defaults: 60 s, 8 GB).
        debug: write what torch printed while loading to stderr.

    Raises:
        AuditkitInputError: unreadable, unsafe or foreign file, or malformed embedded metadata.

    Example:
        >>> loaded = load_model("model.pt2")
        >>> loaded.format, loaded.metadata.input_shape
    """
    from auditkit import tracking

    if tracking.uri_tracker(path) is not None:  # models:/, runs:/ — the tracker's plugin loads it
        return tracking.load_model_uri(path, arch=arch, unsafe_pickle=unsafe_pickle,
                                       overrides=overrides, limits=limits, debug=debug)
    limits = limits or DEFAULT_LIMITS
    from auditkit.loading import hf_cache

    if hf_cache.is_hub_name(path):  # hf:ORG/NAME: a snapshot in the local hub cache, offline
        return hf_cache.load_hub_name(path, arch=arch, unsafe_pickle=unsafe_pickle, limits=limits)
    path = Path(path)
    if path.is_dir():  # a Hugging Face model folder (auditkit.loading.hf_folder)
        from auditkit.loading.hf_folder import load_hf_folder

        return load_hf_folder(path, arch=arch, unsafe_pickle=unsafe_pickle, limits=limits)
    fmt = sniff_format(path, limits)
    inspect_file(path, fmt, limits)
    if arch is not None and fmt in FORMATS_WITHOUT_ARCH:
        raise AuditkitInputError(
            ARCH_NOT_NEEDED.format(arch=arch, path=path, what=FORMATS_WITHOUT_ARCH[fmt])
        )
    digest = sha256_file(path)
    given = {
        k: v for k, v in dataclasses.asdict(overrides).items() if v not in (None, {})
    } if overrides is not None else {}
    skip = frozenset(given)

    def parse(text: str | bytes | None) -> ModelMetadata:
        return _parse_metadata(text, path, skip)

    arch_name = arch if isinstance(arch, str) else getattr(arch, "__name__", None)
    if fmt == FORMAT_LEGACY_PICKLE and not unsafe_pickle:
        _refuse_unsafe_pickle_early(path, limits)  # no child needed to refuse os.system
    # ONNX/skops/architecture files: sizes checked; control flow and factory builds go to the child.
    steered = precheck_foreign(path, fmt, limits)
    # The child needs select, wait4 and process groups: POSIX. Elsewhere the checks still run.
    if (
        os.name == "posix" and not _sandboxed
        and ((not unsafe_pickle and fmt in (FORMAT_TORCHSCRIPT, FORMAT_LEGACY_PICKLE)) or steered)
    ):
        from auditkit.loading.sandbox import trial_load

        with guard.private_tempdir():
            # An architecture file runs only its trusted factory, steered by the file's
            # arguments: its trial may fork (see sandbox).
            trial_load(path, fmt, limits, load=load_model, debug=debug,
                       runs_no_file_code=fmt == FORMAT_SAFETENSORS)
    request = _Request(arch=arch, unsafe_pickle=unsafe_pickle, parse=parse, limits=limits,
                       format=fmt, arch_name=arch_name)
    with guard.guarded_load(debug):
        module, metadata = FORMAT_LOADERS[fmt](path, request)
    from auditkit.loading import timm_arch

    if timm_arch.is_timm(arch) and isinstance(module, nn.Module):
        module, metadata = timm_arch.with_pretrained_config(module, metadata)
    if given:
        metadata = metadata.merged(**{k: getattr(overrides, k) for k in given})
    return LoadedModel(
        module=module, format=request.format, metadata=metadata, path=str(path), sha256=digest,
        arch=request.arch_name,
    )

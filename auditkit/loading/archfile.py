"""Self-describing architecture files: safetensors weights plus JSON naming a registered network.

A model whose code cannot travel in ``torch.export`` (message passing on a graph, dynamic kNN
graphs, anything a plugin builds) is saved as *weights plus a recipe*: the tensors of its
``state_dict`` in a safetensors file, and in the file's header (key ``auditkit``) a JSON object::

    {"auditkit_arch": 1,
     "architecture": {"name": "gcn_nodes", "params": {"in_channels": 34, ...}},
     "adapter": {"name": "graph_nodes", "params": {}},          # optional
     "data": {"name": "graph_nodes", "params": {"source": "sbm"}},  # optional
     "input_shape": [34], "class_names": [...], ...}          # the usual ModelMetadata fields

``architecture.name`` resolves only through the entry-point group ``auditkit.architectures``
(name → ``factory(**params) -> nn.Module``), ``adapter.name`` through ``auditkit.adapters`` and
``data.name`` through ``auditkit.datasets``. Nothing is unpickled and nothing is imported by a
name the file chooses: a file can only pick among factories an installed distribution registered.
The factory runs first on the ``meta`` device, and every tensor's name and shape must match the
file before real memory is allocated, so absurd parameters cannot exhaust memory. Through
``load_model`` the build and one forward pass are first trial-run in the sandbox child under
``--load-timeout``/``--load-memory`` (``auditkit.bounds.trial``): a recipe can still ask a factory
for a million layers, or declare an input its network turns into gigabytes. A data spec that
names a file is never read on the file's word (``data_from_spec``).

Example:
    >>> save_arch_model(net, "gcn.safetensors", architecture="gcn_nodes",
    ...                 params={"in_channels": 34, "hidden": 16, "num_classes": 4},
    ...                 metadata={"input_shape": [34], "data": {"name": "graph_nodes"}})
    >>> module, info = load_arch_model("gcn.safetensors")
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from auditkit.bounds.jsontext import parse as bounded_json
from auditkit.bounds.recipe import check_factory_args
from auditkit.errors import AuditkitInputError, one_line
from auditkit.registry import ADAPTER_GROUP, ARCHITECTURE_GROUP, iter_entry_points

if TYPE_CHECKING:
    from auditkit.adapters.base import ModelAdapter
    from auditkit.data.core import AuditData
    from auditkit.loading.metadata import ModelMetadata

HEADER_KEY = "auditkit"
FORMAT_VERSION = 1
FORMAT_NAME = "auditkit-arch"
# Keys of the header that are not ModelMetadata fields.
SPEC_KEYS = ("architecture", "adapter", "data")

BAD_HEADER = "{path}: the architecture header is malformed ({reason}); re-save the model"
UNKNOWN_ARCHITECTURE = (
    "{path}: architecture {name!r} is not registered (installed: {available}); install the "
    "plugin that provides it (entry-point group auditkit.architectures)"
)
UNKNOWN_ADAPTER = (
    "{path}: adapter {name!r} is not registered (installed: {available}); install the plugin "
    "that provides it (entry-point group auditkit.adapters)"
)
FACTORY_FAILED = "{path}: architecture {name!r} cannot be built from the file's parameters ({reason})"
WEIGHTS_MISMATCH = "{path}: the weights do not fit architecture {name!r} ({reason}); the file was altered or is damaged"
UNREADABLE = "{path}: not a readable safetensors file ({reason})"


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be plain JSON (numbers, strings, lists, objects): {exc}") from None


def _spec(value: Any, where: str) -> dict[str, Any] | None:
    """``NAME`` or ``{"name": NAME, "params": {...}}`` → the dict form (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value, "params": {}}
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        params = value.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}.params must be an object")
        return {"name": value["name"], "params": _jsonable(dict(params), f"{where}.params")}
    raise ValueError(f"{where} must be a name or {{'name': ..., 'params': {{...}}}}")


def save_arch_model(
    model: nn.Module,
    path: str | Path,
    *,
    architecture: str,
    params: Mapping[str, Any],
    metadata: Mapping[str, Any] | ModelMetadata | None = None,
    adapter: str | Mapping[str, Any] | None = None,
    data: str | Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights and the recipe to rebuild it (no pickle, no code).

    Args:
        model: the network; ``architecture`` called with ``params`` must rebuild its structure.
        path: where to write (any extension; ``.safetensors`` is conventional).
        architecture: a name registered in the entry-point group ``auditkit.architectures``.
        params: keyword arguments for that factory (plain JSON).
        metadata: the usual ``ModelMetadata`` fields (input shape, range, class names, ...);
            a mapping may also carry ``adapter`` and ``data``.
        adapter: ``NAME`` or ``{"name", "params"}`` from ``auditkit.adapters`` (optional).
        data: ``NAME`` or ``{"name", "params"}`` from ``auditkit.datasets``: the default audit
            data, so ``auditkit scan PATH`` needs no ``--data``.

    Example:
        >>> save_arch_model(net, "m.safetensors", architecture="dgcnn", params={"k": 10},
        ...                 metadata={"input_shape": [256, 3]}, data="shapes")
    """
    from safetensors.torch import save_file

    from auditkit.loading.metadata import ModelMetadata

    if hasattr(metadata, "to_dict"):
        meta: dict[str, Any] = dict(metadata.to_dict())  # type: ignore[union-attr]
    else:
        meta = dict(metadata or {})
    adapter = adapter if adapter is not None else meta.pop("adapter", None)
    data = data if data is not None else meta.pop("data", None)
    meta.pop("architecture", None)
    ModelMetadata.from_dict(meta)  # fail now, not when the file is scanned
    header = {
        "auditkit_arch": FORMAT_VERSION,
        "architecture": _spec({"name": architecture, "params": dict(params)}, "architecture"),
        "adapter": _spec(adapter, "adapter"),
        "data": _spec(data, "data"),
        **_jsonable(meta, "metadata"),
    }
    state = {
        key: tensor.detach().cpu().contiguous()
        for key, tensor in model.state_dict().items()
        if isinstance(tensor, torch.Tensor)
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory; clone those (tied weights stay equal).
    seen: set[int] = set()
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor)
        if ptr in seen:
            state[key] = tensor.clone()
        seen.add(ptr)
    save_file(state, str(path), metadata={HEADER_KEY: json.dumps(header, allow_nan=False)})
    return path


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The parsed ``auditkit`` header of a safetensors file; None when it has none.

    Raises ``AuditkitInputError`` when the header is there but malformed (tampered).
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            text = (fh.metadata() or {}).get(HEADER_KEY)
    except Exception as exc:  # SafetensorError, OSError ... on a damaged file
        raise AuditkitInputError(UNREADABLE.format(path=path, reason=_reason(exc))) from None
    if text is None:
        return None
    try:
        header = bounded_json(text)  # depth/size/count bounded, no NaN (#24)
        if not isinstance(header, dict):
            raise ValueError("expected a JSON object")
        if header.get("auditkit_arch") != FORMAT_VERSION:
            raise ValueError(f"unsupported auditkit_arch {header.get('auditkit_arch')!r}")
        for key in SPEC_KEYS:
            header[key] = _spec(header.get(key), key)
        if header["architecture"] is None:
            raise ValueError("no architecture")
    except (ValueError, TypeError) as exc:
        raise AuditkitInputError(BAD_HEADER.format(path=path, reason=_reason(exc))) from None
    return header


def _reason(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 200)


def _registered(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in iter_entry_points(group)}


def _load_entry(group: str, name: str, path: Path, message: str) -> Any:
    found = _registered(group)
    if name not in found:
        available = ", ".join(sorted(found)) or "none"
        raise AuditkitInputError(message.format(path=path, name=name, available=available))
    try:
        return found[name].load()
    except Exception as exc:  # a broken plugin is reported, not a crash
        raise AuditkitInputError(
            f"{path}: the plugin providing {name!r} failed to load ({_reason(exc)})"
        ) from None


def _build(factory: Any, params: dict[str, Any], name: str, path: Path, device: str) -> nn.Module:
    try:
        with torch.device(device):
            built = factory(**params)
    except Exception as exc:  # any failure of the factory on these params is a bad file
        raise AuditkitInputError(
            FACTORY_FAILED.format(path=path, name=name, reason=f"{type(exc).__name__}: {_reason(exc)}")
        ) from None
    if not isinstance(built, nn.Module):
        raise AuditkitInputError(
            FACTORY_FAILED.format(path=path, name=name, reason=f"returned a {type(built).__name__}")
        )
    return built


def load_arch_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network an architecture file describes and load its weights (eval mode).

    Returns the module and the parsed header (``architecture``, ``adapter``, ``data`` and the
    metadata fields). Every problem — not an architecture file, malformed header, unknown name,
    parameters the factory rejects, missing/extra/misshapen tensors — is one
    ``AuditkitInputError`` line.
    """
    from safetensors import safe_open

    path = Path(path)
    header = read_header(path)
    if header is None:
        raise AuditkitInputError(
            BAD_HEADER.format(path=path, reason=f"no '{HEADER_KEY}' header: not an architecture file")
        )
    arch = header["architecture"]
    name, params = arch["name"], arch["params"]
    factory = _load_entry(ARCHITECTURE_GROUP, name, path, UNKNOWN_ARCHITECTURE)
    check_factory_args(path, name, params)  # bounded by the stored weights (#24)
    # Shapes first, on the meta device: nothing real is allocated for a tampered recipe.
    skeleton = _build(factory, params, name, path, "meta")
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items() if isinstance(v, torch.Tensor)}
    try:
        with safe_open(str(path), framework="pt") as fh:
            stored = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:
        raise AuditkitInputError(UNREADABLE.format(path=path, reason=_reason(exc))) from None
    problem = _mismatch(expected, stored)
    if problem:
        raise AuditkitInputError(WEIGHTS_MISMATCH.format(path=path, name=name, reason=problem))
    module = _build(factory, params, name, path, "cpu")
    try:
        with safe_open(str(path), framework="pt") as fh:
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # dtype problems, truncated data
        raise AuditkitInputError(
            WEIGHTS_MISMATCH.format(path=path, name=name, reason=_reason(exc))
        ) from None
    module.eval()
    return module, header


def _mismatch(expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]) -> str | None:
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing:
        return f"missing tensor {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    if extra:
        return f"unexpected tensor {extra[0]}" + (f" and {len(extra) - 1} more" if len(extra) > 1 else "")
    for key, shape in expected.items():
        if stored[key] != shape:
            return f"{key} has shape {list(stored[key])}, the architecture expects {list(shape)}"
    return None


def header_metadata(header: Mapping[str, Any]) -> dict[str, Any]:
    """The ModelMetadata fields of a header, with the three specs kept under ``extra``."""
    fields = {k: v for k, v in header.items() if k not in (*SPEC_KEYS, "auditkit_arch")}
    extra = fields.get("extra")
    if extra is None or isinstance(extra, Mapping):  # anything else: the metadata check says so
        extra = {**(extra or {}), **{k: header[k] for k in SPEC_KEYS if header.get(k) is not None}}
    fields["extra"] = extra
    return fields


#: Suffixes that make a data-set argument a file name (with a path separator or ``~``).
FILE_SUFFIXES = (".npz", ".npy", ".pt", ".pth", ".csv", ".tsv", ".parquet", ".json", ".zip", ".txt")


def _file_arguments(params: Mapping[str, Any]) -> dict[str, str]:
    """The arguments of a data spec that name a file or folder (never read on the file's word)."""
    return {
        key: value for key, value in params.items()
        if isinstance(value, str) and (
            "/" in value or "\\" in value or value.startswith("~")
            or value.lower().endswith(FILE_SUFFIXES)
        )
    }


def data_from_spec(spec: Mapping[str, Any], data_path: str | Path | None = None) -> AuditData:
    """The audit data an architecture file names (``extra["data"]``), built by its plugin.

    A model file never chooses what is read from disk (#24): an argument of the spec that names
    a file (``{"source": "/home/x/graph.npz"}``) is not read. With ``data_path`` (the user's
    ``--data``) the builder reads the user's file in its place; without it the run is refused,
    naming the ignored path and the fix.
    """
    from auditkit.data.loaders import build_registered, builtin_datasets

    name, params = spec["name"], dict(spec.get("params") or {})
    files = _file_arguments(params)
    if files and data_path is None:
        key, value = next(iter(files.items()))
        raise AuditkitInputError(
            f"no data: the model file's data set {one_line(name, 40)!r} names a file "
            f"({key}={one_line(value, 80)!r}), which auditkit never reads on a model file's "
            "word: pass that file with --data"
        )
    params.update(dict.fromkeys(files, str(data_path)))
    builders = builtin_datasets()
    if name not in builders:
        raise AuditkitInputError(
            f"the model file names data set {name!r}, which is not installed "
            f"(available: {', '.join(sorted(builders))}); pass --data or install its plugin"
        )
    what = f"--data {data_path}" if files else f"data set {name!r} named by the model file"
    return build_registered(builders[name], what, fix="; pass --data", **params)


def data_for_user_file(spec: Any, data: Any) -> AuditData | None:
    """``--data FILE`` for a model whose data spec names a file: the spec's builder reads the
    user's file (a graph file read as a graph, with its train/test split); None otherwise."""
    if not isinstance(spec, Mapping) or not isinstance(data, (str, Path)):
        return None
    if not _file_arguments(dict(spec.get("params") or {})) or not Path(data).exists():
        return None
    return data_from_spec(spec, data)


def adapter_from_spec(
    spec: Mapping[str, Any],
    model: nn.Module,
    data: AuditData,
    *,
    metadata: ModelMetadata,
    device: str,
    format: str,
) -> ModelAdapter:
    """The adapter an architecture file names (``extra["adapter"]``), built by its plugin.

    The factory is called as ``factory(model, data, metadata=..., device=..., format=...,
    **params)`` and must return a ``ModelAdapter``.
    """
    from auditkit.adapters.base import ModelAdapter

    name = spec["name"]
    factory = _load_entry(ADAPTER_GROUP, name, Path("model file"), UNKNOWN_ADAPTER)
    try:
        adapter = factory(
            model, data, metadata=metadata, device=device, format=format, **dict(spec.get("params") or {})
        )
    except AuditkitInputError:
        raise
    except Exception as exc:
        raise AuditkitInputError(
            f"adapter {name!r} named by the model file failed ({type(exc).__name__}: {_reason(exc)})"
        ) from None
    if not isinstance(adapter, ModelAdapter):
        raise AuditkitInputError(f"adapter {name!r} returned a {type(adapter).__name__}, not a ModelAdapter")
    return adapter

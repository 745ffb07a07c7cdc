"""The Python API: ``scan`` a model (file or in-memory) on data, get an ``AuditResult``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from auditkit.adapters import CallableAdapter, ModelAdapter, TorchModelAdapter
from auditkit.adapters.sklearn_adapter import is_estimator
from auditkit.bounds.data import metadata_dataset
from auditkit.bounds.data import using as data_bounds
from auditkit.data import AuditData, from_dataloader, from_tensors, load_data
from auditkit.data.checks import align_class_order, check_input_box, complete_class_names
from auditkit.data.loaders import builtin_datasets
from auditkit.errors import AuditkitInputError
from auditkit.loading import LoadedModel, ModelMetadata, load_model, weights_sha256
from auditkit.pipeline import run_audit
from auditkit.progress import Progress
from auditkit.request import (  # noqa: F401 - validate_request: documented here too
    MAX_SEED,
    ScanRequest,
    api_signature,
    check_keywords,
    spec_name,
    validate_request,
)
from auditkit.results import AuditResult

if TYPE_CHECKING:
    pass

DataLike = AuditData | str | Path | tuple | Any


def resolve_data(data: DataLike, metadata: ModelMetadata | None = None, **load_kwargs: Any) -> AuditData:
    """Turn a data spec (name, path, ``(x, y[, groups])``, DataLoader, AuditData) into AuditData."""
    if isinstance(data, AuditData):
        return data
    if data is None:
        if metadata is not None and isinstance(metadata.extra.get("data"), dict):
            from auditkit.loading.archfile import (
                data_from_spec,  # an architecture file names its data
            )

            return data_from_spec(metadata.extra["data"])
        if metadata is not None and metadata.dataset:
            # Built-in names only: a model file never chooses what is read from disk (#24).
            return load_data(metadata_dataset(metadata.dataset, builtin_datasets()), **load_kwargs)
        raise AuditkitInputError(
            "no data: the model file names no data set; pass --data (a built-in name, .npz/.pt, "
            "an image folder or a CSV/parquet)"
        )
    if isinstance(data, (str, Path)):
        if metadata is not None and metadata.extra.get("data") is not None:
            from auditkit.loading.archfile import data_for_user_file  # the recipe's reader (#24)

            built = data_for_user_file(metadata.extra["data"], data)
            if built is not None:
                return built
        return load_data(data, **load_kwargs)
    if isinstance(data, tuple) and len(data) in (2, 3):
        groups = data[2] if len(data) == 3 else None
        return from_tensors(data[0], data[1], groups=groups)
    if isinstance(data, torch.utils.data.DataLoader):
        return from_dataloader(data)
    raise AuditkitInputError(
        f"data: cannot use a {type(data).__name__}; pass a name, a path, (x, y[, groups]), "
        "a DataLoader or AuditData"
    )


def build_adapter(
    model: nn.Module | Callable | ModelAdapter,
    data: AuditData,
    *,
    metadata: ModelMetadata | None = None,
    device: str = "auto",
    format: str = "nn.Module",
    num_classes: int | None = None,
) -> ModelAdapter:
    """Wrap ``model`` in the adapter contract; shape and box come from metadata, else the data."""
    if isinstance(model, ModelAdapter):
        return model
    meta = metadata or ModelMetadata()
    if isinstance(model, nn.Module) and isinstance(meta.extra.get("adapter"), dict):
        from auditkit.loading.archfile import (
            adapter_from_spec,  # an architecture file names its adapter
        )

        return adapter_from_spec(
            meta.extra["adapter"], model, data, metadata=meta, device=device, format=format
        )
    input_shape = meta.input_shape or data.input_shape
    if tuple(input_shape) != tuple(data.input_shape):
        from auditkit.pipeline import shape_mismatch_message

        raise AuditkitInputError(shape_mismatch_message(data, input_shape))
    input_range = meta.input_range if meta.input_range is not None else data.input_range
    check_input_box(data, meta.input_range)
    classes = num_classes or meta.num_classes
    if hasattr(model, "make_adapter") or is_estimator(model):
        return _foreign_adapter(model, data, meta, input_shape, input_range, classes, device)
    if isinstance(model, nn.Module):
        try:
            return TorchModelAdapter(
                model,
                input_shape=input_shape,
                num_classes=classes,
                input_range=input_range,
                mean=meta.mean,
                std=meta.std,
                device=device,
                format=format,
            )
        except AuditkitInputError:
            raise
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise AuditkitInputError(
                f"the model fails on inputs of shape {tuple(input_shape)} from the data ({first}); "
                "check --data, or pass --input-shape / --arch"
            ) from None
    if callable(model):
        return CallableAdapter(
            model,
            input_shape=input_shape,
            num_classes=classes or data.num_classes,
            input_range=input_range,
        )
    raise AuditkitInputError(f"model: cannot audit a {type(model).__name__}")


def _foreign_adapter(model: Any, data: AuditData, meta: ModelMetadata, input_shape: Any,
                     input_range: Any, classes: int | None, device: str) -> ModelAdapter:
    """ONNX / scikit-learn models (``auditkit.loading.foreign``), and in-memory estimators."""
    if is_estimator(model):
        from auditkit.loading.foreign import SklearnModel

        model = SklearnModel(model, format="scikit-learn")
    return model.make_adapter(
        input_shape=input_shape, num_classes=classes, input_range=input_range, mean=meta.mean,
        std=meta.std, device=device, feature_names=data.feature_names,
        class_names=meta.class_names or data.class_names, categories=data.categories,
        exact_values=data.exact_values, sensitive=sorted(data.groups),
    )


def scan(model: nn.Module | Callable | ModelAdapter | str | Path, data: DataLike = None,
         **keywords: Any) -> AuditResult:
    """Audit a model and return an ``AuditResult`` (gates applied when a policy is given).

    Args:
        model: a model file path, an ``nn.Module``, a callable returning probabilities, or an
            adapter.
        data: a built-in name, a path, ``(x, y[, groups])``, a DataLoader or ``AuditData``;
            defaults to the data set named in the model file's metadata.
        probes: probe names to run (default: all installed), or Probe classes/instances.
        budget: ``fast`` | ``standard`` | ``thorough``.
        seed: same seed, same metrics.
        policy: a policy file path or a ``{"gates": {...}}`` mapping. It is validated against
            the selected probes before anything runs (an unknown metric, or a gate on a probe
            not in ``probes``, raises ``AuditkitInputError`` at once).
        options: per-probe options, ``{"adversarial": {"eps": 0.1}}``.
        metadata: overrides for the model's embedded metadata (shape, range, mean/std, classes).
        train_data: the data the model was trained on (same forms as ``data``); the
            memorization probe reports the audited model's generalization gap with it.
        checkpoint_dir: write each finished probe's result there, so an interrupted audit
            loses only the probe it was in.
        resume: reuse the results in ``checkpoint_dir`` (same model, data, seed, budget,
            options). ``None`` reuses whenever ``checkpoint_dir`` is given; ``False`` only writes.
        keep_sensitive_features: tables only: the model was trained with the sensitive columns
            as inputs, so they stay among its features (they are always the groups too).
        max_minutes: limit on probe time instead of the budget's (fast ≈ 1, standard ≈ 10):
            the model's cost is measured first and each probe's work sized to fit
            (``auditkit.sizing``; ``size_to_clock=False`` runs the budget as declared).
        cost: a recorded cost (``result.settings["sizing"]["cost"]``) to plan with instead of
            measuring: the same cost gives the same plan.
        fail_on: ``failed`` (default: a failed probe fails the audit) | ``warned`` | ``never``
            (only gates fail it); overrides the policy file's ``fail_on``.
        load_limits: time, memory and archive limits for loading a model file
            (``auditkit.loading.safety.LoadLimits``: 60 s and 8 GB unless raised).

    Example:
        >>> result = auditkit.scan(net, (x_test, y_test), budget="fast",
        ...                        policy={"gates": {"adversarial.robust_accuracy": ">= 0.3"}})
        >>> assert result.passed, result.failures
    """
    check_keywords(keywords)
    return run_request(model, ScanRequest(data=data, **keywords))


# The keywords, their defaults and their order are ScanRequest's (auditkit.request).
scan.__signature__ = api_signature(  # type: ignore[attr-defined]
    "nn.Module | Callable | ModelAdapter | str | Path")


def run_request(model: nn.Module | Callable | ModelAdapter | str | Path,
                request: ScanRequest) -> AuditResult:
    """``auditkit.scan`` with its keywords gathered in a ``ScanRequest``."""
    r = request
    data, probes, budget, seed, device, options = (
        r.data, r.probes, r.budget, r.seed, r.device, r.options)
    metadata, arch, unsafe_pickle, load_limits, target, sensitive = (
        r.metadata, r.arch, r.unsafe_pickle, r.load_limits, r.target, r.sensitive)
    groups_file, train_data, keep_sensitive_features, checkpoint_dir, resume = (
        r.groups_file, r.train_data, r.keep_sensitive_features, r.checkpoint_dir, r.resume)
    progress, debug, max_minutes, size_to_clock, cost, fail_on = (
        r.progress, r.debug, r.max_minutes, r.size_to_clock, r.cost, r.fail_on)
    # Everything that needs neither model nor data is checked first: a typo must not cost an audit.
    loaded_policy = r.validate()
    selected = None if probes is None else {spec_name(s) for s in probes}
    if loaded_policy is not None and loaded_policy.options:
        from auditkit.gates import merged_options

        options = {
            probe: values
            for probe, values in merged_options(loaded_policy, options).items()
            if selected is None or probe in selected
        }
    if loaded_policy is not None and size_to_clock:
        from auditkit.sizing import options_for_gates

        # What a gate reads is measured whatever the clock (e.g. the L2 attacks for a gate on
        # adversarial.pgd_l2_accuracy): set as if the user had, so the plan keeps it.
        gated = [
            r.target for r in loaded_policy.rules
            if r.kind == "metric" and (selected is None or r.target.partition(".")[0] in selected)
        ]
        options = options_for_gates(gated, options) if gated else options
    model_info: dict[str, Any]
    loaded: LoadedModel | None = None
    if isinstance(model, (str, Path)):
        loaded = load_model(
            model, arch=arch, unsafe_pickle=unsafe_pickle, limits=load_limits, debug=debug
        )
        meta = loaded.metadata.merged(**_overrides(metadata))
        module: Any = loaded.module
        model_info = loaded.describe()
        fmt = loaded.format
    else:
        meta = metadata or ModelMetadata()
        module = model
        fmt = "nn.Module" if isinstance(model, nn.Module) else getattr(model, "format", "callable")
        if is_estimator(model):
            fmt = "scikit-learn"

        model_info = {
            "path": None,
            "sha256": weights_sha256(model) if isinstance(model, nn.Module) else None,
            "format": fmt,
        }
    data_kwargs: dict[str, Any] = {
        "target": target, "sensitive": sensitive, "keep_sensitive_features": keep_sensitive_features,
        **_raw_table_model(module),
    }
    with data_bounds(load_limits):  # data files bounded by --load-memory too (#24)
        audit_data = resolve_data(data, meta, groups_file=groups_file, **data_kwargs)
    if train_data is not None:
        if audit_data.categories:  # the same text, the same codes
            data_kwargs["categories"] = audit_data.categories
        try:
            with data_bounds(load_limits):
                audit_data.train = resolve_data(train_data, meta, **data_kwargs)
            if audit_data.train.categories:  # a superset: the audit table's codes still hold
                audit_data.categories = dict(audit_data.train.categories)
            for column, values in audit_data.train.exact_values.items():
                audit_data.exact_values[column] = np.union1d(
                    audit_data.exact_values.get(column, values), values)
        except AuditkitInputError as exc:
            # The loaders speak of --data; say which flag the user has to fix.
            message = str(exc)
            raise AuditkitInputError(
                message.replace("--data ", "--train-data ", 1)
                if message.startswith("--data ")
                else f"--train-data: {message}"
            ) from None
    if meta.class_names and not audit_data.class_names:
        audit_data.class_names = list(meta.class_names)
    reordered = align_class_order(audit_data, meta.class_names)
    if reordered is not None:
        audit_data.description = " ".join(filter(None, [audit_data.description, reordered]))
    adapter = build_adapter(module, audit_data, metadata=meta, device=device, format=fmt)
    complete_class_names(audit_data, adapter.num_classes)
    model_info["num_classes"] = adapter.num_classes
    model_info["metadata"] = meta.to_dict()
    result = run_audit(
        adapter,
        audit_data,
        probes=probes,
        budget=budget,
        seed=seed,
        options=options,
        model_info=model_info,
        progress=progress if isinstance(progress, Progress) else Progress(progress),
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        debug=debug,
        max_minutes=max_minutes,
        size_to_clock=size_to_clock,
        cost=cost,
    )
    from auditkit.gates import apply_policy

    # Always: without a policy the verdict is the probes' own judgement at ``fail_on``.
    return apply_policy(result, loaded_policy, fail_on)


def _raw_table_model(module: Any) -> dict[str, Any]:
    """What the table loader must know about a model that reads the raw table (a scikit-learn
    estimator or pipeline, which does its own encoding): text columns stay, as category codes,
    float64 numbers keep their values, and the sensitive columns it was fitted on (``feature_names_in_``) stay among its inputs
    while remaining the bias probe's groups. Nothing for other models."""
    from auditkit.loading.foreign import SklearnModel

    estimator = module.estimator if isinstance(module, SklearnModel) else module
    if not is_estimator(estimator):
        return {}
    names = getattr(estimator, "feature_names_in_", None)
    return {"raw_table": True,
            "model_columns": [str(c) for c in names] if names is not None else None}


def _overrides(metadata: ModelMetadata | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    return {k: v for k, v in metadata.to_dict().items() if v not in (None, {}, [])} | {
        k: getattr(metadata, k)
        for k in ("input_shape", "input_range", "mean", "std", "class_names")
        if getattr(metadata, k) is not None
    }

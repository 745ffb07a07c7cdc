"""ONNX models through onnxruntime, with a white-box torch twin when the graph converts cleanly.

The numbers an audit reports come from onnxruntime, the runtime the model ships with. Where
``onnx2torch`` converts the graph and the converted module agrees with onnxruntime on the
audit's inputs, that twin supplies input gradients (PGD, gradient checks, memorization); the
adapter records which path ran (``describe()["path"]``). Otherwise the model is a black box
and the adversarial probe uses gradient-free attacks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.adapters.base import Diagnostics, ModelAdapter, class_indices
from auditkit.adapters.network import _normalization, output_kind
from auditkit.adapters.torch_adapter import TorchModelAdapter
from auditkit.errors import AuditkitInputError, one_line
from auditkit.loading import onnx_reasons as reasons
from auditkit.loading.onnx import GraphFacts, graph_facts, make_session
from auditkit.loading.onnx_batch import FixedBatch, free_batch
from auditkit.loading.onnx_external import load_external_weights
from auditkit.loading.onnx_normalize import normalize

#: The twin is used only when its outputs match onnxruntime's this closely (relative to their
#: scale) on the audit's own inputs.
TWIN_TOLERANCE = 1e-3
PATH_WHITE = "white-box: onnx2torch twin (gradients), scores from onnxruntime"
PATH_BLACK = "black-box: onnxruntime only (gradient-free attacks)"


class OnnxModel:
    """A validated ONNX file, ready to become an adapter once the audit data is known.

    Example:
        >>> loaded = load_model("model.onnx"); loaded.module
        OnnxModel('model.onnx', outputs=logits)
    """

    format = "onnx"

    def __init__(self, path: Path, proto: Any) -> None:
        self.path = Path(path)
        self.proto = proto
        self.session = make_session(self.path, "cpu")  # fails early on unsupported operators
        self.facts = graph_facts(proto, self.session, self.path)

    def __repr__(self) -> str:
        kind = self.facts.scores_kind if self.facts.scores_output else "labels"
        return f"OnnxModel({self.path.name!r}, outputs={kind})"

    def make_adapter(self, *, input_shape: Sequence[int], num_classes: int | None,
                     input_range: tuple[float, float] | None, mean: Any = None, std: Any = None,
                     device: str | torch.device = "auto", class_names: Sequence[str] | None = None,
                     white_box: bool | None = None, **_: Any) -> OnnxModelAdapter:
        return OnnxModelAdapter(self, input_shape=input_shape, num_classes=num_classes,
                                input_range=input_range, mean=mean, std=std, device=device,
                                class_names=class_names, white_box=white_box)


def convert_to_torch(proto: Any, output_index: int
                     ) -> tuple[nn.Module | None, reasons.Reason | None]:
    """The graph as a torch module via onnx2torch, or None and why not (in words)."""
    try:
        from onnx2torch import convert
    except ImportError:
        return None, reasons.no_converter()
    try:
        module = convert(proto)
    except Exception as exc:  # NotImplementedError for unsupported operators, and others
        return None, reasons.conversion_failed(exc)
    return _Pick(module, output_index), None


class _Pick(nn.Module):
    """One output of a multi-output converted graph."""

    def __init__(self, module: nn.Module, index: int) -> None:
        super().__init__()
        self.module, self.index = module, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        return out[self.index] if isinstance(out, (tuple, list)) else out

    def without_softmax(self) -> nn.Module | None:
        """This picker around the graph without its final softmax (``softmax_head``)."""
        from auditkit.adapters.softmax_head import strip_softmax

        inner = strip_softmax(self.module)
        return None if inner is None else _Pick(inner, self.index)


class OnnxModelAdapter(ModelAdapter):
    """An ONNX model seen through auditkit's contract.

    Args:
        model: the loaded ``OnnxModel``.
        input_shape, num_classes, input_range, mean, std, device: as for ``TorchModelAdapter``
            (normalization is applied before the graph, as the model expects).
        class_names: how string labels / ZipMap keys map to class indices.
        white_box: ``None`` (default) uses the torch twin when it converts and agrees;
            ``False`` forces the black-box path.
    """

    def __init__(
        self,
        model: OnnxModel,
        *,
        input_shape: Sequence[int],
        num_classes: int | None = None,
        input_range: tuple[float, float] | None = (0.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: str | torch.device = "auto",
        class_names: Sequence[str] | None = None,
        white_box: bool | None = None,
    ) -> None:
        from auditkit.adapters.device import resolve_device

        self.onnx_model = model
        self.facts: GraphFacts = model.facts
        self.format = "onnx"
        self.device = resolve_device(device)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_range = tuple(float(v) for v in input_range) if input_range else None
        self.mean = _normalization(mean, "--mean", self.input_shape)
        self.std = _normalization(std, "--std", self.input_shape)
        if (self.mean is None) != (self.std is None):
            raise AuditkitInputError("--mean and --std must be given together")
        self.class_names = list(class_names) if class_names else None
        self.session = model.session
        if self.device.type == "cuda":
            self.session = make_session(model.path, "cuda")
        self.provider = self.session.get_providers()[0]
        expected = self.facts.example_shape
        if expected is not None and expected != self.input_shape:
            from auditkit import errors

            raise AuditkitInputError(errors.shape_mismatch(self.input_shape, expected))
        self.labels_only = self.facts.scores_output is None
        self.kind = "labels" if self.labels_only else self.facts.scores_kind
        probe = self._run(torch.zeros(2, *self.input_shape))
        # Labels alone do not say how many classes exist: the data's class list does.
        known = len(self.class_names) if self.labels_only and self.class_names else None
        self.num_classes = int(num_classes or self.facts.num_classes or known or probe.shape[1])
        if probe.shape[1] != self.num_classes and not self.labels_only:
            raise AuditkitInputError(
                f"{model.path}: the model gives {probe.shape[1]} scores per example but "
                f"{self.num_classes} classes were expected; check --data and the model's classes"
            )
        self.twin: TorchModelAdapter | None = None
        self.twin_note = ""
        self.twin_details: str | None = None  # the raw error behind twin_note, if any
        self.twin_max_abs_diff: float | None = None
        self.normalized: list[str] = []
        if white_box is not False and not self.labels_only and self.kind != "zipmap":
            self._build_twin()
        elif self.labels_only:
            self.twin_note = ("the model returns labels only: there are no scores to "
                              "differentiate; export the scores to get gradient attacks")
        elif self.kind == "zipmap":
            self.twin_note = ("ZipMap outputs (scikit-learn converters) have no torch twin; "
                              "gradient-free attacks measure it")
        else:
            self.twin_note = "the black-box path was asked for"
        self.supports_gradients = self.twin is not None
        self.diagnostics = Diagnostics(output_kind=self._diagnostic_kind(), notes=self._notes())

    # --- onnxruntime ----------------------------------------------------------------------
    def _feed(self, x: torch.Tensor) -> np.ndarray:
        x = x.detach().float().cpu()
        if self.mean is not None:
            shape = (-1, *[1] * (len(self.input_shape) - 1)) if len(self.input_shape) > 1 else (-1,)
            x = (x - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)
        return x.numpy().astype(self.facts.input_dtype, copy=False)

    def _session_run(self, feed: np.ndarray) -> np.ndarray:
        name = self.facts.scores_output or self.facts.labels_output
        try:
            (out,) = self.session.run([name], {self.facts.input_name: feed})
        except Exception as exc:  # onnxruntime's errors: wrong shape or type for this graph
            raise AuditkitInputError(
                f"{self.onnx_model.path}: onnxruntime fails on inputs of shape "
                f"{tuple(feed.shape)} ({one_line(exc, 200)}); check --data / --input-shape"
            ) from None
        if self.kind == "zipmap":
            return self._from_zipmap(out)
        if self.labels_only:
            return self._one_hot(np.asarray(out).reshape(len(feed)))
        return np.asarray(out, dtype=np.float32)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Raw scores (or one-hot labels) from onnxruntime, any batch size."""
        feed = self._feed(x)
        batch = self.facts.static_batch
        if batch is None or len(feed) == batch:
            return torch.from_numpy(np.ascontiguousarray(self._session_run(feed)))
        # A graph exported for a fixed batch: run it in chunks, zero-padding the last one.
        parts = []
        for start in range(0, len(feed), batch):
            chunk = feed[start : start + batch]
            short = batch - len(chunk)
            if short:
                chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), chunk.dtype)])
            parts.append(self._session_run(chunk)[: batch - short])
        return torch.from_numpy(np.concatenate(parts))

    def _class_index(self, keys: Sequence[Any]) -> list[int]:
        return class_indices(keys, self.class_names, owner=str(self.onnx_model.path))

    def _from_zipmap(self, rows: list[dict[Any, float]]) -> np.ndarray:
        keys = list(rows[0]) if rows else []
        columns = self._class_index(keys)
        width = max(columns) + 1 if columns else 0
        out = np.zeros((len(rows), width), dtype=np.float32)
        for i, row in enumerate(rows):
            out[i, columns] = [row[k] for k in keys]
        return out

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        classes = getattr(self, "num_classes", None)
        if labels.dtype.kind in "iu":
            index = labels.astype(np.int64)
        else:
            index = np.asarray(self._class_index([str(v) for v in labels]), dtype=np.int64)
        width = max(int(index.max()) + 1 if len(index) else 1, classes or 1)
        out = np.zeros((len(labels), width), dtype=np.float32)
        out[np.arange(len(labels)), index] = 1.0
        return out

    def _to_logits(self, scores: torch.Tensor) -> torch.Tensor:
        if self.kind in ("probabilities", "zipmap", "labels"):
            return torch.log(scores.clamp_min(1e-12))
        return scores

    # --- the white-box twin ---------------------------------------------------------------
    def _black(self, reason: reasons.Reason) -> None:
        self.twin_note, self.twin_details = reason.sentence, reason.details

    def _build_twin(self) -> None:
        names = [o.name for o in self.onnx_model.proto.graph.output]
        try:
            full = load_external_weights(self.onnx_model.proto, self.onnx_model.path)
        except Exception as exc:  # validated already; a read error still leaves the runtime
            self._black(reasons.unreadable_weights(exc))
            return
        rewritten = normalize(full)
        self.normalized = rewritten.steps
        batch = self.facts.static_batch
        # (graph, what was done to it, chunk size): a fixed batch is freed if provably right,
        # else the twin runs in chunks of it (onnx_batch).
        tries: list[tuple[Any, list[str], int | None]] = [(rewritten.proto, [], None)]
        if batch is not None:
            freed = free_batch(rewritten.proto, batch, self.facts.scores_output)
            tries = [(freed.proto, freed.steps, None)] if freed.proto is not None else []
            tries.append((rewritten.proto, [f"the graph's fixed batch of {batch} is run in "
                                            "chunks of it"], batch))
        for proto, steps, chunk in tries:
            module, why = convert_to_torch(proto, names.index(self.facts.scores_output))
            if module is None:
                self._black(why)  # the graph's operators: another rewrite would not help
                return
            twin = self._twin(module if chunk is None else FixedBatch(module, chunk))
            if twin is not None:
                self.twin, self.normalized = twin, rewritten.steps + steps
                self.twin_note, self.twin_details = "", None
                return

    def _twin(self, module: nn.Module) -> TorchModelAdapter | None:
        """``module`` as an adapter if it runs and matches onnxruntime, else None (reason set)."""
        try:
            twin = TorchModelAdapter(module, input_shape=self.input_shape,
                                     num_classes=self.num_classes, input_range=self.input_range,
                                     mean=self.mean, std=self.std, device=self.device,
                                     format="onnx (onnx2torch twin)")
        except Exception as exc:  # the twin is an extra; the runtime still audits the model
            self._black(reasons.module_fails(exc, (2, *self.input_shape),
                                             self.facts.static_batch))
            return None
        return twin if self._agrees(twin, self._sample()) else None

    def _sample(self) -> torch.Tensor:
        """Random inputs, as many as the graph's fixed batch is not (so freeing it is tested)."""
        g = torch.Generator().manual_seed(0)
        count = 8 if self.facts.static_batch != 8 else 9
        if self.input_range is not None:
            lo, hi = self.input_range
            return lo + (hi - lo) * torch.rand(count, *self.input_shape, generator=g)
        return torch.randn(count, *self.input_shape, generator=g)

    def _agrees(self, twin: TorchModelAdapter, x: torch.Tensor) -> bool:
        kind, twin.network.output_kind = twin.network.output_kind, "logits"  # raw outputs
        try:
            with torch.no_grad():
                mine = twin.network(x.to(twin.device)).float().cpu()
            theirs = self._run(x).float()
        except Exception as exc:
            self._black(reasons.module_fails(exc, tuple(x.shape), self.facts.static_batch))
            return False
        finally:
            twin.network.output_kind = kind
        diff = float((mine - theirs).abs().max()) if mine.shape == theirs.shape else float("inf")
        scale = 1.0 + float(theirs.abs().max())
        self.twin_max_abs_diff = diff
        if not diff <= TWIN_TOLERANCE * scale:
            self._black(reasons.disagrees(diff, self.facts.static_batch))
            return False
        return True

    # --- the adapter contract -------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The torch twin (memorization re-trains a fresh copy of it); a black box has none,
        so ``hasattr(adapter, "model")`` is False and re-training probes skip it."""
        if self.twin is None:
            raise AttributeError("a black-box ONNX model has no trainable torch module")
        return self.twin.model

    @property
    def path(self) -> str:
        return PATH_WHITE if self.twin is not None else PATH_BLACK

    @property
    def path_words(self) -> str:
        """Which path ran and why, as the report says it."""
        if self.twin is not None:
            diff = self.twin_max_abs_diff or 0.0
            return f"white box (converted network matches onnxruntime to {diff:.1g})"
        return f"black box: {self.twin_note or 'no converted network'}"

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.twin is not None and torch.is_grad_enabled():
            return self.twin.logits(x)
        return self._to_logits(self._run(x)).to(self.device)

    def predict_logits(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        # Always the runtime: the audited numbers are the shipped model's, not the twin's.
        batch_size = batch_size or self.auto_batch_size("forward")
        outputs = [self._to_logits(self._run(x[s : s + batch_size])).float()
                   for s in range(0, len(x), batch_size)]
        return torch.cat(outputs) if outputs else torch.empty(0, self.num_classes)

    def as_module(self) -> nn.Module:
        if self.twin is None:
            raise NotImplementedError(f"black-box ONNX model: {self.twin_note}")
        return self.twin.as_module()

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.twin is None:
            raise NotImplementedError("black-box ONNX model: nothing to re-train")
        return self.twin.wrap(module)

    @contextmanager
    def dropout_enabled(self) -> Iterator[bool]:
        yield False  # onnxruntime runs the graph in inference mode

    def _diagnostic_kind(self) -> str:
        return {"zipmap": "probabilities"}.get(self.kind, self.kind)

    def _notes(self) -> list[str]:
        notes = [f"ONNX model run by onnxruntime ({self.provider}); {self.path}"]
        if self.twin is None:
            notes.append(f"no input gradients: {self.twin_note}; gradient-free attacks are used")
        if self.labels_only:
            notes.append("the model returns labels only: probabilities are one-hot and the "
                         "adversarial probe uses a decision-based attack")
        elif self.kind == "zipmap":
            notes.append("ZipMap outputs: class probabilities per example")
        return notes

    def diagnose(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Diagnostics:
        """Output kind, randomness and (with a twin) its agreement and gradients on real data."""
        first, second = self._run(x), self._run(x)
        if self.kind == "logits":
            self.kind = output_kind(first)
        diff = float((first - second).abs().max()) if first.numel() else 0.0
        if self.twin is not None and not self._agrees(self.twin, x):
            self.twin = None
            self.supports_gradients = False
        notes = self._notes()
        if self.kind == "probabilities" and self.facts.scores_kind == "logits":
            notes.append("the scores are probabilities (softmax inside); auditkit uses their log")
        diag = Diagnostics(output_kind=self._diagnostic_kind(), stochastic=diff > 1e-5,
                           stochastic_max_diff=diff, notes=notes)
        if self.twin is not None:
            self.twin.diagnose(x, y)
            twin_diag = self.twin.diagnostics
            diag.gradient_finite = twin_diag.gradient_finite
            diag.gradient_nonzero_fraction = twin_diag.gradient_nonzero_fraction
            self.supports_gradients = self.twin.supports_gradients
        self.diagnostics = diag
        return diag

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": self.path,
            "path_taken": "white box" if self.twin is not None else "black box",
            "white_box_reason": self.path_words,
            "normalized": self.normalized,
            "runtime": f"onnxruntime ({self.provider})",
            "outputs": self.kind,
            "twin": {"used": self.twin is not None, "why_not": self.twin_note or None,
                     "details": self.twin_details, "max_abs_diff": self.twin_max_abs_diff},
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
        }

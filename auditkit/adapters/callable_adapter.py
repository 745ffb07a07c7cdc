"""A black box: a callable returning probabilities (or labels), audited without gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from auditkit.adapters.base import Diagnostics, ModelAdapter
from auditkit.adapters.network import output_kind
from auditkit.errors import AuditkitInputError


class CallableAdapter(ModelAdapter):
    """Adapter for a black box: ``fn(numpy batch) -> probabilities``; no gradients.

    Args:
        fn: maps an array of shape ``(N, *input_shape)`` to class probabilities ``(N, C)``
            (``outputs="logits"``: raw scores), or to integer labels ``(N,)`` (labels only).
        input_shape, num_classes, input_range: as for ``TorchModelAdapter``.
        outputs: ``probabilities`` | ``logits`` | ``labels`` (1-D integer answers are
            recognized as labels on their own).

    Example:
        >>> adapter = CallableAdapter(sk_model.predict_proba, input_shape=(20,), num_classes=2,
        ...                           input_range=None)
    """

    supports_gradients = False

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        input_shape: Sequence[int],
        num_classes: int,
        input_range: tuple[float, float] | None = None,
        outputs: str = "probabilities",
    ) -> None:
        self.fn = fn
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.input_range = tuple(float(v) for v in input_range) if input_range else None
        self.device = torch.device("cpu")
        self.format = "callable"
        self.outputs = outputs
        self.diagnostics = Diagnostics(
            output_kind=outputs,
            gradient_finite=None,
            notes=["black-box model: no input gradients; the adversarial probe uses "
                   "gradient-free attacks"],
        )

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.fn(x.detach().cpu().numpy())
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu().numpy()
        raw = np.asarray(raw)
        if raw.ndim == 1 and len(raw) == len(x) and (
            self.outputs == "labels" or raw.dtype.kind in "iub"
        ):
            return self._one_hot(raw)
        out = torch.as_tensor(np.asarray(raw, dtype=np.float32))
        if out.ndim != 2 or out.shape != (len(x), self.num_classes):
            raise AuditkitInputError(
                f"the model function returned shape {tuple(out.shape)} for {len(x)} examples; "
                f"expected ({len(x)}, {self.num_classes}) class probabilities"
            )
        return out

    def _one_hot(self, labels: np.ndarray) -> torch.Tensor:
        """A labels-only black box (``fn`` returns class indices): one-hot probabilities."""
        index = labels.astype(np.int64)
        if len(index) and (index.min() < 0 or index.max() >= self.num_classes):
            raise AuditkitInputError(
                f"the model function returned label {int(index.max())} outside 0..."
                f"{self.num_classes - 1}"
            )
        self.outputs = "labels"
        out = torch.zeros(len(index), self.num_classes)
        out[torch.arange(len(index)), torch.from_numpy(index)] = 1.0
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self._scores(x)
        if self.outputs in ("probabilities", "labels"):
            return torch.log(out.clamp_min(1e-12))
        return out

    def diagnose(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Diagnostics:
        """Check what the function really returns and whether it is deterministic."""
        first, second = self._scores(x), self._scores(x)
        kind = "labels" if self.outputs == "labels" else output_kind(first)
        notes = ["black-box model: no input gradients; the adversarial probe uses "
                 "gradient-free attacks"]
        if kind == "labels":
            notes.append("the function returns labels only: a decision-based attack is used")
        elif self.outputs == "probabilities" and kind != "probabilities":
            # Taking the log of scores that are not probabilities would scramble the ranking.
            notes.append(
                f"the function was declared to return probabilities but returns {kind}; "
                "auditkit uses them as logits"
            )
            self.outputs = "logits"
        diff = float((first - second).abs().max()) if first.numel() else 0.0
        self.diagnostics = Diagnostics(
            output_kind=kind,
            stochastic=diff > 1e-5,
            stochastic_max_diff=diff,
            gradient_finite=None,
            notes=notes,
        )
        if self.diagnostics.stochastic:
            notes.append(f"two calls on the same inputs differ (max |Δ| = {diff:.3g})")
        return self.diagnostics

"""What a probe sees: the model through its adapter, the data, the one clean pass, the seed.

Both the pipeline (which builds it) and the probes (which read it) import it from here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from auditkit.adapters.base import ModelAdapter
from auditkit.data.core import AuditData
from auditkit.progress import Progress
from auditkit.results import ProbeResult

#: Examples the checks on the first examples use (output kind, randomness, gradients): 64 of
#: a small input, fewer of a large one, so the check costs about as much as 64 CIFAR images
#: (a ResNet-50 at 224×224 is checked on 8, not on 64 × 2 s of passes).
DIAGNOSTIC_SAMPLE = 64
_DIAGNOSTIC_ELEMENTS = 64 * 3 * 32 * 32
_DIAGNOSTIC_MIN = 8


def diagnostic_sample_size(input_shape: tuple[int, ...] | torch.Size) -> int:
    """How many examples the diagnostic checks run on, for inputs of ``input_shape``."""
    elements = max(1, int(np.prod(tuple(input_shape) or (1,))))
    return int(max(_DIAGNOSTIC_MIN, min(DIAGNOSTIC_SAMPLE, _DIAGNOSTIC_ELEMENTS // elements)))


def derive_seed(seed: int, name: str) -> int:
    """A stable per-probe seed, so a probe's numbers do not depend on which others ran."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


@dataclass
class AuditContext:
    """Everything a probe may use. Built once per audit; probes must not mutate the data.

    Attributes:
        adapter: the model seen through the adapter contract.
        data: the audit examples.
        splits: deterministic index arrays (``calibration``, ``evaluation``).
        clean_logits: logits of the whole audit set, computed ONCE and shared (CPU tensor).
        seed, budget, device: run settings.
        results: results of the probes that already ran (cross-probe consumers read these).
        artifacts: in-memory per-example arrays probes share (not written to JSON), e.g.
            ``artifacts["adversarial"]["robust_correct"]``.
    """

    adapter: ModelAdapter
    data: AuditData
    seed: int
    budget: str
    splits: dict[str, np.ndarray]
    clean_logits: torch.Tensor
    progress: Progress = field(default_factory=lambda: Progress(False))
    results: dict[str, ProbeResult] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.adapter.device

    @property
    def clean_probabilities(self) -> torch.Tensor:
        return torch.softmax(self.clean_logits, dim=-1)

    @property
    def clean_predictions(self) -> torch.Tensor:
        return self.clean_logits.argmax(dim=-1)

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.clean_predictions == self.data.y

    def generator(self, name: str, device: torch.device | str = "cpu") -> torch.Generator:
        """A torch generator seeded for ``name`` (use instead of global RNG state)."""
        g = torch.Generator(device=device)
        g.manual_seed(derive_seed(self.seed, name))
        return g

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(self.seed, name))


__all__ = ["AuditContext", "derive_seed"]

"""Entropy decomposition of a sampled predictive distribution (Depeweg et al. 2018).

Given S probability vectors per example (MC-dropout passes, test-time augmentations or any other
samples of the model's beliefs):

    predictive entropy  H[ E_s p_s ]          total uncertainty
  = expected entropy    E_s H[ p_s ]          aleatoric: the samples agree the answer is unclear
  + mutual information  H[E_s p_s] − E_s H[p_s]   epistemic: the samples disagree

Mutual information is ≥ 0 (Jensen: entropy is concave) and exactly 0 when every sample is
identical, as for a deterministic model. All entropies are in nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def entropy(probabilities: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats along ``dim``, with 0 · log 0 = 0."""
    p = probabilities.double()
    return -(torch.xlogy(p, p)).sum(dim=dim)


@dataclass(frozen=True)
class UncertaintyDecomposition:
    """Per-example uncertainties from sampled predictions (numpy arrays of shape ``(N,)``).

    Attributes:
        predictive: entropy of the mean prediction (total uncertainty).
        aleatoric: mean entropy of the individual samples.
        epistemic: mutual information between the prediction and the sample
            (``predictive − aleatoric``, clipped at 0 against rounding).
        mean_probabilities: ``(N, K)`` the averaged predictive distribution.
        n_samples: S.
    """

    predictive: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    mean_probabilities: np.ndarray
    n_samples: int


class UncertaintyAccumulator:
    """Streams samples one at a time, so S samples of N×K probabilities need O(N·K) memory.

    Example:
        >>> acc = UncertaintyAccumulator()
        >>> for _ in range(20):
        ...     acc.update(torch.softmax(net(x), -1))  # dropout on
        >>> acc.result().epistemic.mean()
    """

    def __init__(self) -> None:
        self._sum_probabilities: torch.Tensor | None = None
        self._sum_entropy: torch.Tensor | None = None
        self.n_samples = 0

    def update(self, probabilities: torch.Tensor) -> None:
        """Add one sample: ``(N, K)`` class probabilities."""
        p = torch.as_tensor(probabilities).detach().cpu().double()
        if p.ndim != 2:
            raise ValueError("each sample must have shape (examples, classes)")
        if self._sum_probabilities is None:
            self._sum_probabilities = torch.zeros_like(p)
            self._sum_entropy = torch.zeros(len(p), dtype=torch.float64)
        elif p.shape != self._sum_probabilities.shape:
            raise ValueError("every sample must have the same shape (examples, classes)")
        self._sum_probabilities += p
        self._sum_entropy += entropy(p)
        self.n_samples += 1

    def result(self) -> UncertaintyDecomposition:
        if self._sum_probabilities is None or self._sum_entropy is None:
            raise ValueError("no samples were added")
        mean = self._sum_probabilities / self.n_samples
        predictive = entropy(mean)
        aleatoric = self._sum_entropy / self.n_samples
        return UncertaintyDecomposition(
            predictive=predictive.numpy(),
            aleatoric=aleatoric.numpy(),
            epistemic=(predictive - aleatoric).clamp_min(0.0).numpy(),
            mean_probabilities=mean.numpy(),
            n_samples=self.n_samples,
        )


def decompose_uncertainty(sample_probabilities: torch.Tensor) -> UncertaintyDecomposition:
    """Split predictive entropy into aleatoric and epistemic parts.

    Args:
        sample_probabilities: ``(S, N, K)`` class probabilities of S samples for N examples.

    Example:
        >>> probs = torch.stack([torch.softmax(net(x), -1) for _ in range(20)])  # dropout on
        >>> u = decompose_uncertainty(probs)
        >>> u.epistemic.mean()
    """
    p = torch.as_tensor(sample_probabilities)
    if p.ndim != 3 or p.shape[0] < 1:
        raise ValueError("sample_probabilities must have shape (samples, examples, classes)")
    accumulator = UncertaintyAccumulator()
    for sample in p:
        accumulator.update(sample)
    return accumulator.result()

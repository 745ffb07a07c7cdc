"""Measure: run the model on noisy copies of the audit examples; return plain data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from auditkit.context import AuditContext
from auditkit_example.options import NoiseOptions


@dataclass(frozen=True)
class NoiseMeasurement:
    """Accuracy at each noise level (averaged over draws) on ``n_examples`` examples."""

    sigmas: tuple[float, ...]
    accuracies: tuple[float, ...]
    clean_accuracy: float
    headline_sigma: float
    n_examples: int


def measure(context: AuditContext, opts: NoiseOptions) -> NoiseMeasurement:
    adapter, data = context.adapter, context.data
    n = min(opts.n_examples, len(data))
    # Seeded from the audit's seed: same seed, same numbers, whichever other probes ran.
    index = torch.as_tensor(np.sort(context.rng("noise_robustness/examples")
                                    .choice(len(data), size=n, replace=False)))
    x, y = data.x[index], data.y[index]
    box = adapter.input_range
    # Images: a fraction of the pixel range. Tables: of each feature's own standard deviation
    # (one std of the whole table would add noise of 743 to a 0/1 column beside a year column).
    width = (box[1] - box[0]) if box is not None else data.x.float().std(dim=0).clamp_min(1e-12)
    generator = context.generator("noise_robustness/noise")
    sigmas = tuple(sorted({*opts.sigmas, opts.headline_sigma}))
    accuracies = []
    clean = float(context.clean_correct[index].float().mean())
    for sigma in context.progress.track(sigmas, total=len(sigmas), description="noise levels"):
        if sigma == 0:  # no noise: the shared clean pass already has the answer
            accuracies.append(clean)
            continue
        right = 0.0
        for _ in range(opts.draws):
            noisy = adapter.clamp(x + sigma * width * torch.randn(x.shape, generator=generator))
            right += float((adapter.predict_logits(noisy).argmax(-1) == y).float().mean())
        accuracies.append(right / opts.draws)
    return NoiseMeasurement(sigmas, tuple(accuracies), clean, opts.headline_sigma, n)

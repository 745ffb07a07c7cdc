"""The check behind the adversarial probe's bf16 option: PGD robust accuracy in float32 and under
bf16 autocast, side by side (they must agree within one point)."""

from __future__ import annotations

from typing import Any

import torch

from auditkit.adapters.torch_adapter import TorchModelAdapter


def compare_bf16_robust_accuracy(
    adapter: TorchModelAdapter,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """PGD robust accuracy on a sample in float32 and under bf16 autocast, side by side.

    The check behind the bf16 option: the two must agree within one point (0.01).
    Returns ``{"fp32", "bf16", "difference", "within_one_point", "bf16_used", "n"}``.
    """
    from auditkit.attacks import PGD

    def robust(bf16: bool) -> tuple[float, bool]:
        generator = torch.Generator(device=adapter.device).manual_seed(seed)
        with adapter.mixed_precision(bf16) as used:
            out = PGD(adapter.as_module(), eps=eps, steps=steps, box=adapter.input_range,
                      generator=generator).perturb(x.to(adapter.device), y.to(adapter.device))
        # Judged in float32 either way: bf16 may only change how well the attack searches.
        with torch.inference_mode():
            logits = adapter.logits(out.adversarial)
        return float((logits.argmax(-1).cpu() == y.cpu()).float().mean()), used

    fp32, _ = robust(False)
    bf16, used = robust(True)
    return {
        "n": int(len(x)),
        "eps": float(eps),
        "steps": int(steps),
        "fp32": fp32,
        "bf16": bf16,
        "difference": bf16 - fp32,
        "within_one_point": abs(bf16 - fp32) <= 0.01 + 1e-9,
        "bf16_used": used,
    }

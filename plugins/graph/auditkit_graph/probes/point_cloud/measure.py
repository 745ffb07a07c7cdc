"""Measure: shuffle, rotate and attack the clouds; return plain data."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from auditkit.context import AuditContext
from auditkit_graph.probes.point_cloud.options import PointCloudOptions

# Logit changes below this are float round-off of a reordered computation, not order dependence.
LOGIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PointCloudMeasurement:
    """What shuffling, rotating and attacking did to the evaluated clouds (accuracies in [0, 1])."""

    examples: int
    points: int
    clean_accuracy: float
    permutations: int
    permutation_agreement: float
    max_permutation_logit_change: float
    z_rotation_accuracy: float
    rotation_accuracy: float
    rotations: int
    eps: float
    steps: int
    eot_samples: int
    pgd_accuracy: float
    eot_accuracy: float


def random_rotations(n: int, generator: torch.Generator, *, axis: str) -> torch.Tensor:
    """``n`` rotation matrices: about the z axis (``axis="z"``) or uniform on SO(3) (``"any"``)."""
    if axis == "z":
        angle = torch.rand(n, generator=generator) * 2 * math.pi
        c, s = torch.cos(angle), torch.sin(angle)
        zero, one = torch.zeros(n), torch.ones(n)
        return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], 1).view(n, 3, 3)
    q = torch.randn(n, 4, generator=generator)  # uniform unit quaternions
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], 1).view(n, 3, 3)


def rotate(clouds: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    return clouds @ rotations.transpose(1, 2).to(clouds.device, clouds.dtype)


def measure(context: AuditContext, opts: PointCloudOptions) -> PointCloudMeasurement:
    adapter, data = context.adapter, context.data
    index = context.splits["evaluation"][: opts.examples]
    x, y = data.x[index], data.y[index]
    clean_logits = context.clean_logits[index]
    clean_pred = clean_logits.argmax(-1)
    clean_correct = clean_pred == y
    g = context.generator("point_cloud")
    agree, max_change = [], 0.0
    for _ in range(opts.permutations):
        order = torch.argsort(torch.rand(x.shape[0], x.shape[1], generator=g), dim=1)
        shuffled = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
        logits = adapter.predict_logits(shuffled)
        change = (logits - clean_logits).abs().amax(dim=1)
        same = (logits.argmax(-1) == clean_pred) | (change <= LOGIT_TOLERANCE)
        agree.append(same.float())
        max_change = max(max_change, float(change.max()))
    rotations = {}
    for axis in ("z", "any"):
        hits = []
        for _ in range(opts.rotations):
            turned = adapter.clamp(rotate(x, random_rotations(len(x), g, axis=axis)))
            hits.append((adapter.predict_logits(turned).argmax(-1) == y).float())
        rotations[axis] = float(torch.stack(hits).mean())
    pgd_correct = _pgd(adapter, x, y, g, opts, eot=False) & clean_correct
    eot_correct = _pgd(adapter, x, y, g, opts, eot=True) & clean_correct
    return PointCloudMeasurement(
        examples=int(len(x)), points=int(x.shape[1]),
        clean_accuracy=float(clean_correct.float().mean()), permutations=opts.permutations,
        permutation_agreement=float(torch.stack(agree).mean()),
        max_permutation_logit_change=max_change, z_rotation_accuracy=rotations["z"],
        rotation_accuracy=rotations["any"], rotations=opts.rotations, eps=opts.eps,
        steps=opts.steps, eot_samples=opts.eot_samples,
        pgd_accuracy=float(pgd_correct.float().mean()),
        eot_accuracy=float(eot_correct.float().mean()),
    )

def _pgd(adapter, x: torch.Tensor, y: torch.Tensor, g: torch.Generator, opts: PointCloudOptions, *, eot: bool) -> torch.Tensor:
    """Per cloud: still classified correctly after the attack (best iterate, or under fresh
    rotations for EOT)."""
    module, device = adapter.as_module(), adapter.device
    samples = opts.eot_samples if eot else 1
    steps, eps = opts.steps, opts.eps
    correct = torch.zeros(len(x), dtype=torch.bool)
    for start in range(0, len(x), 64):
        xb, yb = x[start : start + 64].to(device), y[start : start + 64].to(device)
        delta = torch.zeros_like(xb, requires_grad=True)
        still = torch.ones(len(xb), dtype=torch.bool, device=device)
        for step in range(steps + 1):
            total = 0.0
            for _ in range(samples):
                turned = adapter.clamp(xb + delta)
                if eot:
                    turned = rotate(turned, random_rotations(len(xb), g, axis="z"))
                logits = module(turned)
                if not eot:
                    still &= logits.argmax(-1) == yb
                total = total + nn.functional.cross_entropy(logits, yb, reduction="sum")
            if step == steps or eps == 0:
                break
            (grad,) = torch.autograd.grad(total, delta)
            with torch.no_grad():
                delta += 2.5 * eps / steps * grad.sign()
                delta.clamp_(-eps, eps)
        if eot:  # judged by the prediction expected under fresh rotations
            with torch.no_grad():
                probs = 0
                for _ in range(opts.rotations):
                    turned = rotate(adapter.clamp(xb + delta), random_rotations(len(xb), g, axis="z"))
                    probs = probs + torch.softmax(module(turned).float(), -1)
                still = probs.argmax(-1) == yb
        correct[start : start + 64] = still.cpu()
    return correct

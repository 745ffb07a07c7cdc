"""Attacks on a node classifier's graph and features (pure tensor code, no I/O).

Threat model for structure attacks: the attacker flips (inserts or deletes) at most ``budget``
undirected edges anywhere in the graph, to lower accuracy on the target nodes (a global,
poisoning-free evasion attack: the model is fixed).

- ``random_flips``: ``budget`` node pairs chosen uniformly, each flipped. A baseline.
- ``dice``: "delete internally, connect externally" (Waniek et al. 2018): half the budget deletes
  edges between same-label nodes, half inserts edges between different-label nodes.
- ``prbcd``: projected randomized block coordinate descent (Geisler et al. 2021) through
  ``torch_geometric.contrib.nn.PRBCDAttack``, the strong gradient-based attack.
- ``feature_pgd``: L∞ PGD on the target nodes' features (all at once, on the full graph), in
  the box (or in feature standard deviations when the features are unbounded).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

PRBCD_MIN_BLOCK = 10_000


def undirected_pairs(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Each undirected edge once, as the linear index ``i * n + j`` with ``i < j``."""
    i, j = edge_index
    keep = i < j
    return torch.unique(i[keep] * num_nodes + j[keep])


def edge_index_from_pairs(pairs: torch.Tensor, num_nodes: int) -> torch.Tensor:
    i, j = pairs // num_nodes, pairs % num_nodes
    return torch.cat([torch.stack([i, j]), torch.stack([j, i])], dim=1)


def flip(edge_index: torch.Tensor, flips: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``edge_index`` with the undirected pairs in ``flips`` (linear indices) toggled."""
    existing = undirected_pairs(edge_index, num_nodes)
    both = torch.cat([existing, torch.unique(flips).to(existing.device)])
    values, counts = torch.unique(both, return_counts=True)
    return edge_index_from_pairs(values[counts == 1], num_nodes)


def _random_pairs(count: int, num_nodes: int, generator: torch.Generator) -> torch.Tensor:
    chosen: set[int] = set()
    while len(chosen) < count:
        i = torch.randint(0, num_nodes, (2 * count,), generator=generator)
        j = torch.randint(0, num_nodes, (2 * count,), generator=generator)
        for a, b in zip(i.tolist(), j.tolist(), strict=True):
            if a != b and len(chosen) < count:
                chosen.add(min(a, b) * num_nodes + max(a, b))
    return torch.tensor(sorted(chosen), dtype=torch.long)


def random_flips(
    edge_index: torch.Tensor, num_nodes: int, budget: int, generator: torch.Generator
) -> torch.Tensor:
    """Flip ``budget`` uniformly drawn node pairs."""
    return flip(edge_index, _random_pairs(budget, num_nodes, generator), num_nodes)


def dice(
    edge_index: torch.Tensor, labels: torch.Tensor, budget: int, generator: torch.Generator
) -> torch.Tensor:
    """Delete same-label edges and insert different-label edges, half the budget each."""
    device, edge_index, labels = edge_index.device, edge_index.cpu(), labels.cpu()
    n = len(labels)
    existing = undirected_pairs(edge_index, n)
    same = labels[existing // n] == labels[existing % n]
    internal = existing[same]
    deletions = internal[torch.randperm(len(internal), generator=generator)[: budget // 2]]
    wanted = budget - len(deletions)
    present = set(existing.tolist())
    insertions: list[int] = []
    for _ in range(100):
        if len(insertions) >= wanted:
            break
        for pair in _random_pairs(4 * wanted, n, generator).tolist():
            a, b = divmod(pair, n)
            if labels[a] != labels[b] and pair not in present and len(insertions) < wanted:
                insertions.append(pair)
                present.add(pair)
    flips = torch.cat([deletions, torch.tensor(insertions, dtype=torch.long)])
    return flip(edge_index, flips, n).to(device)


class _GraphOnly(nn.Module):
    """``gnn(x, edge_index, edge_weight)`` with train/eval frozen in eval (PRBCD toggles nothing
    we want: dropout must stay off while the attack differentiates)."""

    def __init__(self, gnn: nn.Module) -> None:
        super().__init__()
        self.gnn = gnn

    def train(self, mode: bool = True) -> _GraphOnly:
        return self

    def forward(self, x, edge_index, edge_weight=None):
        return self.gnn(x, edge_index, edge_weight)


def prbcd(
    gnn: nn.Module, x: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor,
    targets: torch.Tensor, budget: int, *, epochs: int, fine_tune_epochs: int,
) -> torch.Tensor:
    """PyG's PRBCD: the perturbed ``edge_index`` with at most ``budget`` flips (global RNG)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # contrib warns on import that it is experimental
        from torch_geometric.contrib.nn import PRBCDAttack

    n = x.shape[0]
    # Candidate pairs sampled per step: enough to hold the budget many times over; small blocks
    # keep each step cheap on small graphs (PyG's examples use 250k for large ones).
    block = min(n * (n - 1) // 2, max(PRBCD_MIN_BLOCK, 20 * budget))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # contrib warns that it is experimental
        attack = PRBCDAttack(
            _GraphOnly(gnn), block_size=block, epochs=epochs + fine_tune_epochs,
            epochs_resampling=epochs, log=False,
        )
        perturbed, _ = attack.attack(x, edge_index, labels, budget, targets)
    return perturbed


def feature_pgd(
    gnn: nn.Module, x: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor,
    targets: torch.Tensor, eps: torch.Tensor | float, box: tuple[float, float] | None, steps: int,
) -> torch.Tensor:
    """L∞ PGD on the targets' feature rows (jointly); returns the perturbed feature matrix.

    ``eps`` is a number or a per-feature tensor (eps × std for unbounded features).
    """
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    step = 2.5 * eps_t / steps
    delta = torch.zeros_like(x[targets], requires_grad=True)
    best = x.clone()
    best_correct = None
    for _ in range(steps + 1):
        perturbed = x.index_put((targets,), x[targets] + delta)
        if box is not None:
            perturbed = perturbed.clamp(*box)
        logits = gnn(perturbed, edge_index)[targets]
        correct = logits.argmax(-1) == labels[targets]
        if best_correct is None or int(correct.sum()) < int(best_correct.sum()):
            best, best_correct = perturbed.detach(), correct
        loss = nn.functional.cross_entropy(logits, labels[targets], reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += step * grad.sign()
            delta.copy_(torch.maximum(torch.minimum(delta, eps_t), -eps_t))
    return best

"""NodeClassifier: rows of node features in, the same logits the full graph gives out."""

from __future__ import annotations

import torch
from auditkit_graph.data import node_audit_data


def test_clean_rows_give_the_full_graph_logits(sbm_model):
    graph, gnn, classifier = sbm_model
    data = node_audit_data(graph)
    with torch.no_grad():
        full = gnn(graph.x, graph.edge_index)[graph.test_mask]
        rows = classifier(data.x)
        with_grad = classifier(data.x.clone().requires_grad_(True))
    assert torch.allclose(rows, full) and torch.allclose(with_grad, full, atol=1e-5)


def test_perturbed_rows_are_independent_and_exact(karate_model):
    graph, gnn, classifier = karate_model
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 5, 5, 33])  # node 5 twice: two different perturbations in one batch
    rows = graph.x[ids] + 0.3 * torch.rand(len(ids), graph.x.shape[1], generator=g)
    rows = rows.requires_grad_(True)
    fast = classifier(rows)
    copies = classifier._copies(rows, ids)
    reference = []
    for node, row in zip(ids.tolist(), rows.detach(), strict=True):
        x = graph.x.clone()
        x[node] = row  # only this node's features change
        reference.append(gnn(x, graph.edge_index)[node])
    reference = torch.stack(reference)
    assert torch.allclose(fast, reference, atol=1e-5) and torch.allclose(copies, reference, atol=1e-5)
    (grad,) = torch.autograd.grad(fast.sum(), rows)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0

"""Networks the plugin trains and rebuilds from architecture files.

- ``GCN``: Kipf & Welling's graph convolutional network, ``H' = σ(D̂^-½ Â D̂^-½ H W)``, on
  PyG's ``GCNConv``; ``forward(x, edge_index, edge_weight=None)`` (the signature PRBCD uses).
- ``NodeClassifier``: a GCN together with its fixed graph, presented the way the core probes see
  every model: a batch of node-feature rows in, those nodes' logits out (see ``forward``).
- ``DGCNN``: Wang et al.'s dynamic graph CNN for point clouds: EdgeConv over a k-nearest-neighbour
  graph recomputed from the current features at every layer (``torch.cdist`` + ``topk``; PyG's
  ``DynamicEdgeConv`` needs pyg-lib), then a global max pool — invariant to the order of points.
- ``PointMLP``: an MLP over the flattened point list — deliberately order-dependent, the
  counter-example the permutation check must catch.

The factories at the bottom (``gcn_nodes``, ``dgcnn``, ``point_mlp``) are what the entry-point
group ``auditkit.architectures`` registers: plain keyword parameters in, ``nn.Module`` out.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import EdgeConv, GCNConv, MessagePassing
from torch_geometric.utils import k_hop_subgraph

# Copies of receptive fields evaluated in one batched forward pass (nodes in all copies).
MAX_BATCH_NODES = 200_000


class GCN(nn.Module):
    """``layers`` GCNConv layers with ReLU and dropout between them; logits out."""

    def __init__(
        self, in_channels: int, hidden: int, num_classes: int, *, layers: int = 2, dropout: float = 0.5
    ) -> None:
        super().__init__()
        sizes = [in_channels] + [hidden] * (layers - 1) + [num_classes]
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.dropout = float(dropout)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index, edge_weight)
            if i < len(self.convs) - 1:
                x = nn.functional.dropout(torch.relu(x), p=self.dropout, training=self.training)
        return x


def receptive_hops(gnn: nn.Module) -> int:
    """Hops that determine one node's output: one per message-passing layer, plus one because
    symmetric normalization reads the degree of the farthest nodes (their edges one hop further)."""
    return sum(isinstance(m, MessagePassing) for m in gnn.modules()) + 1


class NodeClassifier(nn.Module):
    """A node classifier on a fixed graph, seen as "node-feature rows in, logits out".

    The audit examples are nodes. ``forward(rows)`` reads each row as the feature vector of the
    node whose stored features are nearest (Euclidean; exact for unperturbed rows) and returns that
    node's logits when *only that node's* features are replaced by the row. Each row is evaluated
    in its own copy of the node's receptive field (its ``receptive_hops``-hop subgraph, with
    degrees as in the full graph), so rows of one batch never influence each other and a batch
    may hold the same node several times (attack restarts, EOT draws). Unperturbed rows without
    gradients take one full-graph pass (the exact same numbers, much faster).

    Buffers ``node_features`` (N, F) and ``edge_index`` (2, E) hold the graph, so an architecture
    file carries it with the weights.
    """

    def __init__(self, gnn: nn.Module, num_nodes: int, num_features: int, num_edges: int) -> None:
        super().__init__()
        self.gnn = gnn
        self.register_buffer("node_features", torch.zeros(num_nodes, num_features))
        self.register_buffer("edge_index", torch.zeros(2, num_edges, dtype=torch.long))
        self._fields: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def set_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> NodeClassifier:
        self.node_features.copy_(x)
        self.edge_index.copy_(edge_index)
        self._fields.clear()
        return self

    def _load_from_state_dict(self, *args, **kwargs):  # a new graph invalidates the cached fields
        self._fields.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):  # .to(device) / .cuda(): cached fields would stay behind
        self._fields.clear()
        return super()._apply(fn, *args, **kwargs)

    def graph_logits(
        self, x: torch.Tensor | None = None, edge_index: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of every node of the (possibly perturbed) graph."""
        x = self.node_features if x is None else x
        edge_index = self.edge_index if edge_index is None else edge_index
        return self.gnn(x, edge_index, edge_weight)

    def identify(self, rows: torch.Tensor) -> torch.Tensor:
        """The node each feature row belongs to: the nearest stored feature row."""
        with torch.no_grad():
            distances = torch.cdist(rows.detach().float(), self.node_features.float())
            return distances.argmin(dim=1)

    def _field(self, node: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if node not in self._fields:
            subset, edges, mapping, _ = k_hop_subgraph(
                node, receptive_hops(self.gnn), self.edge_index, relabel_nodes=True,
                num_nodes=self.node_features.shape[0],
            )
            self._fields[node] = (subset, edges, int(mapping[0]))
        return self._fields[node]

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.reshape(len(rows), -1).to(self.node_features.dtype)
        ids = self.identify(rows)
        if not rows.requires_grad and torch.equal(rows, self.node_features[ids]):
            return self.graph_logits()[ids]
        if not self.training and isinstance(self.gnn, GCN) and len(self.gnn.convs) == 2:
            return self._two_layer_gcn(rows, ids)
        outputs, start = [], 0
        while start < len(rows):
            stop, size = start, 0
            while stop < len(rows) and (stop == start or size < MAX_BATCH_NODES):
                size += len(self._field(int(ids[stop]))[0])
                stop += 1
            outputs.append(self._copies(rows[start:stop], ids[start:stop]))
            start = stop
        return torch.cat(outputs)

    def _two_layer_gcn(self, rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The same numbers as ``_copies`` for a two-layer GCN in eval mode, in O(degree) per row.

        The first layer is linear in the features, so replacing node i's row by ``x_i + δ``
        changes the pre-activations ``Z1_j`` of exactly i's neighbours j (and i) by
        ``Â_ji · δW1``; node i's output then changes by ``Σ_j Â_ij (relu(Z1'_j) - relu(Z1_j)) W2``.
        (Edges are undirected, so ``Â`` is symmetric.)
        """
        from torch_geometric.nn.conv.gcn_conv import gcn_norm

        conv1, conv2 = self.gnn.convs
        x, n = self.node_features, self.node_features.shape[0]
        edges, weight = gcn_norm(self.edge_index, None, n, add_self_loops=True)
        source, target = edges
        order = torch.argsort(target, stable=True)
        source, target, weight = source[order], target[order], weight[order]
        ptr = torch.zeros(n + 1, dtype=torch.long, device=x.device)
        ptr[1:] = torch.cumsum(torch.bincount(target, minlength=n), 0)
        z1 = conv1(x, self.edge_index)
        out = conv2(torch.relu(z1), self.edge_index)
        shift = conv1.lin(rows) - conv1.lin(x[ids])  # δW1 per row
        counts = ptr[ids + 1] - ptr[ids]
        row_of = torch.repeat_interleave(torch.arange(len(ids), device=x.device), counts)
        starts = torch.repeat_interleave(ptr[ids], counts)
        edge = starts + torch.arange(len(row_of), device=x.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        neighbour, w = source[edge], weight[edge].unsqueeze(1)
        z_before = z1[neighbour]
        z_after = z_before + w * shift[row_of]
        change = conv2.lin(torch.relu(z_after) - torch.relu(z_before)) * w
        delta = torch.zeros(len(ids), change.shape[1], dtype=change.dtype, device=x.device)
        delta = delta.index_add(0, row_of, change)
        return out[ids] + delta

    def _copies(self, rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        subsets, edges, centers, offset = [], [], [], 0
        for node in ids.tolist():
            subset, local_edges, center = self._field(node)
            subsets.append(subset)
            edges.append(local_edges + offset)
            centers.append(center + offset)
            offset += len(subset)
        x = self.node_features[torch.cat(subsets)]
        center_index = torch.tensor(centers, device=x.device)
        x = x.index_put((center_index,), rows)  # out of place: gradients reach the rows
        return self.gnn(x, torch.cat(edges, dim=1))[center_index]


class DGCNN(nn.Module):
    """EdgeConv layers on a kNN graph rebuilt from each layer's features; max pool; MLP head.

    Input ``(B, P, 3)`` point clouds; output ``(B, num_classes)`` logits.
    """

    def __init__(self, num_classes: int, *, k: int = 10, widths: tuple[int, ...] = (32, 64), hidden: int = 64) -> None:
        super().__init__()
        self.k = int(k)
        sizes = [3, *widths]
        self.convs = nn.ModuleList(
            EdgeConv(nn.Sequential(nn.Linear(2 * a, b), nn.ReLU(), nn.Linear(b, b)), aggr="max")
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.head = nn.Sequential(nn.Linear(sum(widths), hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def knn_edges(self, h: torch.Tensor) -> torch.Tensor:
        """Edges j → i from each point's k nearest neighbours (itself excluded), per cloud."""
        batch, points, _ = h.shape
        k = min(self.k, points - 1)
        with torch.no_grad():
            # no matrix-product shortcut: the same pair gets the same distance in any order
            distances = torch.cdist(h, h, compute_mode="donot_use_mm_for_euclid_dist")
            distances.diagonal(dim1=1, dim2=2).fill_(float("inf"))
            neighbours = distances.topk(k, dim=-1, largest=False).indices  # (B, P, k)
        offsets = (torch.arange(batch, device=h.device) * points).view(batch, 1, 1)
        source = (neighbours + offsets).reshape(-1)
        target = (torch.arange(points, device=h.device).view(1, points, 1) + offsets).expand(batch, points, k).reshape(-1)
        return torch.stack([source, target])

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        batch, points, _ = clouds.shape
        h, features = clouds, []
        for conv in self.convs:
            flat = conv(h.reshape(batch * points, -1), self.knn_edges(h))
            h = flat.view(batch, points, -1)
            features.append(h)
        pooled = torch.cat(features, dim=-1).max(dim=1).values
        return self.head(pooled)


class PointMLP(nn.Module):
    """An MLP over the flattened point list: the order of points is part of its input."""

    def __init__(self, num_points: int, num_classes: int, *, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(num_points * 3, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return self.net(clouds)


# ---- architecture factories (entry-point group auditkit.architectures) ----------------------
def gcn_nodes(
    *, in_channels: int, hidden: int, num_classes: int, num_nodes: int, num_edges: int,
    layers: int = 2, dropout: float = 0.5,
) -> NodeClassifier:
    """A ``GCN`` with its graph (filled by ``load_state_dict``)."""
    gnn = GCN(in_channels, hidden, num_classes, layers=layers, dropout=dropout)
    return NodeClassifier(gnn, num_nodes, in_channels, num_edges)


def dgcnn(*, num_classes: int, k: int = 10, widths: list[int] | tuple[int, ...] = (32, 64), hidden: int = 64) -> DGCNN:
    return DGCNN(num_classes, k=k, widths=tuple(widths), hidden=hidden)


def point_mlp(*, num_points: int, num_classes: int, hidden: int = 128) -> PointMLP:
    return PointMLP(num_points, num_classes, hidden=hidden)

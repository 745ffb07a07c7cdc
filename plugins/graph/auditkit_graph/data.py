"""Graphs and point clouds without downloads: KarateClub (embedded in PyG), a synthetic
stochastic block model with a planted low-degree group, user graph files, synthetic shapes.

Node classification is audited on nodes: ``node_audit_data`` turns a graph into ``AuditData``
whose examples are the test nodes' feature rows, with the training nodes attached as ``train``
and sensitive columns ``degree`` (degree tertiles: GCNs are known to fail low-degree nodes) plus
every node attribute the graph carries (``group`` on the SBM graph).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.utils import stochastic_blockmodel_graph, to_undirected

from auditkit.data import AuditData
from auditkit.errors import AuditkitInputError, one_line

SBM_CLASSES = 3
SBM_NODES_PER_BLOCK = 100  # per (class, group) block: 600 nodes
SBM_P_IN = 0.08  # edge probability inside a class, between two "dense" nodes
SBM_P_OUT = 0.012  # across classes
SBM_SPARSE_FACTOR = 0.25  # a "sparse" node's edge probabilities are scaled by this
SBM_FEATURES = 16
SBM_SIGNAL = 0.6  # class mean offset in units of the feature noise σ = 1
SBM_TRAIN_FRACTION = 0.3

SHAPE_CLASSES = ("sphere", "cube", "cylinder", "cone", "torus")
SHAPE_POINTS = 64
SHAPE_NOISE = 0.02
POINT_BOX = (-1.5, 1.5)


@dataclass
class Graph:
    """One node-classification graph: features, undirected edges, labels, split, attributes."""

    name: str
    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    train_mask: torch.Tensor
    test_mask: torch.Tensor
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    class_names: list[str] | None = None
    input_range: tuple[float, float] | None = None
    synthetic: bool = False
    description: str = ""
    source: str = ""

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else int(self.y.max()) + 1

    def degree(self) -> torch.Tensor:
        return torch.bincount(self.edge_index[1], minlength=self.num_nodes)


def karate_graph() -> Graph:
    """Zachary's karate club as PyG ships it: 34 nodes, one-hot identity features, 4 classes
    (modularity communities), one labelled training node per class; the other 30 are audited."""
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    train = data.train_mask.clone()
    return Graph(
        name="karate", x=data.x.float(), edge_index=data.edge_index, y=data.y, train_mask=train,
        test_mask=~train, class_names=[f"community {c}" for c in range(4)], input_range=(0.0, 1.0),
        description="Zachary's karate club (embedded in PyTorch Geometric): 34 members, 78 "
        "friendships, identity features, 4 communities; 1 labelled node per community",
        source="builtin:karate (torch_geometric.datasets.KarateClub)",
    )


def sbm_graph(seed: int = 0) -> Graph:
    """A synthetic stochastic block model with a planted low-degree group.

    3 classes × 2 node groups (``dense``, ``sparse``), 100 nodes per block. Edge probabilities
    are ``p_in`` = 0.08 within a class and ``p_out`` = 0.012 across, each multiplied by 0.25 per
    ``sparse`` endpoint, so sparse nodes have about a quarter of the dense nodes' degree. Node
    features are 16-d Gaussian noise (σ = 1) with a class-dependent mean offset of 0.6 σ: weak on
    their own, so a GCN's accuracy comes from averaging neighbours, and nodes with few neighbours
    (the sparse group, the low-degree bucket) are planted to be classified worse.
    """
    g = torch.Generator().manual_seed(seed)
    blocks = [(c, grp) for grp in ("dense", "sparse") for c in range(SBM_CLASSES)]
    sizes = [SBM_NODES_PER_BLOCK] * len(blocks)
    factor = {"dense": 1.0, "sparse": SBM_SPARSE_FACTOR}
    probs = [
        [(SBM_P_IN if ca == cb else SBM_P_OUT) * factor[ga] * factor[gb] for cb, gb in blocks]
        for ca, ga in blocks
    ]
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # stochastic_blockmodel_graph draws from the global generator
    try:
        edge_index = stochastic_blockmodel_graph(sizes, probs)
    finally:
        torch.random.set_rng_state(state)
    y = torch.tensor([c for c, _ in blocks for _ in range(SBM_NODES_PER_BLOCK)])
    group = np.array([grp for _, grp in blocks for _ in range(SBM_NODES_PER_BLOCK)])
    n = len(y)
    directions = torch.randn(SBM_CLASSES, SBM_FEATURES, generator=g)
    directions = directions / directions.norm(dim=1, keepdim=True)
    x = torch.randn(n, SBM_FEATURES, generator=g) + SBM_SIGNAL * math.sqrt(SBM_FEATURES) * directions[y] / 2
    perm = torch.randperm(n, generator=g)
    train = torch.zeros(n, dtype=torch.bool)
    train[perm[: int(SBM_TRAIN_FRACTION * n)]] = True
    return Graph(
        name="sbm", x=x, edge_index=to_undirected(edge_index, num_nodes=n), y=y, train_mask=train,
        test_mask=~train, attributes={"group": group},
        class_names=[f"block {c}" for c in range(SBM_CLASSES)], input_range=None, synthetic=True,
        description=(
            f"synthetic stochastic block model (seed {seed}): 600 nodes, 3 classes, a 'sparse' "
            "node group with ~1/4 of the 'dense' group's degree; weak Gaussian features, so "
            "low-degree nodes are planted to be classified worse"
        ),
        source=f"builtin:sbm (torch_geometric.utils.stochastic_blockmodel_graph, seed {seed})",
    )


GRAPH_FILE_KEYS = "x, edge_index, y, train_mask, test_mask (optional: groups, group_<name>)"


def _read_graph_file(path: Path) -> dict[str, Any]:
    from auditkit.bounds.data import check_data_file, check_tensors

    check_data_file(path)  # the same checks as scan --data: bombs, declared sizes (#24)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        except ValueError as exc:  # object arrays need pickle: refused
            raise AuditkitInputError(
                f"--data {path}: refused: the .npz holds pickled objects ({one_line(exc, 120)}); "
                f"store plain arrays {GRAPH_FILE_KEYS}"
            ) from None
        except Exception as exc:
            raise AuditkitInputError(f"--data {path}: not a readable .npz ({one_line(exc, 160)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise AuditkitInputError(
            f"--data {path}: refused without executing anything: the file holds pickled Python "
            f"objects, not plain tensors ({one_line(exc, 120)}); save a dict of tensors "
            f"{GRAPH_FILE_KEYS}"
        ) from None
    except Exception as exc:
        raise AuditkitInputError(f"--data {path}: not a readable .pt file ({one_line(exc, 160)})") from None
    if not isinstance(obj, dict):
        raise AuditkitInputError(f"--data {path}: expected a dict of tensors with {GRAPH_FILE_KEYS}")
    check_tensors(obj, path)  # no stride-0 views that expand when copied (#24)
    out = dict(obj)
    groups = out.pop("groups", None)
    if isinstance(groups, dict):
        out.update({f"group_{k}": v for k, v in groups.items()})
    elif groups is not None:
        out["group_group"] = groups
    return out


def file_graph(path: str | Path) -> Graph:
    """A user graph from ``.pt`` (loaded with ``weights_only=True``) or ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise AuditkitInputError(f"--data {path}: no such graph file (expected .pt or .npz)")
    raw = _read_graph_file(path)
    if "groups" in raw and path.suffix.lower() == ".npz":
        raw["group_group"] = raw.pop("groups")
    missing = [k for k in ("x", "edge_index", "y", "train_mask", "test_mask") if k not in raw]
    if missing:
        raise AuditkitInputError(f"--data {path}: missing {', '.join(missing)}; expected {GRAPH_FILE_KEYS}")
    try:
        x = torch.as_tensor(np.asarray(raw["x"]), dtype=torch.float32)
        edge_index = torch.as_tensor(np.asarray(raw["edge_index"]), dtype=torch.long)
        y = torch.as_tensor(np.asarray(raw["y"]), dtype=torch.long).view(-1)
        train = torch.as_tensor(np.asarray(raw["train_mask"])).bool().view(-1)
        test = torch.as_tensor(np.asarray(raw["test_mask"])).bool().view(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise AuditkitInputError(f"--data {path}: {one_line(exc, 160)}") from None
    n = x.shape[0] if x.dim() == 2 else -1
    problems = []
    if x.dim() != 2:
        problems.append(f"x must be (nodes, features), got {list(x.shape)}")
    elif edge_index.dim() != 2 or edge_index.shape[0] != 2:
        problems.append(f"edge_index must be (2, edges), got {list(edge_index.shape)}")
    elif edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        problems.append(f"edge_index refers to nodes outside 0..{n - 1}")
    elif not (len(y) == len(train) == len(test) == n):
        problems.append(f"y, train_mask and test_mask must have {n} entries")
    elif int(y.min()) < 0:
        problems.append("labels must be class indices >= 0")
    elif not bool(test.any()) or not bool(train.any()):
        problems.append("train_mask and test_mask must each select at least one node")
    if problems:
        raise AuditkitInputError(f"--data {path}: {problems[0]}")
    attributes = {
        k.removeprefix("group_"): np.asarray(v).reshape(-1).astype(str)
        for k, v in raw.items()
        if k.startswith("group_") and np.asarray(v).size == n
    }
    boxed = bool(x.min() >= 0 and x.max() <= 1)
    return Graph(
        name=path.stem, x=x, edge_index=to_undirected(edge_index, num_nodes=n), y=y,
        train_mask=train, test_mask=test, attributes=attributes,
        input_range=(0.0, 1.0) if boxed else None, description=f"user graph {path.name}",
        source=str(path.resolve()),
    )


def load_graph(source: str, *, seed: int = 0) -> Graph:
    """``karate``, ``sbm`` or a ``.pt`` / ``.npz`` graph file."""
    if source == "karate":
        return karate_graph()
    if source == "sbm":
        return sbm_graph(seed)
    if Path(source).suffix.lower() in (".pt", ".npz"):
        return file_graph(source)
    raise AuditkitInputError(f"--data {source}: use karate, sbm, or a graph file (.pt / .npz)")


def degree_buckets(degree: np.ndarray) -> np.ndarray:
    """Degree tertiles as labels that name their range, e.g. ``low (1-3)``."""
    degree = np.asarray(degree)
    cut_low, cut_high = np.quantile(degree, [1 / 3, 2 / 3])
    buckets = np.where(degree <= cut_low, 0, np.where(degree <= cut_high, 1, 2))
    labels = np.empty(len(degree), dtype=object)
    for index, word in enumerate(("low", "mid", "high")):
        chosen = degree[buckets == index]
        if len(chosen):
            labels[buckets == index] = f"{word} ({int(chosen.min())}-{int(chosen.max())})"
    return labels.astype(str)


def node_audit_data(graph: Graph) -> AuditData:
    """The graph's test nodes as audit examples (training nodes attached as ``train``)."""
    buckets = degree_buckets(graph.degree().numpy())
    columns = {"degree": buckets, **graph.attributes}

    def part(mask: torch.Tensor, name: str, description: str) -> AuditData:
        index = mask.nonzero().view(-1).numpy()
        return AuditData(
            name=name, x=graph.x[index], y=graph.y[index],
            groups={k: np.asarray(v)[index] for k, v in columns.items()},
            class_names=graph.class_names, modality="graph", input_range=graph.input_range,
            synthetic=graph.synthetic, description=description, source=graph.source,
        )

    data = part(graph.test_mask, graph.name, f"{graph.description}; audit examples: the "
                f"{int(graph.test_mask.sum())} test nodes (sensitive columns: degree tertiles"
                + "".join(f", {k}" for k in graph.attributes) + ")")
    data.train = part(graph.train_mask, f"{graph.name}-train", "training nodes")
    return data


# ---- data sets (entry-point group auditkit.datasets) -----------------------------------------
def graph_nodes(*, source: str = "sbm", seed: int = 0) -> AuditData:
    """Test nodes of ``source`` (``karate``, ``sbm`` or a graph file) as audit data."""
    return node_audit_data(load_graph(source, seed=seed))


def karate() -> AuditData:
    return graph_nodes(source="karate")


def sbm(*, seed: int = 0) -> AuditData:
    return graph_nodes(source="sbm", seed=seed)


def _surface(kind: str, n: int, g: torch.Generator) -> torch.Tensor:
    u, v = torch.rand(n, generator=g), torch.rand(n, generator=g)
    theta = 2 * math.pi * u
    if kind == "sphere":
        z = 2 * v - 1
        r = torch.sqrt(1 - z**2)
        return torch.stack([r * torch.cos(theta), r * torch.sin(theta), z], 1) * 0.9
    if kind == "cube":
        points = torch.rand(n, 3, generator=g) * 2 - 1
        axis = torch.randint(0, 3, (n,), generator=g)
        side = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
        points[torch.arange(n), axis] = side
        return points * 0.7
    if kind == "cylinder":
        return torch.stack([0.6 * torch.cos(theta), 0.6 * torch.sin(theta), 1.6 * v - 0.8], 1)
    if kind == "cone":
        r = 0.8 * torch.sqrt(v)  # uniform on the lateral surface
        return torch.stack([r * torch.cos(theta), r * torch.sin(theta), 0.8 - 2 * r], 1)
    if kind == "torus":
        phi = 2 * math.pi * v
        ring = 0.6 + 0.25 * torch.cos(phi)
        return torch.stack([ring * torch.cos(theta), ring * torch.sin(theta), 0.25 * torch.sin(phi)], 1)
    raise ValueError(kind)


def shape_clouds(n_per_class: int, *, points: int = SHAPE_POINTS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` noisy clouds per shape, each ``points`` × 3, scaled ±10% per axis."""
    g = torch.Generator().manual_seed(seed)
    clouds, labels = [], []
    for label, kind in enumerate(SHAPE_CLASSES):
        for _ in range(n_per_class):
            cloud = _surface(kind, points, g) * (0.9 + 0.2 * torch.rand(1, 3, generator=g))
            clouds.append(cloud + SHAPE_NOISE * torch.randn(points, 3, generator=g))
            labels.append(label)
    return torch.stack(clouds).clamp(*POINT_BOX), torch.tensor(labels)


def shapes(*, n_per_class: int = 30, train_per_class: int = 40, points: int = SHAPE_POINTS, seed: int = 0) -> AuditData:
    """Synthetic point clouds: spheres, cubes, cylinders, cones and tori (axis-aligned, noisy).

    Points are sampled uniformly on each surface (about unit size, random ±10% scale per axis)
    plus Gaussian noise σ = 0.02. The audit set and the attached training set come from
    different seeds.
    """
    common = {
        "class_names": list(SHAPE_CLASSES), "modality": "point_cloud", "input_range": POINT_BOX,
        "synthetic": True, "source": f"builtin:shapes (seed {seed})",
    }
    x, y = shape_clouds(n_per_class, points=points, seed=seed + 1)
    tx, ty = shape_clouds(train_per_class, points=points, seed=seed)
    description = (
        f"synthetic point clouds ({points} points): spheres, cubes, cylinders, cones and tori, "
        f"axis-aligned, ±10% scale per axis, Gaussian noise σ = {SHAPE_NOISE}"
    )
    data = AuditData(name="shapes", x=x, y=y, description=description, **common)
    data.train = AuditData(name="shapes-train", x=tx, y=ty, description="training clouds", **common)
    return data

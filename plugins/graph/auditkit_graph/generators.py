"""``auditkit generate gcn`` and ``auditkit generate dgcnn``: train, save, scan (budget fast).

Each generator trains a model on built-in (or user) data, saves it as an architecture file
(``auditkit.loading.archfile``: safetensors weights + a recipe naming this plugin's architecture,
adapter and data set), runs ``auditkit scan FILE --budget fast --out DIR`` on it — the same
command a user would run, with no other flags — and prints where the report is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from auditkit.errors import AuditkitInputError
from auditkit.loading.archfile import save_arch_model
from auditkit_graph._threads import one_thread
from auditkit_graph.data import POINT_BOX, SHAPE_CLASSES, SHAPE_POINTS, load_graph, shapes
from auditkit_graph.models import DGCNN, GCN, NodeClassifier
from auditkit_graph.probes.point_cloud.measure import random_rotations, rotate


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (through auditkit's CLI)
        raise AuditkitInputError(f"{self.prog}: {message}")


def _whole(low: int, high: int):
    """An argparse type: a whole number in [low, high], checked before any work (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    parse.__name__ = f"whole number in {low}..{high}"
    return parse


MAX_SEED = 2**63 - 1


def train_gcn(graph, *, hidden: int = 16, epochs: int = 200, seed: int = 0, lr: float = 0.01) -> GCN:
    """Full-batch training on the graph's training nodes (Adam, weight decay 5e-4, dropout 0.5)."""
    torch.manual_seed(seed)
    with one_thread():  # a few hundred nodes: thread hand-offs cost more than they save
        return _fit_gcn(graph, hidden, epochs, lr)


def _fit_gcn(graph, hidden: int, epochs: int, lr: float) -> GCN:
    gnn = GCN(graph.x.shape[1], hidden, graph.num_classes)
    optimizer = torch.optim.Adam(gnn.parameters(), lr=lr, weight_decay=5e-4)
    gnn.train()
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        logits = gnn(graph.x, graph.edge_index)
        nn.functional.cross_entropy(logits[graph.train_mask], graph.y[graph.train_mask]).backward()
        optimizer.step()
    return gnn.eval()


def gcn_classifier(graph, gnn: GCN) -> NodeClassifier:
    return NodeClassifier(gnn, graph.num_nodes, graph.x.shape[1], graph.edge_index.shape[1]).set_graph(
        graph.x, graph.edge_index
    ).eval()


def save_gcn(graph, gnn: GCN, path: Path, *, source: str, seed: int, hidden: int) -> Path:
    classifier = gcn_classifier(graph, gnn)
    params = {
        "in_channels": int(graph.x.shape[1]), "hidden": hidden, "num_classes": graph.num_classes,
        "num_nodes": graph.num_nodes, "num_edges": int(graph.edge_index.shape[1]),
    }
    metadata = {
        "input_shape": [int(graph.x.shape[1])],
        "input_range": list(graph.input_range) if graph.input_range else None,
        "class_names": graph.class_names or [str(c) for c in range(graph.num_classes)],
        "dataset": graph.name,
        "modality": "graph",
    }
    # A user's graph file is recorded by name only, for the reader: auditkit never reads a
    # file on a model file's word, so a rescan passes it again with --data (#24).
    data_source = source if source in BUILTIN_GRAPHS else Path(source).name
    return save_arch_model(
        classifier, path, architecture="gcn_nodes", params=params, metadata=metadata,
        adapter="graph_nodes", data={"name": "graph_nodes", "params": {"source": data_source, "seed": seed}},
    )


def train_dgcnn(data, *, epochs: int = 30, seed: int = 0, k: int = 10, batch_size: int = 32) -> DGCNN:
    """Adam on the training clouds with random rotations about the vertical axis."""
    torch.manual_seed(seed)
    with one_thread():
        return _fit_dgcnn(data, epochs, k, batch_size, seed)


def _fit_dgcnn(data, epochs: int, k: int, batch_size: int, seed: int) -> DGCNN:
    model = DGCNN(len(SHAPE_CLASSES), k=k)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    train = data.train
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), batch_size):
            idx = order[start : start + batch_size]
            turned = rotate(train.x[idx], random_rotations(len(idx), generator, axis="z"))
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(turned), train.y[idx])
            loss.backward()
            optimizer.step()
    return model.eval()


BUILTIN_GRAPHS = ("karate", "sbm")


def _data_flags(source: str | None) -> list[str]:
    """``--data FILE`` for a graph file (the model file names it but is never trusted to)."""
    return [] if source is None or source in BUILTIN_GRAPHS else ["--data", source]


def _scan(path: Path, out: Path, data: str | None = None) -> int:
    """``auditkit scan PATH --budget fast --out OUT [--data FILE]``, exactly as a user would."""
    from auditkit.cli import app

    argv = ["scan", str(path), *_data_flags(data), "--budget", "fast", "--out", str(out)]
    try:
        with one_thread():
            app(argv, prog_name="auditkit")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def gcn_main(argv: list[str]) -> int:
    parser = _Parser(prog="auditkit generate gcn", description="Train a GCN node classifier, save it, scan it.")
    parser.add_argument("--data", default="sbm", help="karate | sbm | a graph file (.pt / .npz)")
    parser.add_argument("--out", default="auditkit-out/gcn", help="output folder")
    parser.add_argument("--epochs", type=_whole(1, 100_000), default=200)
    parser.add_argument("--hidden", type=_whole(1, 4096), default=16)
    parser.add_argument("--seed", type=_whole(0, MAX_SEED), default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    graph = load_graph(args.data, seed=args.seed)
    gnn = train_gcn(graph, hidden=args.hidden, epochs=args.epochs, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = save_gcn(graph, gnn, out / f"gcn-{graph.name}.safetensors", source=args.data,
                    seed=args.seed, hidden=args.hidden)
    print(f"trained a GCN on {graph.name} ({graph.num_nodes} nodes) in {time.perf_counter() - start:.1f} s; saved {path}")
    code = _scan(path, out, args.data)
    rescan = " ".join(["auditkit scan", str(path), *_data_flags(args.data)])
    print(f"report: {out / 'report.html'}  (rescan with: {rescan})")
    return code


def dgcnn_main(argv: list[str]) -> int:
    parser = _Parser(prog="auditkit generate dgcnn", description="Train a DGCNN on synthetic shapes, save it, scan it.")
    parser.add_argument("--out", default="auditkit-out/dgcnn", help="output folder")
    parser.add_argument("--epochs", type=_whole(1, 100_000), default=20)
    parser.add_argument("--points", type=_whole(2, 100_000), default=SHAPE_POINTS)
    parser.add_argument("--k", type=_whole(1, 64), default=8)
    parser.add_argument("--seed", type=_whole(0, MAX_SEED), default=0)
    args = parser.parse_args(argv)
    if args.k >= args.points:
        parser.error(f"argument --k: {args.k} must be below --points ({args.points})")
    start = time.perf_counter()
    data = shapes(points=args.points, seed=args.seed)
    model = train_dgcnn(data, epochs=args.epochs, seed=args.seed, k=args.k)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = save_arch_model(
        model, out / "dgcnn-shapes.safetensors", architecture="dgcnn",
        params={"num_classes": len(SHAPE_CLASSES), "k": args.k},
        metadata={"input_shape": [args.points, 3], "input_range": list(POINT_BOX),
                  "class_names": list(SHAPE_CLASSES), "dataset": "shapes", "modality": "point_cloud"},
        data={"name": "shapes", "params": {"points": args.points, "seed": args.seed}},
    )
    print(f"trained a DGCNN on synthetic shapes in {time.perf_counter() - start:.1f} s; saved {path}")
    code = _scan(path, out)
    print(f"report: {out / 'report.html'}  (rescan with: auditkit scan {path})")
    return code

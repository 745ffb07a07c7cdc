"""What the input bounds (auditkit.bounds, issue 24) cost next to a fast scan of the same file.

For a benign ONNX model, a skops pipeline (a decision tree: its node arrays are validated), a
k-nearest-neighbours skops model (its KD tree validated), an architecture file (its factory
build and first forward pass trial-run in the sandbox child: a process start), a parquet table
and an image folder, the checks the bounds add are timed on their own (median of --repeat
runs) and a fast scan of the same input once; printed as JSON with the ratio. The issue's bar:
the checks cost < 5 % of a fast scan.

    OMP_NUM_THREADS=1 python benchmarks/bench_input_checks.py [--probes performance]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _inputs(root: Path):
    """name -> (scan kwargs, the added checks as one callable)."""
    import onnx
    import pandas as pd
    import skops.io as sio
    from auditkit_graph.data import SHAPE_CLASSES, SHAPE_POINTS
    from auditkit_graph.models import point_mlp
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from auditkit.bounds import data as data_bounds
    from auditkit.bounds.recipe import check_factory_args
    from auditkit.bounds.skops import check_trees
    from auditkit.bounds.trial import precheck
    from auditkit.demo import digits_metadata, train_digits_model
    from auditkit.loading import load_model
    from auditkit.loading.archfile import read_header, save_arch_model
    from auditkit.loading.onnx import embed_metadata
    from auditkit.loading.safety import DEFAULT_LIMITS
    from auditkit.loading.sandbox import trial_load
    from auditkit.loading.skops import read_skops

    x, y = load_digits(return_X_y=True)
    out = {}
    model, _ = train_digits_model(seed=0, epochs=10)
    onnx_path = root / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.rand(2, 1, 8, 8),), str(onnx_path), dynamo=False,
                          input_names=["pixels"], output_names=["scores"],
                          dynamic_axes={"pixels": {0: "batch"}, "scores": {0: "batch"}})
    proto = onnx.load(str(onnx_path))
    embed_metadata(proto, digits_metadata())
    onnx.save(proto, str(onnx_path))
    out["onnx"] = ({"model": onnx_path}, lambda: precheck(onnx_path, "onnx", DEFAULT_LIMITS))

    frame = pd.DataFrame(x, columns=[f"p{i}" for i in range(64)])
    frame["label"] = y
    table = root / "digits.parquet"
    frame.to_parquet(table)
    tree = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0))
    tree.fit(frame.drop(columns="label"), frame["label"])
    skops_path = root / "tree.skops"
    sio.dump(tree, skops_path)
    estimator = read_skops(skops_path)

    def skops_checks():
        precheck(skops_path, "skops", DEFAULT_LIMITS)
        check_trees(estimator, skops_path)

    out["skops (tree pipeline)"] = ({"model": skops_path, "data": table, "target": "label"},
                                    skops_checks)
    from sklearn.neighbors import KNeighborsClassifier

    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(algorithm="kd_tree"))
    knn.fit(frame.drop(columns="label"), frame["label"])
    knn_path = root / "knn.skops"
    sio.dump(knn, knn_path)
    knn_estimator = read_skops(knn_path)

    def knn_checks():
        precheck(knn_path, "skops", DEFAULT_LIMITS)
        check_trees(knn_estimator, knn_path)

    out["skops (kNN, KD tree)"] = ({"model": knn_path, "data": table, "target": "label"},
                                   knn_checks)
    out["parquet (with the skops model)"] = (
        {"model": skops_path, "data": table, "target": "label"},
        lambda: data_bounds.check_data_file(table))

    net = point_mlp(num_points=SHAPE_POINTS, num_classes=len(SHAPE_CLASSES), hidden=32)
    params = {"num_points": SHAPE_POINTS, "num_classes": len(SHAPE_CLASSES), "hidden": 32}
    arch = save_arch_model(net, root / "mlp.safetensors", architecture="point_mlp", params=params,
                           metadata={"input_shape": [SHAPE_POINTS, 3], "modality": "point_cloud"},
                           data={"name": "shapes", "params": {"points": SHAPE_POINTS}})

    def arch_checks():
        read_header(arch)  # the bounded JSON parse is part of it
        check_factory_args(arch, "point_mlp", params)
        # The factory build and one forward pass in the sandbox child (a process start).
        trial_load(arch, "safetensors", DEFAULT_LIMITS, load=load_model)

    out["architecture file (child trial)"] = ({"model": arch}, arch_checks)

    images = root / "images"
    for i in range(200):
        folder = images / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i] * 16).clip(0, 255).astype(np.uint8).reshape(8, 8), mode="L").save(
            folder / f"{i}.png")
    files = sorted(images.rglob("*.png"))
    digits_file = root / "digits-cnn.pt2"
    from auditkit.loading import save_model

    save_model(model, digits_file, example_input=torch.rand(2, 1, 8, 8), metadata=digits_metadata())

    def image_checks():
        budget = data_bounds.ImageBudget(images)
        for file in files:
            with budget.open(Image, file):
                pass

    out["image folder (200 PNGs)"] = ({"model": digits_file, "data": images}, image_checks)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--probes", default=None, help="comma-separated (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import auditkit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (scan_kwargs, checks) in _inputs(Path(tmp)).items():
            checks()  # imports and caches outside the timing
            cost = _median_seconds(checks, args.repeat)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                auditkit.scan(scan_kwargs.pop("model"), scan_kwargs.pop("data", None),
                              budget="fast", device="cpu",
                              probes=args.probes.split(",") if args.probes else None,
                              **scan_kwargs)
            scan = time.perf_counter() - start
            rows.append({"input": name, "checks_s": round(cost, 5), "fast_scan_s": round(scan, 2),
                         "checks_percent": round(100 * cost / scan, 3)})
    print(json.dumps({"benchmark": "input_checks", "probes": args.probes or "all",
                      "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

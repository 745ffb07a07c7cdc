"""skops files: the schema bounded, and fitted trees validated before any predict.

skops rebuilds an estimator from ``schema.json`` and ``.npy`` members. Two things in such a
file steer memory and native code that auditkit trusts:

- *References.* A schema may reference one large member from hundreds of nodes, each loaded
  as its own array: ``check_file`` sums member size x references (and bounds the schema's
  depth and size) before skops reads anything.
- *Tree node arrays.* ``sklearn.tree._tree.Tree`` (trusted so that decision trees and forests
  load) walks its node array in C without bounds checks: a child index beyond the array reads
  out of bounds (a segfault), a node that is its own descendant loops forever. scikit-learn
  builds every tree with children after their parent, so ``check_trees`` requires exactly that
  (which rules out cycles), features in range and finite thresholds; the same for
  histogram-gradient-boosting predictors.
- *KD and ball trees* (``KNeighborsClassifier(algorithm="kd_tree"/"ball_tree")``) are walked in C
  too. Their shape is implicit (node i's children are 2i+1 and 2i+2), so a cycle cannot be
  written, but every index can lie: an inner node whose children fall beyond the node array, a
  node's point range beyond ``idx_array``, an ``idx_array`` entry beyond the data, bounds or
  weights of the wrong size each make a query read out of bounds. ``check_trees`` validates all
  of them before any predict, so these models load without extra trust and without a child.

A trusted type whose predict walks file arrays natively and that is not validated here would go
in ``NATIVE_WALKERS``: its first predict is then trial-run in the sandbox child
(``auditkit.bounds.trial``). None is left.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.bounds import jsontext
from auditkit.errors import AuditkitInputError, one_line

SCHEMA_NAME = "schema.json"
#: A pipeline of nested estimators stays well below this; JSON itself recurses per level.
MAX_SCHEMA_DEPTH = 200
MAX_SCHEMA_BYTES = 64 << 20
#: Types whose predict walks arrays from the file in native code and that ``check_trees``
#: does not validate: their first predict is trial-run in the child. Trees and
#: histogram-boosting predictors are validated in full instead (no child: it costs seconds).
NATIVE_WALKERS: frozenset[str] = frozenset()
#: Objects visited when looking for trees inside an estimator (forests hold thousands).
MAX_VISITED = 1_000_000

REFUSED = "{path}: the skops file {what}: refused before loading it; re-save it with skops.io.dump"
BAD_TREE = ("{path}: the skops file's tree {where} is malformed ({what}); predicting with it "
            "could crash or never end: refused; re-fit and re-save the model")


def _walk_schema(schema: Any) -> Any:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def check_file(path: Path, limits: Any) -> set[str]:
    """Bound the schema and member references; return the ``module.class`` names it holds."""
    try:
        with zipfile.ZipFile(path) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist()}
            info = zf.getinfo(SCHEMA_NAME)
            if info.file_size > MAX_SCHEMA_BYTES:
                raise AuditkitInputError(REFUSED.format(
                    path=path, what=f"has a {info.file_size}-byte schema"))
            text = zf.read(SCHEMA_NAME)
    except AuditkitInputError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise AuditkitInputError(
            f"{path}: not a readable skops file ({one_line(exc, 160)}); re-save it with skops.io.dump"
        ) from None
    try:
        schema = jsontext.parse(text, max_depth=MAX_SCHEMA_DEPTH, max_bytes=MAX_SCHEMA_BYTES)
    except jsontext.JSONBoundsError as exc:
        raise AuditkitInputError(REFUSED.format(path=path, what=f"schema is refused: {exc}")) from None
    types: set[str] = set()
    seen: set[Any] = set()
    total = 0
    for node in _walk_schema(schema):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            types.add(f"{module}.{cls}")
        member = node.get("file")
        if isinstance(member, str) and member in sizes:
            key = (node.get("__id__"), member)
            if key in seen:
                continue  # skops loads one object per __id__
            seen.add(key)
            total += sizes[member]
    if total > limits.memory_bytes:
        from auditkit.loading.safety import human_bytes

        raise AuditkitInputError(REFUSED.format(
            path=path, what=(f"references its arrays {len(seen)} times, {human_bytes(total)} "
                             f"once loaded, more than --load-memory "
                             f"({human_bytes(limits.memory_bytes)})")))
    return types


def needs_trial(types: set[str]) -> bool:
    return bool(types & NATIVE_WALKERS)


def _check_tree(tree: Any, path: Path, where: str) -> None:
    count = int(tree.node_count)
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    threshold = np.asarray(tree.threshold)
    if count < 1 or not (len(left) == len(right) == len(feature) == len(threshold) == count):
        raise AuditkitInputError(BAD_TREE.format(path=path, where=where,
                                                 what=f"node arrays do not hold {count} nodes"))
    index = np.arange(count)
    leaf = (left == -1) & (right == -1)
    inner = ~leaf
    bad_child = inner & ((left <= index) | (right <= index) | (left >= count) | (right >= count))
    if bad_child.any():
        node = int(np.flatnonzero(bad_child)[0])
        raise AuditkitInputError(BAD_TREE.format(
            path=path, where=where,
            what=f"node {node} has children {int(left[node])}, {int(right[node])}: each must "
                 f"come after its parent and below {count}"))
    n_features = int(tree.n_features)
    bad_feature = inner & ((feature < 0) | (feature >= n_features))
    if bad_feature.any():
        node = int(np.flatnonzero(bad_feature)[0])
        raise AuditkitInputError(BAD_TREE.format(
            path=path, where=where,
            what=f"node {node} splits on feature {int(feature[node])} of {n_features}"))
    if np.isnan(threshold[inner]).any():
        raise AuditkitInputError(BAD_TREE.format(path=path, where=where,
                                                 what="a split threshold is NaN"))


def _check_predictor(predictor: Any, path: Path, where: str) -> None:
    nodes = predictor.nodes
    count = len(nodes)
    index = np.arange(count)
    inner = ~nodes["is_leaf"].astype(bool)
    left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
    bad = inner & ((left <= index) | (right <= index) | (left >= count) | (right >= count))
    if count < 1 or bad.any():
        raise AuditkitInputError(BAD_TREE.format(
            path=path, where=where, what="a node's children are out of order or out of range"))


def _check_binary_tree(tree: Any, path: Path, where: str) -> None:
    """A KD or ball tree: every index a query follows stays inside its array."""
    state = tree.__getstate__()
    data, idx_array, node_data, node_bounds = (np.asarray(a) for a in state[:4])
    n_nodes, sample_weight = state[6], state[12]

    def bad(what: str) -> AuditkitInputError:
        return AuditkitInputError(BAD_TREE.format(path=path, where=where, what=what))

    if data.ndim != 2 or len(data) < 1:
        raise bad(f"its data has shape {list(data.shape)}")
    n_samples, n_features = data.shape
    if idx_array.shape != (n_samples,):
        raise bad(f"idx_array has shape {list(idx_array.shape)} for {n_samples} points")
    if len(idx_array) and (idx_array.min() < 0 or idx_array.max() >= n_samples):
        raise bad(f"idx_array names point {int(idx_array.max())} of {n_samples}")
    if not isinstance(n_nodes, int) or n_nodes < 1 or node_data.shape != (n_nodes,):
        raise bad(f"node_data has shape {list(node_data.shape)} for {n_nodes} nodes")
    rows = 2 if "KDTree" in type(tree).__name__ else 1
    if node_bounds.shape != (rows, n_nodes, n_features):
        raise bad(f"node_bounds has shape {list(node_bounds.shape)}, not "
                  f"{[rows, n_nodes, n_features]}")
    start = node_data["idx_start"].astype(np.int64)
    end = node_data["idx_end"].astype(np.int64)
    wrong = (start < 0) | (end < start) | (end > n_samples)
    if wrong.any():
        node = int(np.flatnonzero(wrong)[0])
        raise bad(f"node {node} holds points {int(start[node])}..{int(end[node])} of {n_samples}")
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    if len(inner) and 2 * int(inner.max()) + 2 >= n_nodes:
        node = int(inner[2 * inner + 2 >= n_nodes][0])
        raise bad(f"inner node {node} has children {2 * node + 1}, {2 * node + 2}: each must "
                  f"be below {n_nodes}")
    if sample_weight is not None and np.shape(sample_weight) != (n_samples,):
        raise bad(f"sample weights have shape {list(np.shape(sample_weight))} for {n_samples} points")


def check_trees(estimator: Any, path: Path) -> None:
    """Validate every fitted tree inside ``estimator`` (pipelines, forests, boosting, kNN)."""
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.tree._tree import Tree

    try:
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    except ImportError:  # another scikit-learn: only plain trees are checked
        TreePredictor = ()  # noqa: N806
    stack: list[tuple[Any, str]] = [(estimator, type(estimator).__name__)]
    seen: set[int] = set()
    while stack:
        obj, where = stack.pop()
        if id(obj) in seen or len(seen) > MAX_VISITED:
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            _check_tree(obj, path, where)
        elif isinstance(obj, (KDTree, BallTree)):
            _check_binary_tree(obj, path, where)
        elif TreePredictor and isinstance(obj, TreePredictor):
            _check_predictor(obj, path, where)
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(obj))
        elif isinstance(obj, dict):
            stack.extend((v, f"{where}.{k}") for k, v in obj.items())
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend((v, f"{where}[{i}]") for i, v in enumerate(obj.reshape(-1)))
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("sklearn"):
            stack.extend((v, f"{where}.{k}") for k, v in vars(obj).items())

"""scikit-learn models in skops files, loaded with an explicit list of trusted types.

skops (https://skops.readthedocs.io) stores an estimator as a zip of a JSON schema and arrays;
loading rebuilds only the types the caller trusts. skops trusts scikit-learn's estimators,
numpy and builtins on its own; ``TRUSTED_TYPES`` adds the few scikit-learn internals that
common models need (fitted trees, histogram-boosting predictors, MLP optimizers). Any other
type is listed in the refusal (exit 2) and nothing is loaded; ``--unsafe-pickle`` trusts it.
Pickle and joblib files of estimators are refused like any pickle.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from auditkit._deps import require
from auditkit.errors import AuditkitInputError, one_line

FORMAT_SKOPS = "skops"
SCHEMA_NAME = "schema.json"
#: scikit-learn internals trusted on top of skops' defaults; each is plain data after fitting.
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
)
#: A skops zip bigger than this once unpacked is refused before anything is read.
MAX_UNPACKED_BYTES = 4 * 1024**3

SKOPS_REFUSED = (
    "{path}: the skops file needs types auditkit does not trust ({types}); loading them could "
    "run their code, so nothing was loaded. Pass --unsafe-pickle if you trust the file's author"
)
CORRUPT_SKOPS = "{path}: not a readable skops file ({reason}); re-save it with skops.io.dump"


def looks_like_skops(names: list[str]) -> bool:
    return SCHEMA_NAME in names


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise AuditkitInputError(CORRUPT_SKOPS.format(path=path, reason=one_line(exc, 160))) from None
    for info in infos:
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith("/") or ".." in parts:
            raise AuditkitInputError(
                CORRUPT_SKOPS.format(path=path, reason=f"unsafe entry name {info.filename!r}")
            )
    unpacked = sum(i.file_size for i in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise AuditkitInputError(
            CORRUPT_SKOPS.format(path=path, reason=f"{unpacked} bytes once unpacked")
        )


def untrusted_types(path: Path) -> list[str]:
    """The types in the file that neither skops nor auditkit trusts (nothing is loaded)."""
    sio = require("skops.io", "auditing scikit-learn models")
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise AuditkitInputError(CORRUPT_SKOPS.format(path=path, reason=one_line(exc, 160))) from None
    return [t for t in found if t not in TRUSTED_TYPES]


def read_skops(path: Path, *, unsafe: bool = False) -> Any:
    """The estimator in a skops file; untrusted types are refused unless ``unsafe``."""
    _check_zip(path)
    refused = untrusted_types(path)
    if refused and not unsafe:
        raise AuditkitInputError(SKOPS_REFUSED.format(path=path, types=", ".join(refused)))
    sio = require("skops.io", "auditing scikit-learn models")
    try:
        trusted = sio.get_untrusted_types(file=path)
        estimator = sio.load(path, trusted=trusted)
    except Exception as exc:
        raise AuditkitInputError(CORRUPT_SKOPS.format(path=path, reason=one_line(exc, 160))) from None
    if not hasattr(estimator, "predict"):
        raise AuditkitInputError(
            f"{path}: the skops file holds a {type(estimator).__name__}, not a fitted "
            "classifier (no predict method)"
        )
    return estimator


def read_pickled_estimator(path: Path) -> Any:
    """With ``--unsafe-pickle`` only: a scikit-learn model in a joblib/pickle file (this runs
    code from the file), wrapped for auditing; None when the pickle holds no scikit-learn
    object (the torch loader takes over)."""
    from auditkit.loading.pickles import pickle_globals

    names = pickle_globals(path.read_bytes()) or []
    if not any(n.startswith(("sklearn.", "joblib.")) for n in names):
        return None
    import joblib

    try:
        estimator = joblib.load(path)  # noqa: S301 - the user vouched for the file
    except Exception as exc:
        raise AuditkitInputError(
            f"{path}: unpickling the scikit-learn model failed ({type(exc).__name__}: "
            f"{one_line(exc, 160)})"
        ) from None
    if not hasattr(estimator, "predict"):
        return None

    return SklearnModel(estimator, format="pickle (scikit-learn, --unsafe-pickle)")


class SklearnModel:
    """A loaded scikit-learn estimator, ready to become an adapter once the data is known."""

    def __init__(self, estimator: Any, format: str = FORMAT_SKOPS) -> None:
        self.estimator = estimator
        self.format = format

    def __repr__(self) -> str:
        return f"SklearnModel({type(self.estimator).__name__})"

    def make_adapter(self, *, input_shape: Any, num_classes: int | None = None,
                     feature_names: Any = None, class_names: Any = None, categories: Any = None,
                     exact_values: Any = None, sensitive: Any = (), **_: Any) -> Any:
        from auditkit.adapters.sklearn_adapter import SklearnAdapter

        return SklearnAdapter(self.estimator, input_shape=input_shape,
                              feature_names=feature_names, class_names=class_names,
                              num_classes=num_classes, format=self.format,
                              categories=categories, exact_values=exact_values,
                              sensitive=sensitive)

"""``models:/NAME/VERSION`` and ``runs:/ID/PATH``: MLflow models under auditkit's file rules.

MLflow downloads the model folder; auditkit then reads the file inside it with its own loader,
so the checks that guard ``auditkit scan FILE`` guard a registered model too:
- PyTorch flavour saved as ``pt2`` (MLflow's default): a ``torch.export`` archive, loaded
  weights-only with native code refused (``auditkit.loading``).
- PyTorch flavour saved as ``pickle`` (``model.pth``): a pickled ``nn.Module`` runs code from the
  file; refused unless ``--unsafe-pickle``.
- scikit-learn flavour saved as ``skops``: auditkit's skops loader (explicit trusted types);
  ``pickle``/``cloudpickle``: refused unless ``--unsafe-pickle``.
- any other flavour: its ``python_function`` loader unpickles Python code, so it needs
  ``--unsafe-pickle``; it is then audited as a black box through ``predict``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.errors import AuditkitInputError, one_line

PICKLE_REFUSED = (
    "{uri}: MLflow saved this {flavor} model as {what}, and loading it runs code from the file; "
    "{fix}, or pass --unsafe-pickle if you trust whoever logged it"
)


def load_model_uri(
    uri: str,
    *,
    arch: Any = None,
    unsafe_pickle: bool = False,
    limits: Any = None,
    debug: bool = False,
    overrides: Any = None,
) -> Any:
    """A ``LoadedModel`` for an MLflow model URI (``auditkit.loading.load_model``'s hook)."""
    if arch is not None:
        raise AuditkitInputError(f"--arch {arch}: {uri} is an MLflow model, which carries its own "
                                 "network; drop --arch")
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="auditkit-mlflow-") as scratch:
        try:
            from mlflow.artifacts import download_artifacts
            from mlflow.models import Model

            with _quiet_download():
                local = Path(download_artifacts(artifact_uri=uri, dst_path=scratch))
            flavors = Model.load(str(local)).flavors
        except (MlflowException, OSError) as exc:
            message = exc.message if isinstance(exc, MlflowException) else str(exc)
            raise AuditkitInputError(
                f"{uri}: MLflow cannot load it ({one_line(message, 240)}); check the name, version "
                "or run id and the tracking URI (--mlflow URI or MLFLOW_TRACKING_URI)"
            ) from None
        loaded = _load_flavor(uri, local, flavors, unsafe_pickle=unsafe_pickle, limits=limits,
                              debug=debug, overrides=overrides)
    return dataclasses.replace(loaded, path=uri)


def _load_flavor(uri: str, local: Path, flavors: dict[str, Any], **kwargs: Any) -> Any:
    from auditkit.loading import load_model

    unsafe = kwargs["unsafe_pickle"]
    file_kwargs = {k: kwargs[k] for k in ("unsafe_pickle", "limits", "debug", "overrides")}
    if "pytorch" in flavors:
        data = local / flavors["pytorch"].get("model_data", "data")
        if (data / "model.pt2").is_file():
            return load_model(data / "model.pt2", **file_kwargs)
        if not unsafe:
            raise AuditkitInputError(PICKLE_REFUSED.format(
                uri=uri, flavor="PyTorch", what="a pickled nn.Module (serialization_format='pickle')",
                fix="log it again with mlflow.pytorch.log_model(..., serialization_format='pt2')",
            ))
        return load_model(data / "model.pth", **file_kwargs)
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        fmt = conf.get("serialization_format", "cloudpickle")
        if fmt != "skops" and not unsafe:
            raise AuditkitInputError(PICKLE_REFUSED.format(
                uri=uri, flavor="scikit-learn", what=f"a {fmt} file",
                fix="log it again with mlflow.sklearn.log_model(..., serialization_format='skops')",
            ))
        return load_model(local / conf["pickled_model"], **file_kwargs)
    if "python_function" in flavors:
        if not unsafe:
            names = ", ".join(sorted(flavors))
            raise AuditkitInputError(PICKLE_REFUSED.format(
                uri=uri, flavor=f"pyfunc ({names})", what="pickled Python code",
                fix="log a PyTorch (pt2) or scikit-learn (skops) flavour instead",
            ))
        return _pyfunc_black_box(uri, local)
    raise AuditkitInputError(f"{uri}: no flavour auditkit can load ({', '.join(sorted(flavors))})")


@contextmanager
def _environment(values: dict[str, str]):
    """MLflow reads its switches from the environment: set some for one call, then restore."""
    saved = {n: os.environ.get(n) for n in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _pickle_allowed():
    """MLflow's own guard on unpickling, lifted for the duration of one --unsafe-pickle load."""
    return _environment({"MLFLOW_ALLOW_MODEL_CODE_EXECUTION": "true",
                         "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"})


def _quiet_download():
    """No download progress bar: auditkit's console output (and diff's text) stays its own."""
    return _environment({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})


def _pyfunc_black_box(uri: str, local: Path) -> Any:
    import mlflow.pyfunc

    from auditkit.loading import LoadedModel, ModelMetadata

    with _pickle_allowed():
        model = mlflow.pyfunc.load_model(str(local))
    return LoadedModel(module=PyfuncPredict(model.predict), format="mlflow pyfunc",
                       metadata=ModelMetadata(), path=uri)


class PyfuncPredict:
    """A pyfunc's ``predict`` as auditkit's black-box callable: a batch of arrays in, class
    probabilities (a 2-D answer) or labels (a 1-D answer) out."""

    format = "mlflow pyfunc"

    def __init__(self, predict: Callable[[Any], Any], feature_names: list[str] | None = None):
        self.predict = predict
        self.feature_names = feature_names

    def __call__(self, x: Any) -> np.ndarray:
        batch = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
        if self.feature_names is not None and batch.ndim == 2:
            import pandas as pd

            batch = pd.DataFrame(batch, columns=self.feature_names)
        answer = np.asarray(self.predict(batch))
        return answer if answer.ndim == 2 else answer.reshape(-1).astype(np.int64)


def fetch_audit(ref: str, dest: Path) -> Path:
    """The audit.json a run logged (``runs:/ID`` → ``auditkit/audit.json``), downloaded into
    ``dest``; ``runs:/ID/PATH`` names another artifact folder or file."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from auditkit_mlflow.runlog import ARTIFACT_DIR

    rest = ref[len("runs:/"):].strip("/")
    run_id, _, path = rest.partition("/")
    if not run_id:
        raise AuditkitInputError(f"{ref}: name a run, e.g. runs:/0123abcd")
    path = path or ARTIFACT_DIR
    if not path.endswith(".json"):
        path = f"{path.rstrip('/')}/audit.json"
    try:
        with _quiet_download():
            local = download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dest))
    except (MlflowException, OSError) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise AuditkitInputError(
            f"{ref}: no {path} in that run ({one_line(message, 200)}); log an audit with "
            "auditkit scan --mlflow or mlflow.evaluate(..., evaluators=['auditkit']) and check "
            "the tracking URI (MLFLOW_TRACKING_URI)"
        ) from None
    return Path(local)

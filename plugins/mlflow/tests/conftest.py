"""One local SQLite tracking store per session (creating MLflow's tables costs seconds), with a
small torch model on the bundled digits and a scikit-learn pipeline on a table with a sensitive
column. Every test logs its own runs into it."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

N = 200  # examples audited: enough for every probe's checks, small enough for 2 cores


@pytest.fixture(scope="session")
def store_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(autouse=True)
def _in_store_root(store_root, monkeypatch):
    """Each test runs in the store's folder: experiments created without an artifact location
    (``auditkit scan --mlflow`` makes one per model) put ``./mlruns`` there, not in the repo."""
    monkeypatch.chdir(store_root)


@pytest.fixture(scope="session")
def store(store_root):
    """``sqlite:///…/mlflow.db``, MLflow's global URI while the session lasts."""
    import mlflow

    uri = f"sqlite:///{store_root / 'mlflow.db'}"
    before, previous = os.getcwd(), mlflow.get_tracking_uri()
    os.chdir(store_root)  # the store's Default experiment lands here too
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.create_experiment("auditkit-tests", artifact_location=str(store_root / "artifacts"))
        mlflow.set_experiment("auditkit-tests")
    finally:
        os.chdir(before)
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def digits():
    d = load_digits()
    x = (d.data[:N] / 16).astype(np.float32)
    return x, d.target[:N].astype(np.int64)


@pytest.fixture(scope="session")
def net(digits):
    x, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def table():
    """A credit-like table: two numbers, a text column ``sex`` the model reads, a label that
    depends on ``sex`` (so the bias probe has something to measure)."""
    rng = np.random.default_rng(0)
    n = 300
    sex = rng.choice(["f", "m"], size=n)
    income = rng.normal(size=n)
    debt = rng.normal(size=n)
    label = ((income - debt + 0.8 * (sex == "m") + rng.normal(scale=0.5, size=n)) > 0.4)
    return pd.DataFrame({"income": income, "debt": debt, "sex": sex, "label": label.astype(int)})


@pytest.fixture(scope="session")
def pipeline(table):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = ColumnTransformer([("sex", OneHotEncoder(), ["sex"])], remainder="passthrough")
    pipe = Pipeline([("features", features), ("model", LogisticRegression())])
    return pipe.fit(table.drop(columns="label"), table["label"])


@pytest.fixture(scope="session")
def logged(store, net, digits, pipeline, table):
    """Models in the registry: ``demo`` (torch, pt2), ``credit`` (scikit-learn, skops),
    ``pickled`` (scikit-learn, cloudpickle), ``torch-pickle`` (torch, a pickled nn.Module)."""
    import mlflow

    x, _ = digits
    with mlflow.start_run():
        mlflow.pytorch.log_model(net, name="torch", serialization_format="pt2",
                                 input_example=x[:2], registered_model_name="demo",
                                 pip_requirements=["torch"])
        mlflow.sklearn.log_model(pipeline, name="skops", serialization_format="skops",
                                 registered_model_name="credit", pip_requirements=["scikit-learn"],
                                 skops_trusted_types=_trusted(pipeline))
        mlflow.sklearn.log_model(pipeline, name="pickled", serialization_format="cloudpickle",
                                 registered_model_name="pickled",
                                 pip_requirements=["scikit-learn"])
        mlflow.pytorch.log_model(net, name="torch-pickle", serialization_format="pickle",
                                 registered_model_name="torch-pickle", pip_requirements=["torch"])
    return {"demo": "models:/demo/1", "credit": "models:/credit/1", "pickled": "models:/pickled/1",
            "torch-pickle": "models:/torch-pickle/1"}


def _trusted(pipeline):
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))

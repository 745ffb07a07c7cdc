"""nas_report.html is a pure function of nas.json: front marked, every trial listed, text escaped."""

import optuna
from auditkit_nas.objectives import Objective
from auditkit_nas.report import render_report
from auditkit_nas.summary import summarize
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)
ARCH = {"kind": "mlp", "input_shape": [4], "num_classes": 2, "batch_norm": True,
        "activation": "tanh", "dropout": 0.1, "widths": [32, 16]}


def test_report_from_nas_json():
    objectives = [Objective("calibration", "accuracy", "higher"), Objective("calibration", "ece", "lower")]
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.9, 0.05], [0.8, 0.10], [0.95, 0.08]):
        study.add_trial(create_trial(values=values, params={"layers": 2},
                                     distributions={"layers": CategoricalDistribution([1, 2, 3])},
                                     user_attrs={"architecture": ARCH, "seconds": 1.5, "parameters": 700}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"error": "RuntimeError: <boom>"}))
    settings = {"data": "<script>alert(1)</script>.csv", "strategy": "controller", "trials": 4,
                "seed": 0, "epochs": 2, "lr": 0.003, "batch_size": 64, "storage": "sqlite:///x.db",
                "minutes": None, "workers": 1}
    document = summarize(study, objectives, settings) | {"search_seconds": 3.0, "models": {},
                                                        "scorecard": None}
    assert document["pareto_front"] == [0, 2]  # trial 1 is worse than trial 0 in both
    html = render_report(document)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;boom&gt;" in html  # a failed trial's error is shown, escaped
    assert "fc32 → fc16 · tanh, bn, dropout 0.1" in html
    assert html.count("(Pareto)") == 2  # two front points in the one scatter
    assert "Scalarized reward over trials" in html

"""Plugins: discovered through entry points with their distribution, broken ones are rows."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from auditkit.adapters import TorchModelAdapter
from auditkit.cli import app
from auditkit.data import AuditData
from auditkit.gates import exit_code
from auditkit.pipeline import run_audit
from auditkit.probes.base import BUDGETS, Probe
from auditkit.registry import PROBE_GROUP, discover_probes

PLUGIN_PROBE = textwrap.dedent('''
    from auditkit.probes.base import MetricSpec, Probe
    from auditkit.results import ProbeResult


    class MeanConfidence(Probe):
        name = "mean_confidence"
        title = "Mean confidence"
        description = "How sure is the model on average?"
        order = 60
        metrics = {"mean_confidence": MetricSpec("higher", "mean top-class probability")}
        budget_levels = {b: "one pass" for b in ("fast", "standard", "thorough")}

        def run(self, context):
            value = float(context.clean_probabilities.max(-1).values.mean())
            return ProbeResult(name=self.name, status="passed", headline="mean_confidence",
                               metrics={"mean_confidence": value})


    def tiny_set():
        import torch
        from auditkit.data import AuditData

        return AuditData(name="tiny_set", x=torch.zeros(4, 2), y=torch.tensor([0, 1, 0, 1]),
                         groups={"site": ["a", "a", "b", "b"]}, modality="tabular",
                         input_range=None, synthetic=True)
''')


@pytest.fixture()
def fake_plugin(tmp_path, monkeypatch):
    """An installed distribution 'fakeplugin 0.1' with one good and one broken probe."""
    dist_info = tmp_path / "fakeplugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\nSummary: test plugin\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{PROBE_GROUP}]\n"
        "mean_confidence = fakeplugin_probes:MeanConfidence\n"
        "broken_probe = fakeplugin_broken:BrokenProbe\n"
        "not_a_probe = fakeplugin_probes:__name__\n"
        "performance = fakeplugin_probes:MeanConfidence\n"
        "[auditkit.datasets]\n"
        "tiny_set = fakeplugin_probes:tiny_set\n"
        "broken_set = fakeplugin_broken:anything\n"
    )
    (tmp_path / "fakeplugin_probes.py").write_text(PLUGIN_PROBE)
    (tmp_path / "fakeplugin_broken.py").write_text(
        "import a_dependency_that_is_not_installed  # noqa: F401\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("fakeplugin_probes", "fakeplugin_broken"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    yield tmp_path
    for module in ("fakeplugin_probes", "fakeplugin_broken"):
        sys.modules.pop(module, None)


def _tiny_audit_inputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    adapter = TorchModelAdapter(net, input_shape=(1, 8, 8), device="cpu")
    g = torch.Generator().manual_seed(0)
    data = AuditData(name="rand", x=torch.rand(40, 1, 8, 8, generator=g),
                     y=torch.randint(0, 10, (40,), generator=g))
    return adapter, data


def test_installed_plugin_is_discovered_with_its_distribution(fake_plugin):
    entries = discover_probes()
    good = entries["mean_confidence"]
    assert good.loaded and good.error is None
    assert (good.distribution, good.version) == ("fakeplugin", "0.1")
    assert good.value == "fakeplugin_probes:MeanConfidence"
    assert issubclass(good.obj, Probe)
    # Built-ins come through the same group, attributed to auditkit itself; a plugin that
    # reuses a built-in's name (this one declares "performance" too) does not replace it.
    assert entries["performance"].distribution == "auditkit" and entries["performance"].loaded
    assert entries["performance"].value == "auditkit.probes.performance:PerformanceProbe"
    assert list(entries).index("performance") < list(entries).index("mean_confidence")  # order


def test_plugin_that_fails_to_import_is_an_errored_row(fake_plugin):
    broken = discover_probes()["broken_probe"]
    assert not broken.loaded and broken.obj is None
    assert "ModuleNotFoundError" in broken.error and "a_dependency_that_is_not_installed" in broken.error
    assert broken.distribution == "fakeplugin"


def test_run_audit_turns_broken_plugins_into_error_results(fake_plugin):
    adapter, data = _tiny_audit_inputs()
    result = run_audit(adapter, data,
                       probes=["broken_probe", "not_a_probe", "mean_confidence"])
    assert result.probes["mean_confidence"].status == "passed"
    expected = float(torch.softmax(adapter.predict_logits(data.x), -1).max(-1).values.mean())
    assert result.metrics["mean_confidence.mean_confidence"] == pytest.approx(expected)
    broken = result.probes["broken_probe"]
    assert broken.status == "error" and "plugin failed to load" in broken.error
    assert "not a Probe subclass" in result.probes["not_a_probe"].error
    assert result.verdict == "error" and exit_code(result) == 3


def test_plugin_data_sets_load_by_name_and_broken_ones_are_bad_input(fake_plugin):
    from auditkit.data import builtin_datasets, load_data
    from auditkit.errors import AuditkitInputError

    assert {"digits", "tiny_set", "broken_set"} <= set(builtin_datasets())
    data = load_data("tiny_set", sensitive=["site"])
    assert data.name == "tiny_set" and data.synthetic and data.groups["site"].tolist()[2] == "b"
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data("broken_set")
    assert "broken_set" in str(excinfo.value) and "ModuleNotFoundError" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_cli_lists_plugins_and_scans_with_them(fake_plugin, tmp_path):
    from auditkit.demo import digits_metadata
    from auditkit.loading import save_model

    torch.manual_seed(0)
    model_file = save_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), tmp_path / "m.pt2",
                            example_input=torch.rand(2, 1, 8, 8), metadata=digits_metadata())
    runner = CliRunner()
    listing = runner.invoke(app, ["probes"])
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    assert "fakeplugin" in rows["mean_confidence"] and "0.1" in rows["mean_confidence"]
    assert "ERROR" in rows["broken_probe"] and "ModuleNotFoundError" in rows["broken_probe"]

    out = tmp_path / "out"
    res = runner.invoke(app, [
        "scan", str(model_file), "--out", str(out), "--device", "cpu",
        "--probes", "mean_confidence,broken_probe",
    ])
    assert res.exit_code == 3, res.output  # a probe errored; the others ran and were written
    assert "Traceback" not in res.output
    assert (out / "audit.json").exists() and (out / "report.html").exists()


def test_every_installed_probe_honours_the_contract():
    """Each probe that loads declares its metrics and what every budget level means."""
    for name, entry in discover_probes().items():
        if not entry.loaded:
            continue  # shown as an errored row; covered above
        probe = entry.obj
        assert probe.name == name, f"entry point {name} names probe {probe.name!r}"
        assert probe.metrics, f"{name} declares no metrics"
        assert set(probe.budget_levels) == set(BUDGETS), f"{name}: budget_levels"
        assert all(isinstance(text, str) and text for text in probe.budget_levels.values())
        for budget in BUDGETS:
            assert probe(budget=budget).budget == budget

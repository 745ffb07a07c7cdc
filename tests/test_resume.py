"""Checkpoints and --resume: a resumed audit must give the numbers a fresh audit gives.

Every test compares a resumed run with a fresh run of the same settings; a checkpoint may only
save time, never change a number.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import auditkit
from auditkit.adapters import TorchModelAdapter
from auditkit.data import AuditData
from auditkit.errors import AuditkitInputError
from auditkit.loading import ModelMetadata, save_model
from auditkit.pipeline import run_audit
from auditkit.probes.base import Probe
from auditkit.results import ProbeResult


@pytest.fixture(scope="module")
def normalized_model_file(tmp_path_factory, digits_data):
    """A linear classifier trained on (x - 0.3) / 0.4, saved with that normalization embedded."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    train = digits_data.train
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net((train.x - 0.3) / 0.4), train.y).backward()
        optimizer.step()
    net.eval()
    meta = ModelMetadata(input_shape=(1, 8, 8), input_range=(0.0, 1.0), mean=(0.3,), std=(0.4,),
                         class_names=tuple(str(i) for i in range(10)), dataset="digits")
    path = tmp_path_factory.mktemp("resume") / "linear.pt2"
    return save_model(net, path, example_input=digits_data.x[:2], metadata=meta)


def _scan(model_file, out, **kwargs):
    kwargs.setdefault("probes", ["performance"])
    return auditkit.scan(model_file, "digits", device="cpu", checkpoint_dir=out, **kwargs)


# --- (a) the key covers everything that changes the model's outputs ---------------------------


def test_changed_normalization_is_not_served_a_stale_checkpoint(tmp_path, normalized_model_file):
    first = _scan(normalized_model_file, tmp_path)
    assert first.metrics["performance.accuracy"] > 0.9
    # Same file, same data, same seed: only the adapter's std differs.
    override = ModelMetadata(std=(5.0,))
    resumed = _scan(normalized_model_file, tmp_path, metadata=override)
    fresh = _scan(normalized_model_file, None, metadata=override)
    assert resumed.metrics == fresh.metrics
    assert resumed.metrics["performance.accuracy"] != first.metrics["performance.accuracy"]
    # And the original settings still find their own checkpoint.
    again = _scan(normalized_model_file, tmp_path)
    assert again.probes["performance"] == first.probes["performance"]


class Counted(Probe):
    name = "counted"
    calls = 0

    def run(self, context) -> ProbeResult:
        type(self).calls += 1
        return ProbeResult(name=self.name, status="passed",
                           metrics={"logit_sum": float(context.clean_logits.sum())})


def _tiny():
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    g = torch.Generator().manual_seed(0)
    data = AuditData(name="t", x=torch.randn(40, 4, generator=g),
                     y=torch.randint(0, 3, (40,), generator=g), modality="tabular",
                     input_range=None)
    return net, data


def _adapter(net, **kwargs):
    return TorchModelAdapter(net, input_shape=(4,), input_range=None, num_classes=3,
                             device="cpu", **kwargs)


def test_key_covers_output_kind_version_and_clean_logits(tmp_path, monkeypatch):
    net, data = _tiny()
    info = {"sha256": "f" * 64, "format": "torch.export"}  # as if read from the same file
    Counted.calls = 0

    def audit(adapter):
        return run_audit(adapter, data, probes=[Counted], model_info=info,
                         checkpoint_dir=tmp_path, resume=True)

    audit(_adapter(net))
    audit(_adapter(net))
    assert Counted.calls == 1
    # Same file hash, different normalization: other logits, recomputed.
    audit(_adapter(net, mean=(0.5,), std=(2.0,)))
    assert Counted.calls == 2
    # Same file hash, but the weights in memory differ (e.g. another --arch): recomputed.
    other = nn.Linear(4, 3)
    audit(_adapter(other))
    assert Counted.calls == 3
    # A new auditkit version may compute a probe differently: recomputed.
    monkeypatch.setattr("auditkit.checkpoints.__version__", "999.0")
    audit(_adapter(net))
    assert Counted.calls == 4
    audit(_adapter(net))
    assert Counted.calls == 4
    # So may other code under the same version (a development build, an edited plugin).
    monkeypatch.setattr("auditkit.checkpoints._source_digest", lambda location: "other code")
    audit(_adapter(net))
    assert Counted.calls == 5


# --- (b) cross-probe consumers ----------------------------------------------------------------


class Upstream(Probe):
    name = "upstream"
    options = {"value": 1.0}
    calls = 0

    def run(self, context) -> ProbeResult:
        type(self).calls += 1
        context.artifacts[self.name] = {"values": np.full(len(context.data), self.config["value"])}
        return ProbeResult(name=self.name, status="passed",
                           metrics={"value": float(self.config["value"])})


class Downstream(Probe):
    """Reads the upstream probe's per-example results when it ran (as bias reads adversarial)."""

    name = "downstream"
    calls = 0

    def run(self, context) -> ProbeResult:
        type(self).calls += 1
        shared = context.artifacts.get("upstream")
        value = float(shared["values"].mean()) if shared is not None else None
        return ProbeResult(name=self.name, status="passed", metrics={"upstream_mean": value})


class Independent(Probe):
    name = "independent"
    calls = 0

    def run(self, context) -> ProbeResult:
        type(self).calls += 1
        return ProbeResult(name=self.name, status="passed", metrics={"n": float(len(context.data))})


def _reset(*classes):
    for cls in classes:
        cls.calls = 0


def test_a_consumer_run_without_its_upstream_is_not_reused_once_the_upstream_ran(tmp_path):
    net, data = _tiny()
    _reset(Upstream, Downstream, Independent)

    def audit(*probes, out=tmp_path):
        return run_audit(_adapter(net), data, probes=list(probes), checkpoint_dir=out,
                         resume=out is not None)

    alone = audit(Downstream, Independent)
    assert alone.metrics["downstream.upstream_mean"] is None
    both = audit(Upstream(value=2.0), Downstream, Independent)
    fresh = audit(Upstream(value=2.0), Downstream, Independent, out=None)
    assert both.metrics == fresh.metrics
    assert both.metrics["downstream.upstream_mean"] == 2.0
    # The probe that reads nothing from others kept its checkpoint.
    assert Independent.calls == 2  # first run + the fresh run only

    # The same upstream again: everything comes from the checkpoint.
    calls = (Upstream.calls, Downstream.calls)
    audit(Upstream(value=2.0), Downstream, Independent)
    assert (Upstream.calls, Downstream.calls) == calls
    # A differently configured upstream: the consumer sees other inputs, so it runs again.
    changed = audit(Upstream(value=3.0), Downstream)
    assert changed.metrics["downstream.upstream_mean"] == 3.0
    # Without the upstream, the consumer is not served a result that used one.
    assert audit(Downstream).metrics["downstream.upstream_mean"] is None


def test_bias_after_calibration_joins_it_on_resume(tmp_path, normalized_model_file):
    """The reviewer's case: `--probes bias --resume`, then `--probes calibration,bias --resume`."""
    settings = {"budget": "fast", "options": {"bias": {"n_boot": 10}}}
    alone = _scan(normalized_model_file, tmp_path, probes=["bias"], **settings)
    assert alone.probes["bias"].metrics.get("proxy_worst_slice_ece") is None
    resumed = _scan(normalized_model_file, tmp_path, probes=["calibration", "bias"], **settings)
    fresh = _scan(normalized_model_file, None, probes=["calibration", "bias"], **settings)
    assert resumed.probes["bias"].metrics == fresh.probes["bias"].metrics
    assert resumed.probes["bias"].details == fresh.probes["bias"].details
    assert resumed.probes["bias"].metrics["proxy_worst_slice_ece"] is not None


# --- (c) checkpoints are always written; read only with resume ----------------------------------


class Interrupted(Probe):
    name = "interrupted"

    def run(self, context) -> ProbeResult:
        raise KeyboardInterrupt


def test_an_interrupted_plain_run_leaves_checkpoints_that_resume_uses(tmp_path):
    net, data = _tiny()
    _reset(Counted)
    with pytest.raises(KeyboardInterrupt):
        run_audit(_adapter(net), data, probes=[Counted, Interrupted], checkpoint_dir=tmp_path,
                  resume=False)
    assert Counted.calls == 1
    assert list((tmp_path / ".auditkit-checkpoint").rglob("counted.json"))
    # A plain (not resumed) run writes but never reads: it recomputes.
    run_audit(_adapter(net), data, probes=[Counted], checkpoint_dir=tmp_path, resume=False)
    assert Counted.calls == 2
    resumed = run_audit(_adapter(net), data, probes=[Counted], checkpoint_dir=tmp_path,
                        resume=True)
    assert Counted.calls == 2 and resumed.probes["counted"].status == "passed"


def test_resume_default_reads_when_a_checkpoint_dir_is_given(tmp_path):
    """Callers that pass checkpoint_dir only with --resume keep working (resume=None)."""
    net, data = _tiny()
    _reset(Counted)
    run_audit(_adapter(net), data, probes=[Counted], checkpoint_dir=tmp_path)
    run_audit(_adapter(net), data, probes=[Counted], checkpoint_dir=tmp_path)
    assert Counted.calls == 1
    with pytest.raises(AuditkitInputError, match="checkpoint"):
        run_audit(_adapter(net), data, probes=[Counted], resume=True)


def test_the_code_key_follows_a_plugins_source_wherever_it_lives(tmp_path, monkeypatch):
    """A checkpoint is reused only for the code that wrote it: an edited plugin module is
    noticed in a regular package, a namespace package (no ``__init__.py`` at the top) and a
    single module file alike."""
    import importlib
    import os
    import sys
    import time

    from auditkit.checkpoints import _code_key

    probe_source = (
        "from auditkit.probes.base import Probe\n"
        "class P(Probe):\n    name = 'p'\n    def run(self, context):\n        return {}\n"
    )
    layouts = {"regpkg/__init__.py": "", "regpkg/mod.py": probe_source,
               "nspkg/sub/__init__.py": "", "nspkg/sub/mod.py": probe_source,
               "single_mod.py": probe_source}
    for rel, text in layouts.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, rel in (("regpkg.mod", "regpkg/mod.py"), ("nspkg.sub.mod", "nspkg/sub/mod.py"),
                      ("single_mod", "single_mod.py")):
        module = importlib.import_module(name)
        before = _code_key(module.P(budget="fast"))
        assert len(before) == 2, (name, before)  # auditkit's source and the plugin's
        path = tmp_path / rel
        path.write_text(probe_source.replace("return {}", "return {'edited': True}"))
        stamp = time.time_ns() + 10**9
        os.utime(path, ns=(stamp, stamp))
        assert _code_key(module.P(budget="fast")) != before, name
        sys.modules.pop(name, None)

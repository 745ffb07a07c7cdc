"""Bad input that used to get through: each is exit 2 and one line, before any work if possible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from auditkit.cli import LOCK_NAME, app
from auditkit.loading import ModelMetadata, save_model


@pytest.fixture(autouse=True)
def _no_stray_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the policy is discovered from the working directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-class model on 4 features, declaring its inputs live in [0, 1]."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 2))
    path = tmp_path_factory.mktemp("model") / "tiny.pt2"
    meta = ModelMetadata(input_shape=(4,), input_range=(0.0, 1.0), class_names=("a", "b"))
    return save_model(net, path, example_input=torch.rand(2, 4), metadata=meta)


def _data(path, x, y):
    np.savez(path, x=np.asarray(x, dtype=np.float32), y=np.asarray(y))
    return path


def _scan(model, *extra):
    args = ["scan", str(model), "--probes", "performance", "--budget", "fast", "--device", "cpu",
            *extra]
    return CliRunner().invoke(app, args)


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("auditkit: error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def _forbid_loading(monkeypatch):
    import auditkit.api

    def boom(*_args, **_kwargs):
        raise AssertionError("the model was loaded: bad input must stop before any work")

    monkeypatch.setattr(auditkit.api, "load_model", boom)


def test_seed_beyond_64_bits_is_bad_input_before_work(tiny_model, tmp_path, monkeypatch):
    _forbid_loading(monkeypatch)
    res = _scan(tiny_model, "--seed", "99999999999999999999", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert "--seed 99999999999999999999: use a whole number from 0 to" in _one_line(res)


@pytest.mark.parametrize("flag, value, needle", [
    ("--seed", "-1", "Invalid value for '--seed'"),
    ("--seed", "many", "Invalid value for '--seed'"),
    ("--load-timeout", "soon", "Invalid value for '--load-timeout'"),
    ("--no-such-flag", None, "No such option: --no-such-flag"),
])
def test_flag_type_errors_are_one_line_not_a_usage_box(tiny_model, flag, value, needle):
    res = _scan(tiny_model, flag, *([value] if value is not None else []))
    assert res.exit_code == 2
    line = _one_line(res)
    assert needle in line and "--help" in line
    assert "╭" not in res.output and "Usage:" not in res.output


@pytest.mark.parametrize("flag, value", [("--load-memory", "0"), ("--load-timeout", "-5"),
                                         ("--load-memory", "nan")])
def test_load_limits_must_be_positive(tiny_model, tmp_path, monkeypatch, flag, value):
    _forbid_loading(monkeypatch)
    res = _scan(tiny_model, flag, value, "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert f"{flag} " in _one_line(res) and "positive" in res.output


def test_arch_with_a_file_that_carries_its_network_is_refused(tiny_model, tmp_path):
    data = _data(tmp_path / "d.npz", np.random.rand(20, 4), np.arange(20) % 2)
    res = _scan(tiny_model, "--data", str(data), "--arch", "nosuchmod:f",
                "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    line = _one_line(res)
    assert "--arch nosuchmod:f" in line and "carries its own network" in line
    assert not (tmp_path / "o").exists()


def test_one_hot_labels_are_named_as_such(tiny_model, tmp_path):
    y = np.eye(2)[np.arange(20) % 2]  # (20, 2) one-hot rows
    data = _data(tmp_path / "d.npz", np.random.rand(20, 4), y)
    res = _scan(tiny_model, "--data", str(data), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    line = _one_line(res)
    assert "looks one-hot" in line and "(20, 2)" in line and "argmax" in line
    assert "40 labels" not in line


def test_data_outside_the_declared_input_box_is_refused_naming_the_range(tiny_model, tmp_path):
    x = np.random.default_rng(0).integers(0, 17, size=(30, 4)).astype(np.float32)
    x[0, 0], x[1, 1] = 0.0, 16.0  # pixels in [0, 16], the model declares [0, 1]
    data = _data(tmp_path / "d.npz", x, np.arange(30) % 2)
    res = _scan(tiny_model, "--data", str(data), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    line = _one_line(res)
    assert "values span [0, 16]" in line and "input box is [0, 1]" in line
    # Declaring the real box is the fix the message names, and it works.
    ok = _scan(tiny_model, "--data", str(data), "--input-range", "0,16",
               "--out", str(tmp_path / "o2"))
    assert ok.exit_code in (0, 1), ok.output


def test_a_fifo_as_data_is_not_a_regular_file(tiny_model, tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    res = _scan(tiny_model, "--data", str(fifo), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert "not a regular file (a FIFO)" in _one_line(res)


def test_a_zip_bomb_as_data_is_refused(tiny_model, tmp_path):
    import zipfile

    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", bytes(64 << 20))
    res = _scan(tiny_model, "--data", str(bomb), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert "compression bomb" in _one_line(res)


def _hold_lock(out):
    """A process holding --out's lock the way a running scan does."""
    lock = out / LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import fcntl, os, sys, time\n"
        f"f = open({str(lock)!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.seek(0); f.truncate(); f.write(str(os.getpid())); f.flush()\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_scan_into_the_same_out_exits_2_naming_the_first(tiny_model, tmp_path):
    out = tmp_path / "out"
    data = _data(tmp_path / "d.npz", np.random.rand(20, 4), np.arange(20) % 2)
    holder = _hold_lock(out)
    try:
        res = _scan(tiny_model, "--data", str(data), "--out", str(out))
        assert res.exit_code == 2
        line = _one_line(res)
        assert f"another auditkit run (PID {holder.pid}) is writing there" in line
        assert not (out / "audit.json").exists()
    finally:
        # SIGKILL, as the kernel drops flocks of dead processes: the next scan must not be
        # blocked by a stale lock (the same path --resume after a kill takes).
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    res = _scan(tiny_model, "--data", str(data), "--out", str(out))  # not refused as locked
    assert res.exit_code in (0, 1), res.output
    assert (out / "audit.json").exists()


# Two whole CLI scans side by side (~45 s on a busy machine): make test-slow. The lock itself is
# checked in the default suite against a holder process (the test above).
@pytest.mark.slow
def test_two_real_scans_into_one_out_one_waits_out_the_other(tiny_model, tmp_path):
    """Two CLI processes started together: exactly one writes the outputs, the other exits 2
    naming it, or (if the first finished before the second started) both succeed in turn.
    Never two writers at once."""
    out = tmp_path / "out"
    data = _data(tmp_path / "d.npz", np.random.rand(40, 4), np.arange(40) % 2)
    exe = os.path.join(os.path.dirname(sys.executable), "auditkit")
    args = [exe, "scan", str(tiny_model), "--data", str(data), "--out", str(out),
            "--probes", "performance", "--budget", "fast", "--device", "cpu"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2], [1, 1], [1, 2]), results
    for code, _stdout, stderr in results:
        if code == 2:
            assert "another auditkit run (PID" in stderr and len(stderr.strip().splitlines()) == 1
    assert (out / "audit.json").exists()


def test_labels_covering_only_some_outputs_audit_every_output(tiny_model, tmp_path):
    """A two-class model on one-class data: no IndexError, every output named."""
    import json

    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(0).random((30, 4)), columns=list("abcd"))
    frame["label"] = "no"  # one class present, named by the table
    frame.to_csv(tmp_path / "one.csv", index=False)
    out = tmp_path / "o"
    res = _scan(tiny_model, "--data", str(tmp_path / "one.csv"), "--target", "label",
                "--out", str(out))
    assert res.exit_code in (0, 1), res.output
    audit = json.loads((out / "audit.json").read_text())
    performance = audit["probes"]["performance"]
    assert performance["status"] in ("passed", "warned", "failed"), performance


def test_performance_probe_names_every_output_when_labels_cover_fewer(monkeypatch):
    """The probe itself (not only the scan) copes with data naming fewer classes than outputs."""
    from auditkit.adapters import TorchModelAdapter
    from auditkit.data import AuditData
    from auditkit.pipeline import build_context
    from auditkit.probes.performance import PerformanceProbe

    torch.manual_seed(0)
    adapter = TorchModelAdapter(nn.Sequential(nn.Linear(4, 3)), input_shape=(4,), device="cpu")
    data = AuditData(name="one-class", x=torch.rand(40, 4), y=torch.zeros(40, dtype=torch.long),
                     class_names=["only"], modality="tabular")
    result = PerformanceProbe().run(build_context(adapter, data, budget="fast"))
    assert result.status in ("passed", "warned", "failed")
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


def test_a_huge_eps_is_accepted_with_a_one_line_warning_before_any_work(tmp_path):
    res = CliRunner().invoke(app, ["scan", str(tmp_path / "absent.pt2"), "--probes",
                                   "adversarial", "--set", "adversarial.eps=1e9",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 2  # then the (absent) model: the warning came first
    lines = res.output.strip().splitlines()
    assert lines[0] == (
        "auditkit: warning: --set adversarial.eps=1e9: larger than the usual ≤ 1; using it anyway"
    )
    assert lines[1].startswith("auditkit: error: ") and "no such file" in lines[1]


def test_a_missing_ood_set_is_refused_before_any_work(tiny_model, tmp_path, monkeypatch):
    _forbid_loading(monkeypatch)
    res = _scan(tiny_model, "--probes", "calibration", "--set", "calibration.ood=/no/such.npz",
                "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    line = _one_line(res)
    assert line.startswith("auditkit: error: --set calibration.ood=/no/such.npz: no such file")
    assert "--data" not in line

"""End to end on digits with a tiny budget: outputs, resume, interruption, workers, bad input."""

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from auditkit_nas import search
from auditkit_nas.cli import main
from auditkit_nas.space import nas_network

import auditkit

CHEAP = [
    "--data", "digits", "--objectives", "accuracy,calibration.ece", "--epochs", "1",
    "--max-train", "120", "--final-probes", "performance,calibration", "--quiet",
]


def nas(out: Path, *extra: str) -> int:
    return main([*CHEAP, "--out", str(out), *extra])


def document(out: Path) -> dict:
    return json.loads((out / "nas.json").read_text())


def finished(out: Path) -> dict[int, tuple]:
    """Trial number → (state, start time) straight from the study storage."""
    with sqlite3.connect(out / "nas.db") as db:
        rows = db.execute("SELECT number, state, datetime_start FROM trials").fetchall()
    return {n: (state, start) for n, state, start in rows}


def test_search_writes_every_output_and_a_rerun_repeats_nothing(tmp_path):
    out = tmp_path / "nas"
    assert nas(out, "--trials", "2", "--strategy", "nsga2") == 0
    doc = document(out)
    assert [t["number"] for t in doc["trials"]] == [0, 1]
    for trial in doc["trials"]:
        assert trial["state"] == "complete"
        assert set(trial["metrics"]) == {"calibration.accuracy", "calibration.ece"}
        assert trial["seconds"] > 0 and trial["architecture"]["kind"] == "cnn"
    assert doc["settings"]["seed"] == 0 and doc["settings"]["strategy"] == "nsga2"
    assert [o["direction"] for o in doc["objectives"]] == ["higher", "lower"]
    assert doc["chosen"] in doc["pareto_front"]

    # Each Pareto model is a self-describing file: it scans with no flags, and the architecture
    # in its metadata rebuilds the network it holds.
    for number, rel in doc["models"].items():
        loaded = auditkit.load_model(out / rel)
        arch = loaded.metadata.extra["nas"]["architecture"]
        assert arch == doc["trials"][int(number)]["architecture"]
        rebuilt = nas_network(**arch)
        from safetensors.torch import load_file

        rebuilt.load_state_dict(load_file(str(search.weights_path(out, int(number)))))
        x = torch.rand(4, 1, 8, 8)
        assert torch.allclose(loaded.module(x), rebuilt.eval()(x), atol=1e-5)
        archfile = (out / rel).with_suffix(".safetensors")
        if importlib.util.find_spec("auditkit.loading.archfile") is not None:  # core contract E
            from_archfile = auditkit.load_model(archfile)
            assert torch.allclose(from_archfile.module(x), rebuilt(x), atol=1e-5)
            assert from_archfile.metadata.dataset == "digits"
    scorecard = json.loads((out / "chosen" / "audit.json").read_text())
    assert set(scorecard["probes"]) == {"performance", "calibration"}
    assert scorecard["data"]["name"] == "digits"  # the held-out audit split, not the search's
    html = (out / "nas_report.html").read_text()
    assert "<svg" in html and "Pareto front" in html and "chosen/report.html" in html

    before = finished(out)
    assert nas(out, "--trials", "2", "--strategy", "nsga2") == 0
    assert finished(out) == before  # nothing ran again
    assert nas(out, "--trials", "3", "--strategy", "nsga2") == 0
    after = finished(out)
    assert {n: after[n] for n in before} == before and len(after) == 3
    assert [t["number"] for t in document(out)["trials"]] == [0, 1, 2]


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_interrupted_search_resumes_without_repeating(tmp_path):
    out = tmp_path / "nas"
    # A budget far larger than what runs before the kill: on a fast machine a 4-trial search can
    # finish between two polls, and then there is nothing left to interrupt.
    command = [sys.executable, "-c", "import sys; from auditkit_nas.cli import main; sys.exit(main(sys.argv[1:]))",
               *CHEAP, "--out", str(out), "--trials", "200", "--strategy", "random"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            states = _states(out) if (out / "nas.db").exists() else []
            if "COMPLETE" in states and "RUNNING" in states:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the search never got going (exit code {process.poll()})")
    finally:
        process.kill()  # no clean-up, like a crash or a lost machine
        process.wait()
    first = finished(out)
    done = {n: v for n, v in first.items() if v[0] == "COMPLETE"}
    assert done and any(v[0] == "RUNNING" for v in first.values())

    total = len(done) + 2  # resume and finish two more
    assert nas(out, "--trials", str(total), "--strategy", "random") == 0
    doc = document(out)
    numbers = [t["number"] for t in doc["trials"]]
    assert len(numbers) == len(set(numbers))  # every trial once
    after = finished(out)
    assert {n: after[n] for n in done} == done  # finished trials were not repeated
    states = [t["state"] for t in doc["trials"]]
    assert states.count("complete") == total  # the budget counts finished trials only
    assert states.count("interrupted") == 1 and "running" not in states


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_ctrl_c_marks_the_running_trial_interrupted(tmp_path):
    out = tmp_path / "nas"
    command = [sys.executable, "-c", "import sys; from auditkit_nas.cli import main; sys.exit(main(sys.argv[1:]))",
               *CHEAP, "--out", str(out), "--trials", "200", "--strategy", "random"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not (
        (out / "nas.db").exists() and "RUNNING" in _states(out)
    ):
        time.sleep(0.05)
    assert process.poll() is None, "the search ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "rerun the same command to resume" in err
    assert "Traceback" not in err
    total = sum(state == "COMPLETE" for state in _states(out)) + 1
    assert nas(out, "--trials", str(total), "--strategy", "random") == 0
    states = [t["state"] for t in document(out)["trials"]]
    assert states.count("complete") == total and states.count("interrupted") <= 1
    assert "running" not in states


def test_a_trial_killed_before_it_named_its_worker_is_interrupted_not_running_forever(tmp_path):
    # A kill between ``study.ask()`` and the next write leaves a RUNNING trial with no worker (CI
    # hit this gap twice). Such a trial must not stay "running" and hold a place in the budget.
    import optuna

    out = tmp_path / "nas"
    assert nas(out, "--trials", "1", "--strategy", "random") == 0
    study = optuna.load_study(study_name=search.STUDY_NAME, storage=f"sqlite:///{out / 'nas.db'}")
    study.ask()  # the killed process got no further
    assert _states(out) == ["COMPLETE", "RUNNING"]

    assert nas(out, "--trials", "2", "--strategy", "random") == 0
    states = [t["state"] for t in document(out)["trials"]]
    assert states == ["complete", "interrupted", "complete"]


def test_on_a_shared_storage_an_unnamed_running_trial_is_left_to_its_owner_for_a_while(tmp_path, monkeypatch):
    # Another machine's worker may be between asking and naming itself; only age proves it dead.
    import optuna

    out, url = tmp_path / "nas", f"sqlite:///{tmp_path / 'shared.db'}"
    assert nas(out, "--storage", url, "--trials", "1", "--strategy", "random") == 0
    optuna.load_study(study_name=search.STUDY_NAME, storage=url).ask()
    assert nas(out, "--storage", url, "--trials", "2", "--strategy", "random") == 0
    assert [t["state"] for t in document(out)["trials"]] == ["complete", "running"]

    monkeypatch.setattr(search, "ORPHAN_AFTER_SECONDS", 0)
    assert nas(out, "--storage", url, "--trials", "2", "--strategy", "random") == 0
    assert [t["state"] for t in document(out)["trials"]] == ["complete", "interrupted", "complete"]


def _states(out: Path) -> list[str]:
    try:
        return [state for state, _ in finished(out).values()]
    except sqlite3.OperationalError:
        return []


def test_tables_get_mlps_and_a_worst_group_objective(tmp_path):
    out = tmp_path / "nas"
    code = main(["--data", "credit", "--objectives", "accuracy,bias.worst_group_accuracy",
                 "--epochs", "1", "--max-train", "400", "--final-probes", "performance",
                 "--quiet", "--trials", "1", "--out", str(out)])
    assert code == 0
    trial = document(out)["trials"][0]
    assert trial["architecture"]["kind"] == "mlp" and trial["architecture"]["input_shape"] == [8]
    assert 0.0 <= trial["metrics"]["bias.worst_group_accuracy"] <= trial["metrics"]["performance.accuracy"] + 1e-9


def test_an_objective_the_data_cannot_measure_fails_every_trial_not_the_run(tmp_path, capsys):
    # digits has no sensitive columns, so the bias probe publishes no worst-group accuracy.
    out = tmp_path / "nas"
    code = main([*CHEAP[:2], "--objectives", "bias.worst_group_accuracy", "--epochs", "1",
                 "--max-train", "120", "--trials", "1", "--out", str(out)])
    assert code == 3 and "no child finished" in capsys.readouterr().err
    doc = document(out)
    assert doc["pareto_front"] == [] and doc["chosen"] is None
    assert "bias.worst_group_accuracy was not measured" in doc["trials"][0]["error"]
    assert "No trial completed" in (out / "nas_report.html").read_text()


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_two_workers_share_one_study(tmp_path):
    out = tmp_path / "nas"
    assert nas(out, "--trials", "5", "--strategy", "random", "--workers", "2") == 0
    doc = document(out)
    assert [t["number"] for t in doc["trials"]] == [0, 1, 2, 3, 4]  # none lost, none extra
    assert all(t["state"] == "complete" for t in doc["trials"])
    workers = {(t["worker"]["pid"], t["worker"]["index"]) for t in doc["trials"]}
    assert {index for _, index in workers} <= {0, 1}
    assert os.getpid() not in {pid for pid, _ in workers}  # the trials ran in worker processes
    architectures = [json.dumps(t["decisions"], sort_keys=True) for t in doc["trials"]]
    assert len(set(architectures)) == len(architectures)  # the workers do not draw in lockstep
    print("trials per worker:", sorted(index for _, index in workers))


def test_a_failing_child_is_a_failed_trial(tmp_path, monkeypatch):
    real = search.audit_child
    calls = []

    def flaky(model, data, objectives, seed):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the child exploded")
        return real(model, data, objectives, seed)

    monkeypatch.setattr(search, "audit_child", flaky)
    out = tmp_path / "nas"
    assert nas(out, "--trials", "3", "--strategy", "controller") == 0
    doc = document(out)
    assert [t["state"] for t in doc["trials"]] == ["complete", "failed", "complete"]
    assert "the child exploded" in doc["trials"][1]["error"]
    assert 1 not in doc["pareto_front"]
    assert doc["reward"]["trials"] == [0, 2] and len(doc["reward"]["moving_average"]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "bayes"], "--strategy bayes: unknown"),
        (["--objectives", "accuracy,robustness"], "--objectives robustness: no installed probe"),
        (["--objectives", "adversarial.eps"], "no better side"),
        (["--trials", "0"], "--trials 0"),
        (["--data", "no-such-thing.npz"], "no-such-thing"),
        (["--final-budget", "huge"], "--budget huge"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    args = ["--trials", "2", *extra] if "--trials" not in extra else extra
    assert nas(tmp_path / "nas", *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nas" / "children").exists()  # nothing was trained


def test_help_lists_the_flags(capsys):
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--strategy", "--objectives", "--workers", "--minutes"))


def test_rerun_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "nas"
    assert nas(out, "--trials", "1") == 0
    assert nas(out, "--trials", "1", "--seed", "1") == 2
    assert "holds a search with seed=0, not 1" in capsys.readouterr().err


def test_minutes_caps_the_search(tmp_path, monkeypatch):
    """--minutes is a deadline on the search's own clock: no trial starts after it. A fake
    clock (one second per reading) makes the count exact whatever the machine's load."""
    import types

    from auditkit_nas import run as run_module

    clock = {"t": 1_000.0}

    def tick() -> float:
        clock["t"] += 1.0
        return clock["t"]

    fake = types.SimpleNamespace(time=tick, perf_counter=time.perf_counter)
    monkeypatch.setattr(run_module, "time", fake)
    monkeypatch.setattr(search, "time", fake)
    out = tmp_path / "nas"
    # The deadline is 3 s after the start: the loop reads the clock at +1 and +2 (a trial
    # each) and stops at +3; 48 of the 50 trials asked for never start.
    code = nas(out, "--trials", "50", "--minutes", "0.05")
    assert code == 0
    with sqlite3.connect(out / "nas.db") as db:
        assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2

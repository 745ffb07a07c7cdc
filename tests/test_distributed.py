"""torchrun: a 2-process gloo audit equals the single-process audit; only rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)


def _gather_worker(rank: int, world: int, port: int, queue) -> None:
    _join(rank, world, port)
    from auditkit import distributed

    distributed.setup("cpu")
    rows = torch.arange(23 * 3, dtype=torch.float64).view(23, 3)
    results = {}
    for n, batch in ((23, 5), (23, 30), (4, 1), (1, 8)):
        # Each rank computes only its own batches; the gathered rows are in order everywhere.
        seen = []

        def compute(start, stop, seen=seen):
            seen.append(start)
            return rows[start:stop] * 2

        out = distributed.gather_batches(n, batch, compute)
        results[(n, batch)] = (out.tolist(), seen)
    distributed.teardown()
    queue.put((rank, results))


def test_gather_batches_returns_every_batch_in_order_on_every_rank():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_gather_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    rows = torch.arange(23 * 3, dtype=torch.float64).view(23, 3)
    for (n, batch), _ in got[0].items():
        expected = (rows[:n] * 2).tolist()
        starts = list(range(0, n, batch))
        for rank in (0, 1):
            out, seen = got[rank][(n, batch)]
            assert out == expected
            assert seen == starts[rank::2]  # no batch computed twice, none skipped


# --- the whole scan ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_model_file(tmp_path_factory, digits_data):
    from auditkit.loading import ModelMetadata, save_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(digits_data.train.x), digits_data.train.y).backward()
        optimizer.step()
    net.eval()
    meta = ModelMetadata(input_shape=(1, 8, 8), input_range=(0.0, 1.0),
                         class_names=tuple(str(i) for i in range(10)), dataset="digits")
    path = tmp_path_factory.mktemp("dist") / "linear.pt2"
    return save_model(net, path, example_input=digits_data.x[:2], metadata=meta)


# Small attack batches and several memorization levels, so both are split across the ranks:
# adversarial batches round-robin, memorization levels one per rank; 520 corrupted examples
# make three corruption batches of 256.
SCAN = ["--data", "digits", "--budget", "fast", "--device", "cpu", "--seed", "3",
        "--probes", "performance,calibration,corruptions,adversarial,bias,memorization",
        "--set", "corruptions.n_examples=520",
        "--set", "adversarial.n_examples=60", "--set", "adversarial.batch_size=16",
        "--set", "bias.n_boot=20", "--set", "memorization.train_size=48",
        "--set", "memorization.max_epochs=8"]


def _cli(argv: list[str]) -> int:
    from auditkit.cli import main

    sys.argv = ["auditkit", *argv]
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _scan_worker(rank: int, world: int, port: int, model: str, root: str, queue) -> None:
    _join(rank, world, port)
    # Each rank in its own working folder: whatever a rank writes lands in its own folder.
    folder = Path(root) / f"rank{rank}"
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    code = _cli(["scan", model, "--out", "out", *SCAN])
    queue.put((rank, code))


def _metrics(audit: dict) -> dict:
    return {name: probe["metrics"] for name, probe in audit["probes"].items()}


@pytest.mark.slow  # two torchrun processes scanning: ~20 s idle, ~45 s busy (make test-slow)
def test_two_gloo_processes_equal_one_process_and_only_rank_0_writes(
    tmp_path, linear_model_file, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert _cli(["scan", str(linear_model_file), "--out", "single", *SCAN]) in (0, 1)
    single = json.loads((tmp_path / "single" / "audit.json").read_text())

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_scan_worker,
                    args=(r, 2, port, str(linear_model_file), str(tmp_path / "dist"), queue))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    codes = dict(queue.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)

    rank0 = tmp_path / "dist" / "rank0" / "out"
    assert (rank0 / "audit.json").is_file() and (rank0 / "report.html").is_file()
    assert not any((tmp_path / "dist" / "rank1").iterdir()), "rank 1 must write nothing"
    assert codes[0] == codes[1]

    dist = json.loads((rank0 / "audit.json").read_text())
    assert dist["environment"]["world_size"] == 2 and dist["environment"]["backend"] == "gloo"
    assert _metrics(dist) == _metrics(single)
    for probe in ("adversarial", "memorization", "corruptions"):
        assert dist["probes"][probe]["status"] == single["probes"][probe]["status"]
    assert single["probes"]["corruptions"]["details"]["n_examples"] == 520
    levels = [r["train_accuracy"] for r in dist["probes"]["memorization"]["details"]["levels"]]
    assert levels == [
        r["train_accuracy"] for r in single["probes"]["memorization"]["details"]["levels"]
    ]
    assert dist["verdict"] == single["verdict"]
    assert dist["settings"]["sizing"]["options"] == single["settings"]["sizing"]["options"]

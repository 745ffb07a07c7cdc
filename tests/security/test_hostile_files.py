"""Hostile model files: each refused with one line, nothing run, nothing left, bounded cost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from auditkit.errors import AuditkitInputError
from auditkit.loading import load_model, sandbox
from auditkit.loading.safety import LoadLimits

from .input_corpus import peak_rss, reset_peak

LIMIT_SECONDS = 3.0  # the load limit the tests run under (the default is 60 s)
LIMIT_BYTES = 256 << 20
LIMITS = LoadLimits(timeout_s=LIMIT_SECONDS, memory_bytes=LIMIT_BYTES)
SANDBOXED = {"ts-hang.pt", "ts-allocate.pt", "checkpoint-legacy.pt"}
# Why the child may end for each: a hang only by the --load-timeout kill.
SANDBOX_REASONS = {
    "ts-hang.pt": {"timeout"},
    "ts-allocate.pt": {"memory", "error"},  # the child's own size check may word it first
    "checkpoint-legacy.pt": {"error", "memory"},
}
# What one refusal may cost in the test process beyond what it already had: the file's
# structure, never its declared sizes (the bombs declare 32 MiB to 8 GiB).
IN_PROCESS_PEAK_BYTES = 24 << 20
TRAVERSAL_TARGETS = [Path("/tmp/auditkit-pwned"), Path("/tmp/auditkit-pwned-abs")]

NAMES = [
    "pickle-os.pkl", "pickle-subprocess.pkl", "pickle-eval.pkl", "pickle-exec.pkl",
    "pickle-builtins.pkl", "pickle0-os.pkl", "checkpoint-nested.pt", "checkpoint-epoch.pt",
    "checkpoint-legacy.pt", "pt2-use-pickle.pt2", "pt2-opaque.pt2", "pt2-sample-inputs.pt2",
    "pt2-aoti.pt2", "pt2-elf-disguised.pt2", "pt2-traversal.pt2", "pt2-absolute.pt2",
    "pt2-backslash.pt2", "pt2-duplicate.pt2", "pt2-bomb.pt2", "pt2-huge-declared.pt2",
    "torchsave-bomb.pt", "torchsave-huge-declared.pt", "torchsave-pickle-bomb.pt", "st-header-beyond-file.safetensors",
    "st-huge-tensor.safetensors", "st-overlap.safetensors", "st-not-json.safetensors",
    "ts-hang.pt", "ts-allocate.pt", "link-dev-zero.pt", "link-dangling.pt",
    "link-to-pickle.pt", "folder.pt", "fifo.pt", "socket.pt", "empty.pt",
]


def test_the_corpus_is_big_enough(hostile):
    _, corpus = hostile
    assert sorted(corpus) == sorted(NAMES)
    assert len(NAMES) >= 25


@pytest.mark.parametrize("name", NAMES)
def test_hostile_file_is_refused_with_one_line_and_nothing_runs(name, hostile, private_tmp):
    root, corpus = hostile
    path, needle = corpus[name]
    if path is None:
        pytest.skip(needle)
    measured = reset_peak()
    base = peak_rss()
    sandbox.LAST_REPORT.clear()
    started_wall = time.time()  # a timestamp for the traversal targets, not a stopwatch
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path, limits=LIMITS)
    message = str(excinfo.value)
    assert "\n" not in message and len(message) < 600, message
    assert needle in message, message
    assert "truncated" not in message, f"a hostile file is not 'truncated': {message}"
    assert not list((root / "markers").iterdir()), f"{name} ran code: {message}"
    for target in TRAVERSAL_TARGETS:  # where the traversal entries aim
        assert not target.exists() or target.stat().st_mtime < started_wall, target
    assert not list(private_tmp.iterdir()), f"{name} left files in TMPDIR"
    if name in SANDBOXED and sandbox.LAST_REPORT:
        report = sandbox.LAST_REPORT[0]
        # The child was stopped by a limit (killed at --load-timeout, or its allocation refused
        # under --load-memory) or refused the file itself, and its memory stayed under the cap
        # (torch's own import, ~0.8 GB, plus the limit plus the sandbox's headroom). Why it
        # ended is the child's own account, not a stopwatch a loaded machine would skew.
        assert report.reason in SANDBOX_REASONS[name], report
        assert report.peak_rss_bytes < 1.2e9 + LIMIT_BYTES + sandbox.HEADROOM_BYTES, report
    else:
        # In-process refusals read headers and opcodes only: their work is bounded by counts
        # (test_pickle_bomb_scan_stops_after_the_object_cap), their memory is measured here.
        if measured:
            grew = peak_rss() - base
            assert grew < IN_PROCESS_PEAK_BYTES, f"{name}: peak memory grew {grew >> 20} MiB"


def test_pickle_bomb_scan_stops_after_the_object_cap(hostile, monkeypatch):
    """The 4-million-opcode pickle bomb is refused after decoding about the object cap's worth
    of opcodes: a count of the work done, which no machine's load changes."""
    import pickletools

    _, corpus = hostile
    path, needle = corpus["torchsave-pickle-bomb.pt"]
    decoded = [0]
    real_genops = pickletools.genops

    def counting_genops(*args, **kwargs):
        for item in real_genops(*args, **kwargs):
            decoded[0] += 1
            yield item

    monkeypatch.setattr(pickletools, "genops", counting_genops)
    limits = LoadLimits(timeout_s=LIMIT_SECONDS, memory_bytes=LIMIT_BYTES, max_pickle_objects=10_000)
    with pytest.raises(AuditkitInputError, match=needle):
        load_model(path, limits=limits)
    assert 10_000 < decoded[0] <= 10_000 + 10, decoded[0]  # not the 4,000,000 it holds


def test_aoti_shared_object_really_runs_under_plain_torch(hostile, tmp_path):
    """Control: the corpus' .so is live ammunition, so refusing it means something."""
    root, corpus = hostile
    path, reason = corpus["pt2-aoti.pt2"]
    if path is None:
        pytest.skip(reason)
    marker = root / "markers" / "aoti-so"
    code = f"import torch\ntry:\n    torch.export.load({str(path)!r})\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300,
                   env=dict(os.environ, TMPDIR=str(tmp_path)))
    try:
        assert marker.exists(), "torch.export.load no longer dlopens AOTInductor packages"
    finally:
        marker.unlink(missing_ok=True)


def test_native_code_is_accepted_only_when_allowed_and_still_never_loaded(hostile, private_tmp):
    root, corpus = hostile
    path, reason = corpus["pt2-aoti.pt2"]
    if path is None:
        pytest.skip(reason)
    loaded = load_model(path, limits=LoadLimits(allow_native_code=True))
    assert loaded.format == "torch.export"
    assert not (root / "markers" / "aoti-so").exists(), "the shared object was loaded"
    assert not list(private_tmp.iterdir())


# Each is a fresh `auditkit` process importing torch (10-15 s apiece on a busy machine): the
# default suite runs one; every file is also refused in-process above, and make test-slow runs
# the rest through the command line.
@pytest.mark.parametrize("name", [
    "pickle-os.pkl",
    *(pytest.param(n, marks=pytest.mark.slow) for n in ("pt2-traversal.pt2", "ts-hang.pt", "fifo.pt")),
])
def test_cli_refuses_hostile_files_with_one_line_on_stderr(hostile, tmp_path, name):
    """Through the real command line: exit 2, one stderr line, no torch output before it,
    nothing left in TMPDIR."""
    root, corpus = hostile
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    exe = Path(sys.executable).with_name("auditkit")
    path, needle = corpus[name]
    done = subprocess.run(
        [str(exe), "scan", str(path), "--data", "digits", "--out", str(tmp_path / "out"),
         "--load-timeout", str(LIMIT_SECONDS)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TMPDIR=str(tmpdir)),
    )
    assert done.returncode == 2, (name, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditkit: error: "), (name, done.stderr)
    assert needle in lines[0]
    assert done.stdout == ""
    assert not list((root / "markers").iterdir())
    assert not list(tmpdir.iterdir())
    assert not (tmp_path / "out").exists(), "a refused model leaves no output folder"


def test_ctrl_c_during_loading_leaves_nothing_in_tmpdir(hostile, private_tmp, monkeypatch):
    import tempfile

    from auditkit import loading

    _, corpus = hostile
    path = corpus["pt2-bomb.pt2"][0].with_name("base.pt2")  # an intact archive

    def interrupted(_path, _request):
        # What torch leaves mid-extraction, then the user presses Ctrl-C.
        with open(os.path.join(tempfile.gettempdir(), "half-extracted.so"), "wb") as fh:
            fh.write(b"\x00" * 1024)
        raise KeyboardInterrupt

    monkeypatch.setitem(loading.FORMAT_LOADERS, "torch.export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_model(path, limits=LIMITS)
    assert not list(private_tmp.iterdir())


def test_sigterm_while_a_sandboxed_load_hangs_cleans_up_and_kills_the_child(hostile, tmp_path):
    _, corpus = hostile
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    code = (
        "import sys\n"
        "from auditkit.loading import load_model\n"
        "from auditkit.loading.safety import LoadLimits\n"
        f"load_model({str(corpus['ts-hang.pt'][0])!r}, limits=LoadLimits(timeout_s=120))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, TMPDIR=str(tmpdir)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    children: list[str] = []
    while time.monotonic() < deadline and not children:  # wait for the sandbox child
        time.sleep(0.5)
        children = _children(proc.pid)
    assert children, "the sandboxed loader never started"
    time.sleep(2.0)  # let it get into the endless __setstate__
    proc.terminate()
    proc.wait(timeout=60)
    assert proc.returncode != 0
    time.sleep(0.5)
    assert not [c for c in children if os.path.exists(f"/proc/{c}")], "the child outlived us"
    assert not list(tmpdir.iterdir()), list(tmpdir.iterdir())


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return fh.read().split()
    except OSError:
        return []


def test_torch_output_is_captured_and_shown_only_with_debug(hostile, tmp_path):
    """A TorchScript load makes torch warn (jit.load is deprecated): not on the terminal, and
    under --debug after auditkit's own lines."""
    from typer.testing import CliRunner

    from auditkit.cli import app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.script(torch.nn.Linear(4, 2))
        torch.jit.save(script, str(tmp_path / "lin.pt"))
    args = ["scan", str(tmp_path / "lin.pt"), "--data", str(tmp_path / "absent.npz"),
            "--out", str(tmp_path / "o")]
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 2
    assert "Warning" not in quiet.output and len(quiet.output.strip().splitlines()) == 1
    loud = CliRunner().invoke(app, [*args, "--debug"])
    assert loud.exit_code == 2
    assert "torch output while loading" in loud.output and "deprecated" in loud.output

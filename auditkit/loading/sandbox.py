"""Trial-load a model file in a child process under a time and memory limit.

TorchScript runs ``__setstate__`` code from the file while loading, and a pre-1.6 pickle
declares storage sizes nobody checks up front: either can hang or allocate without bound. The
child (``python -m auditkit.loading.sandbox``) imports torch, caps its own address space at its size
after imports plus ``LoadLimits.memory_bytes``, says "ready", and loads the file exactly as the
parent would (with the loader the parent hands it by name: the sandbox knows no format). The parent kills it (its whole process group) when the time limit passes, and
loads the file itself only if the child succeeded.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auditkit.errors import AuditkitInputError
from auditkit.loading.safety import (
    LOAD_CRASHED,
    LOAD_MEMORY,
    LOAD_TIMEOUT,
    LoadLimits,
    human_bytes,
)

READY = b"auditkit-sandbox-ready\n"
STARTUP_TIMEOUT_S = 180.0  # importing torch on a busy machine; not the file's fault
# Address space the child needs beyond the file's own cost: thread stacks, malloc arenas.
HEADROOM_BYTES = 768 << 20


@dataclass(frozen=True)
class SandboxReport:
    """How a sandboxed trial load went (tests read the measured numbers)."""

    ok: bool
    wall_s: float  # from "ready" to exit: the load itself
    peak_rss_bytes: int  # the child's peak resident memory, imports included
    message: str | None = None
    output: str = ""
    #: Why the child's trial ended: "ok", "timeout" (killed at --load-timeout), "memory" (its
    #: allocation refused under --load-memory), "error" (a refusal it worded) or "crash".
    #: Tests read this, not a stopwatch: the limit is enforced by the kill, not by the clock
    #: a busy machine happens to show.
    reason: str = "ok"


LAST_REPORT: list[SandboxReport] = []  # the most recent report, for tests and --debug


def trial_load(
    path: str | Path, fmt: str, limits: LoadLimits, *, load: Callable[..., object],
    unsafe_pickle: bool = False, debug: bool = False,
) -> SandboxReport:
    """Load ``path`` in a limited child; raise ``AuditkitInputError`` if that fails.

    ``load`` is what the child calls, ``load(path, unsafe_pickle=, limits=, debug=,
    _sandboxed=True)``: a module-level function, handed over by its importable name, so the
    sandbox knows no format (and imports no loader). With ``debug`` what torch printed in the
    child is written to stderr.
    """
    spec = json.dumps({
        "load": f"{load.__module__}:{load.__qualname__}",
        "path": str(path), "format": fmt, "unsafe_pickle": unsafe_pickle, "debug": debug,
        "memory_bytes": limits.memory_bytes, "max_ratio": limits.max_ratio,
        "allow_native_code": limits.allow_native_code, "timeout_s": limits.timeout_s,
    })
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    # The child imports what the parent can: plugins put on sys.path at run time included (an
    # architecture file's factory is found through the same entry points in both).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditkit.loading.sandbox", spec],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
            start_new_session=True, env=env,
        )
        try:
            out, status, rusage, ready_at, timed_out = _watch(proc, limits.timeout_s)
        except BaseException:  # Ctrl-C while waiting: the child must not outlive us
            _kill(proc)
            raise
        errors.seek(0)
        output = errors.read().decode("utf-8", "replace")
    wall = time.monotonic() - (ready_at or started)
    peak = int(rusage.ru_maxrss) * 1024 if rusage is not None else 0
    message, reason = _verdict(path, out, status, timed_out, limits)
    report = SandboxReport(ok=message is None, wall_s=wall, peak_rss_bytes=peak,
                           message=message, output=output, reason=reason)
    LAST_REPORT[:] = [report]
    if debug and output.strip():
        sys.stderr.write(f"[auditkit --debug] the sandboxed loader said:\n{output.strip()}\n")
    if message is not None:
        raise AuditkitInputError(message)
    return report


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _watch(proc: subprocess.Popen, timeout_s: float):
    """Read the child's stdout until it exits or its time is up; reap it with its rusage."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    ready_at: float | None = None
    start = time.monotonic()
    timed_out = False
    while True:
        now = time.monotonic()
        deadline = (ready_at + timeout_s) if ready_at is not None else start + STARTUP_TIMEOUT_S
        if now >= deadline:
            timed_out = ready_at is not None
            os.killpg(proc.pid, signal.SIGKILL)
            break
        readable, _, _ = select.select([fd], [], [], min(0.25, deadline - now))
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break  # the child closed stdout: it exited
        chunks.append(chunk)
        if ready_at is None and READY in b"".join(chunks):
            ready_at = time.monotonic()
    _pid, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    # The child's own children (if the file managed to start any) go with its group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return b"".join(chunks), status, rusage, ready_at, timed_out


def _verdict(
    path, out: bytes, status: int, timed_out: bool, limits: LoadLimits
) -> tuple[str | None, str]:
    """The refusal (None when the trial succeeded) and why the child ended (``SandboxReport``)."""
    if timed_out:
        return LOAD_TIMEOUT.format(path=path, seconds=limits.timeout_s), "timeout"
    last = out.rsplit(READY, 1)[-1].strip().splitlines()
    result = {}
    if last:
        try:
            result = json.loads(last[-1])
        except ValueError:
            result = {}
    if result.get("ok"):
        return None, "ok"
    if result.get("memory"):
        return LOAD_MEMORY.format(path=path, limit=human_bytes(limits.memory_bytes)), "memory"
    if result.get("error"):
        return str(result["error"]), "error"
    if READY not in out:
        return f"{path}: the loader process could not start (exit status {status}): refused", "crash"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig in (signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
            # An allocation refused under the address-space cap often ends in abort/segfault.
            return LOAD_MEMORY.format(path=path, limit=human_bytes(limits.memory_bytes)) + (
                f" (the loader died with {name})"
            ), "memory"
        return LOAD_CRASHED.format(path=path, how=f"it died with {name}"), "crash"
    how = f"exit status {os.waitstatus_to_exitcode(status)}"
    return LOAD_CRASHED.format(path=path, how=how), "crash"


# --- the child ---------------------------------------------------------------------------------


def _address_space() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(spec_text: str) -> int:
    import resource

    spec = json.loads(spec_text)
    import torch  # noqa: F401  (imports are not the file's cost: they come before the cap)

    from auditkit.bounds.trial import MEMORY_WORDS, first_call, warm_imports

    module_name, _, function_name = spec["load"].partition(":")
    load_model = getattr(importlib.import_module(module_name), function_name)

    warm_imports(spec["format"], spec["path"])

    torch.set_num_threads(1)
    current = _address_space()
    if current:  # without /proc the starting size is unknown: a cap could starve the import
        cap = current + int(spec["memory_bytes"]) + HEADROOM_BYTES
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard_fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
    fsize = int(spec["memory_bytes"])
    if hard_fsize == resource.RLIM_INFINITY or fsize < hard_fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, hard_fsize))
    limits = LoadLimits(
        timeout_s=float(spec["timeout_s"]), memory_bytes=int(spec["memory_bytes"]),
        allow_native_code=bool(spec["allow_native_code"]), max_ratio=float(spec["max_ratio"]),
    )
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    try:
        loaded = load_model(spec["path"], unsafe_pickle=bool(spec["unsafe_pickle"]),
                            limits=limits, debug=bool(spec.get("debug")), _sandboxed=True)
        first_call(loaded)  # ONNX/skops/architecture files: the first inference runs here (#24)
        result: dict = {"ok": True}
    except MemoryError:
        result = {"memory": True}
    except AuditkitInputError as exc:
        text = str(exc)
        memory_words = (*MEMORY_WORDS, "MemoryError")
        result = {"memory": True} if any(w in text for w in memory_words) else {"error": text}
    except BaseException as exc:  # noqa: BLE001  (anything else is the file's doing)
        result = {"error": f"{spec['path']}: loading failed ({type(exc).__name__}): refused"}
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # no destructors from the loaded file


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))

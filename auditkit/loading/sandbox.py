"""Trial-load a model file in a child process under a time and memory limit.

TorchScript runs ``__setstate__`` code from the file while loading, and a pre-1.6 pickle
declares storage sizes nobody checks up front: either can hang or allocate without bound. The
child (``python -m auditkit.loading.sandbox``) imports torch, caps its own address space at its size
after imports plus ``LoadLimits.memory_bytes``, says "ready", and loads the file exactly as the
parent would (with the loader the parent hands it by name: the sandbox knows no format). The parent kills it (its whole process group) when the time limit passes, and
loads the file itself only if the child succeeded.

An architecture file (``fmt == "safetensors"`` reaches the sandbox only with a recipe) runs no
code from the file: its factory is an installed entry point and only the arguments come from
the file, so the danger is time and memory, not code. When the parent has torch imported (a
scan always has), its trial runs in a *forked* child (``_fork_trial``) that skips the 3-8 s
interpreter start: ``setsid``, one torch thread, the same address-space/core/file-size caps,
the build and first forward pass, one JSON line on a pipe, ``os._exit``. It touches no lock a
parent thread may hold (a rich progress display refreshes from a thread): it never writes to
the inherited ``sys.stdout``/``sys.stderr`` objects, only to fresh ones on its own descriptors.
Everything that runs code from a file (TorchScript, pickles, ONNX control flow, skops) keeps
the fresh interpreter.
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
BASE = b"auditkit-sandbox-resident "  # a forked child's resident size before its trial
STARTUP_TIMEOUT_S = 180.0  # importing torch on a busy machine; not the file's fault
# Address space the child needs beyond the file's own cost: thread stacks, malloc arenas.
HEADROOM_BYTES = 768 << 20


@dataclass(frozen=True)
class SandboxReport:
    """How a sandboxed trial load went (tests read the measured numbers)."""

    ok: bool
    wall_s: float  # from "ready" to exit: the load itself
    #: The child's peak resident memory (its ``ru_maxrss``). A fresh interpreter's includes its
    #: imports; a forked child's includes the parent's pages it shares copy-on-write (counted as
    #: resident in it though never copied): ``peak_rss_bytes - base_rss_bytes`` is its growth.
    peak_rss_bytes: int
    message: str | None = None
    output: str = ""
    #: Why the child's trial ended: "ok", "timeout" (killed at --load-timeout), "memory" (its
    #: allocation refused under --load-memory), "error" (a refusal it worded) or "crash".
    #: Tests read this, not a stopwatch: the limit is enforced by the kill, not by the clock
    #: a busy machine happens to show.
    reason: str = "ok"
    #: Resident memory the child had before its trial: 0 for a fresh interpreter, for a forked
    #: one its VmRSS after the fork (the parent's anonymous pages it shares; file-backed pages,
    #: torch's libraries, are counted only as it touches them, so the growth can overstate).
    base_rss_bytes: int = 0
    forked: bool = False

    @property
    def grew_bytes(self) -> int:
        """The child's peak resident memory beyond what it started with."""
        return max(0, self.peak_rss_bytes - self.base_rss_bytes)


LAST_REPORT: list[SandboxReport] = []  # the most recent report, for tests and --debug


def trial_load(
    path: str | Path, fmt: str, limits: LoadLimits, *, load: Callable[..., object],
    unsafe_pickle: bool = False, debug: bool = False, runs_no_file_code: bool = False,
) -> SandboxReport:
    """Load ``path`` in a limited child; raise ``AuditkitInputError`` if that fails.

    ``load`` is what the child calls, ``load(path, unsafe_pickle=, limits=, debug=,
    _sandboxed=True)``: a module-level function, handed over by its importable name, so the
    sandbox knows no format (and imports no loader). With ``debug`` what torch printed in the
    child is written to stderr. ``runs_no_file_code``: the caller vouches that loading runs
    only trusted code, the file steering sizes alone (an architecture file), so the trial may
    fork instead of starting a fresh interpreter.
    """
    if runs_no_file_code and "torch" in sys.modules and hasattr(os, "fork"):
        report = _fork_trial(path, fmt, limits, load=load, debug=debug)
    else:
        report = _spawn_trial(path, fmt, limits, load=load, unsafe_pickle=unsafe_pickle,
                              debug=debug)
    LAST_REPORT[:] = [report]
    if debug and report.output.strip():
        sys.stderr.write(f"[auditkit --debug] the sandboxed loader said:\n{report.output.strip()}\n")
    if report.message is not None:
        raise AuditkitInputError(report.message)
    return report


def _spawn_trial(
    path: str | Path, fmt: str, limits: LoadLimits, *, load: Callable[..., object],
    unsafe_pickle: bool, debug: bool,
) -> SandboxReport:
    """The trial in a fresh ``python -m auditkit.loading.sandbox`` (code from the file runs)."""
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
        assert proc.stdout is not None
        try:
            out, status, rusage, ready_at, timed_out = _watch(
                proc.pid, proc.stdout.fileno(), limits.timeout_s)
        except BaseException:  # Ctrl-C while waiting: the child must not outlive us
            _kill(proc.pid)
            raise
        finally:
            proc.stdout.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        output = errors.read().decode("utf-8", "replace")
    wall = time.monotonic() - (ready_at or started)
    peak = int(rusage.ru_maxrss) * 1024 if rusage is not None else 0
    message, reason = _verdict(path, out, status, timed_out, limits)
    return SandboxReport(ok=message is None, wall_s=wall, peak_rss_bytes=peak,
                         message=message, output=output, reason=reason)


def _fork_trial(
    path: str | Path, fmt: str, limits: LoadLimits, *, load: Callable[..., object], debug: bool,
) -> SandboxReport:
    """An architecture file's trial in a forked child (see the module docstring)."""
    import warnings

    from auditkit.bounds.trial import warm_imports

    warm_imports(fmt, str(path))  # the factory's plugin: the parent builds it next anyway
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork() may deadlock" (see above)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(read_fd)
                _forked_child(write_fd, errors.fileno(), path, fmt, limits, load, debug)
            finally:
                os._exit(70)
        os.close(write_fd)
        try:
            out, status, rusage, ready_at, timed_out = _watch(
                pid, read_fd, limits.timeout_s, until_result=True)
        except BaseException:  # Ctrl-C while waiting: the child must not outlive us
            _kill(pid)
            raise
        finally:
            os.close(read_fd)
        errors.seek(0)
        output = errors.read().decode("utf-8", "replace")
    wall = time.monotonic() - (ready_at or started)
    peak = int(rusage.ru_maxrss) * 1024 if rusage is not None else _said(out, b'"peak": ')
    message, reason = _verdict(path, out, status, timed_out, limits)
    base = 0
    if out.startswith(BASE):  # the child's resident size before the trial, in its own words
        try:
            base = int(out[len(BASE):].split(b"\n", 1)[0])
        except ValueError:
            base = 0
    return SandboxReport(ok=message is None, wall_s=wall, peak_rss_bytes=peak, message=message,
                         output=output, reason=reason, base_rss_bytes=base, forked=True)


def _said(out: bytes, key: bytes) -> int:
    """A number the forked child put in its result line (0 if it did not)."""
    _, found, rest = out.rpartition(key)
    digits = rest[:24].split(b",")[0].split(b"}")[0].strip()
    return int(digits) if found and digits.isdigit() else 0


def _kill(pid: int) -> None:
    """Kill the child's process group and reap it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)  # a forked child before its setsid
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _watch(pid: int, fd: int, timeout_s: float, *, until_result: bool = False):
    """Read the child's output pipe until it exits or its time is up; reap it with its rusage.

    With ``until_result`` (a forked child, whose result line is its last act before
    ``os._exit``) reading stops at a successful result: the kernel's teardown of the child's copy of the
    parent's address space (~10 ms) is not waited for; a thread reaps it (rusage then None). A
    refusal is waited for: nothing of a hostile file's child outlives the refusal.
    """
    chunks: list[bytes] = []
    ready_at: float | None = None
    start = time.monotonic()
    timed_out = False
    while True:
        now = time.monotonic()
        deadline = (ready_at + timeout_s) if ready_at is not None else start + STARTUP_TIMEOUT_S
        if now >= deadline:
            timed_out = ready_at is not None
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):  # a forked child before its setsid
                os.kill(pid, signal.SIGKILL)
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
        if until_result and ready_at is not None:
            data = b"".join(chunks)
            if data.endswith(b"\n") and b'{"ok": true' in data.rsplit(READY, 1)[-1]:
                return data, 0, _reap_later(pid), ready_at, False
    _pid, status, rusage = os.wait4(pid, 0)
    # The child's own children (if the file managed to start any) go with its group.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return b"".join(chunks), status, rusage, ready_at, timed_out


def _reap_later(pid: int):
    """The forked child has said its result and is exiting: end its group, reap it now if it
    is gone (its rusage), else from a daemon thread (None)."""
    try:
        os.killpg(pid, signal.SIGKILL)  # anything it started goes with it
    except (ProcessLookupError, PermissionError):
        pass
    done, _status, rusage = os.wait4(pid, os.WNOHANG)
    if done:
        return rusage
    import threading

    threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True,
                     name="auditkit-sandbox-reaper").start()
    return None


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


def _resident(field: str = "VmRSS:") -> int:
    """This process's resident size (VmRSS, or its peak VmHWM), 0 without /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cap(memory_bytes: int) -> None:
    """Address space at the current size + ``memory_bytes`` + headroom; no core; file sizes."""
    import resource

    current = _address_space()
    if current:  # without /proc the starting size is unknown: a cap could starve the import
        cap = current + memory_bytes + HEADROOM_BYTES
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard_fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard_fsize == resource.RLIM_INFINITY or memory_bytes < hard_fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (memory_bytes, hard_fsize))


def _trial(path: str, load_model: Callable[..., object], limits: LoadLimits,
           unsafe_pickle: bool, debug: bool) -> dict:
    """In the child: the load and the first use, as the parent will do them; the JSON result."""
    from auditkit.bounds.trial import MEMORY_WORDS, first_call

    try:
        loaded = load_model(path, unsafe_pickle=unsafe_pickle, limits=limits, debug=debug,
                            _sandboxed=True)
        first_call(loaded)  # ONNX/skops/architecture files: the first inference runs here (#24)
        return {"ok": True}
    except MemoryError:
        return {"memory": True}
    except AuditkitInputError as exc:
        text = str(exc)
        memory_words = (*MEMORY_WORDS, "MemoryError")
        return {"memory": True} if any(w in text for w in memory_words) else {"error": text}
    except BaseException as exc:  # noqa: BLE001  (anything else is the file's doing)
        return {"error": f"{path}: loading failed ({type(exc).__name__}): refused"}


def _forked_child(write_fd: int, errors_fd: int, path: str | Path, fmt: str,
                  limits: LoadLimits, load: Callable[..., object], debug: bool) -> None:
    """The forked child of ``_fork_trial``: it ends in ``os._exit``, never returns normally.

    Fork safety: other parent threads (a rich progress refresh, torch's pools) do not exist
    here, and a lock one held at the fork stays held. So the child uses no inherited Python
    stream (``sys.stdout``/``sys.stderr`` are replaced by fresh objects on its own descriptors
    before anything can print or warn), no logging handler of the parent's, and torch with one
    thread (its OpenMP pool does not survive a fork, as in DataLoader workers). Only malloc's
    locks are shared with the parent's threads, and glibc resets those in the child.
    """
    import io

    os.setsid()  # its own process group: the timeout kills it with anything it starts
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(errors_fd, 1)
    os.dup2(errors_fd, 2)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except ValueError:  # not the main thread's: the parent's handlers stay (they exit too)
            pass
    import torch

    torch.set_num_threads(1)
    _cap(int(limits.memory_bytes))
    os.write(write_fd, BASE + b"%d\n" % _resident() + READY)
    result = _trial(str(path), load, limits, False, debug)
    result["peak"] = _resident("VmHWM:")  # its rusage may not be waited for
    os.write(write_fd, ("\n" + json.dumps(result) + "\n").encode())
    os._exit(0)  # no destructors, no atexit handlers of the parent's


def _child(spec_text: str) -> int:
    spec = json.loads(spec_text)
    import torch  # noqa: F401  (imports are not the file's cost: they come before the cap)

    from auditkit.bounds.trial import warm_imports

    module_name, _, function_name = spec["load"].partition(":")
    load_model = getattr(importlib.import_module(module_name), function_name)

    warm_imports(spec["format"], spec["path"])

    torch.set_num_threads(1)
    _cap(int(spec["memory_bytes"]))
    limits = LoadLimits(
        timeout_s=float(spec["timeout_s"]), memory_bytes=int(spec["memory_bytes"]),
        allow_native_code=bool(spec["allow_native_code"]), max_ratio=float(spec["max_ratio"]),
    )
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    result = _trial(spec["path"], load_model, limits, bool(spec["unsafe_pickle"]),
                    bool(spec.get("debug")))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # no destructors from the loaded file


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))

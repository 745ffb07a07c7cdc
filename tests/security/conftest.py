"""A corpus of hostile model files, built by the test suite itself.

Every payload, if it ever ran, would create a marker file in ``markers/``: a test that finds a
marker there has caught auditkit running code from a file. Nothing here is downloaded.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import shutil
import socket
import struct
import subprocess
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn


class Payload:
    """Unpickling this runs ``how`` to create ``marker``."""

    def __init__(self, how: str, marker: Path) -> None:
        self.how, self.marker = how, str(marker)

    def __reduce__(self):
        code = f"open({self.marker!r}, 'w').close()"
        if self.how == "os":
            return (os.system, (f"touch {self.marker}",))
        if self.how == "subprocess":
            return (subprocess.call, (["touch", self.marker],))
        if self.how == "eval":
            return (eval, (code,))
        if self.how == "exec":
            return (exec, (code,))
        if self.how == "builtins":
            return (open, (self.marker, "w"))
        raise ValueError(self.how)


class _Storage:
    pass


class _HugeTensor:
    def __reduce__(self):
        return (
            torch._utils._rebuild_tensor_v2,
            (_Storage(), 0, (1 << 30,), (1,), False, collections.OrderedDict()),
        )


class _HugePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", 1 << 30)  # 4 GiB declared
        return None


class HangAtLoad(nn.Module):
    """TorchScript runs ``__setstate__`` while loading: this one never returns."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[int, bool]:
        return (self.n, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[int, bool]) -> None:
        i = state[0]
        while i > 0:
            i = i + 1
        self.n = i
        self.training = state[1]


class AllocateAtLoad(nn.Module):
    """TorchScript whose ``__setstate__`` asks for 16 GiB."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 1
        self.t = torch.zeros(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[int, bool]:
        return (self.n, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[int, bool]) -> None:
        self.t = torch.ones(1 << 32)
        self.n = state[0]
        self.training = state[1]


def rewrite_zip(
    src: Path, dst: Path, *, replace: dict | None = None, add: dict | None = None,
    deflate: tuple[str, ...] = (),
) -> Path:
    """Copy a zip, replacing/adding entries (names relative to the archive's top folder)."""
    replace, add = dict(replace or {}), dict(add or {})
    with zipfile.ZipFile(src) as zin:
        prefix = zin.namelist()[0].split("/", 1)[0] + "/"
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                short = info.filename[len(prefix):]
                data = replace.pop(short, None)
                data = zin.read(info) if data is None else data
                kind = zipfile.ZIP_DEFLATED if short in deflate else zipfile.ZIP_STORED
                zout.writestr(zipfile.ZipInfo(info.filename), data, compress_type=kind)
            for short, data in add.items():
                name = short if short.startswith(("/", "..")) or "\\" in short else prefix + short
                kind = zipfile.ZIP_DEFLATED if short in deflate else zipfile.ZIP_STORED
                zout.writestr(zipfile.ZipInfo(name), data, compress_type=kind)
    return dst


def _torch_save_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _config(path: Path, name: str) -> dict:
    with zipfile.ZipFile(path) as zf:
        full = next(n for n in zf.namelist() if n.endswith(name))
        return json.loads(zf.read(full))


def _shared_object(folder: Path, marker: Path) -> bytes | None:
    """A tiny shared object whose constructor creates ``marker`` (None without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source = folder / "evil.c"
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void run(void) {\n"
        f'  FILE *f = fopen("{marker}", "w"); if (f) fclose(f);\n'
        "}\n"
    )
    out = folder / "evil.so"
    done = subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(source)],
                          capture_output=True, timeout=120)
    return out.read_bytes() if done.returncode == 0 else None


def _safetensors(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def build_corpus(root: Path) -> dict[str, tuple[Path | None, str]]:
    """name -> (hostile file or None when it cannot be built here, what the refusal names)."""
    markers = root / "markers"
    markers.mkdir()
    files = root / "files"
    files.mkdir()
    corpus: dict[str, tuple[Path | None, str]] = {}

    def marker(name: str) -> Path:
        return markers / name

    def put(name: str, data: bytes, needle: str) -> Path:
        path = files / name
        path.write_bytes(data)
        corpus[name] = (path, needle)
        return path

    # Plain pickles, each reaching code a different way.
    for how in ("os", "subprocess", "eval", "exec", "builtins"):
        put(f"pickle-{how}.pkl", pickle.dumps(Payload(how, marker(f"pickle-{how}"))),
            "pickled Python object")
    put("pickle0-os.pkl", pickle.dumps(Payload("os", marker("pickle0-os")), protocol=0),
        "pickled Python object")

    net = nn.Sequential(nn.Linear(4, 3))
    # Payloads nested inside ordinary-looking checkpoints.
    put("checkpoint-nested.pt", _torch_save_bytes(
        {"state_dict": net.state_dict(), "optimizer": {"state": [Payload("os", marker("ckpt"))]}}
    ), "pickled Python object")
    put("checkpoint-epoch.pt", _torch_save_bytes(
        {"model_state_dict": net.state_dict(), "epoch": Payload("exec", marker("ckpt-epoch"))}
    ), "pickled Python object")
    legacy = io.BytesIO()
    torch.save({"state_dict": net.state_dict(), "x": Payload("os", marker("legacy"))}, legacy,
               _use_new_zipfile_serialization=False)
    put("checkpoint-legacy.pt", legacy.getvalue(), "pickled Python object")

    # torch.export archives.
    ep = torch.export.export(net, (torch.randn(2, 4),))
    base = files / "base.pt2"
    torch.export.save(ep, base)
    weights = _config(base, "model_weights_config.json")
    pickled = json.loads(json.dumps(weights))
    pickled["config"]["0.weight"]["use_pickle"] = True
    rewrite_zip(base, files / "pt2-use-pickle.pt2", replace={
        "data/weights/model_weights_config.json": json.dumps(pickled).encode(),
        "data/weights/weight_0": _torch_save_bytes(Payload("os", marker("pt2-use-pickle"))),
    })
    corpus["pt2-use-pickle.pt2"] = (files / "pt2-use-pickle.pt2", "embeds pickled Python objects")
    constants = {"config": {"evil": {"path_name": "opaque_obj_0", "is_param": False,
                                     "use_pickle": True, "tensor_meta": None}}}
    rewrite_zip(base, files / "pt2-opaque.pt2", replace={
        "data/constants/model_constants_config.json": json.dumps(constants).encode(),
    }, add={"data/constants/opaque_obj_0": pickle.dumps(Payload("eval", marker("pt2-opaque")))})
    corpus["pt2-opaque.pt2"] = (files / "pt2-opaque.pt2", "embeds pickled Python objects")
    rewrite_zip(base, files / "pt2-sample-inputs.pt2", replace={
        "data/sample_inputs/model.pt": _torch_save_bytes(Payload("os", marker("pt2-sample"))),
    })
    corpus["pt2-sample-inputs.pt2"] = (files / "pt2-sample-inputs.pt2", "embeds pickled")

    so = _shared_object(root, marker("aoti-so"))
    if so is not None:
        # The names torch 2.14's package loader looks for (older torch: model.so and
        # model_metadata.json); it extracts the package and dlopens the wrapper.
        rewrite_zip(base, files / "pt2-aoti.pt2", add={
            "data/aotinductor/model/model.wrapper.so": so,
            "data/aotinductor/model/model.wrapper_metadata.json": b'{"AOTI_DEVICE_KEY": "cpu"}',
        })
        corpus["pt2-aoti.pt2"] = (files / "pt2-aoti.pt2", "carries native code")
    else:
        corpus["pt2-aoti.pt2"] = (None, "no C compiler (cc) to build the shared object")
    rewrite_zip(base, files / "pt2-elf-disguised.pt2",
                add={"data/weights/blob": b"\x7fELF\x02\x01\x01" + b"\x00" * 57})
    corpus["pt2-elf-disguised.pt2"] = (files / "pt2-elf-disguised.pt2", "carries native code")
    rewrite_zip(base, files / "pt2-traversal.pt2", add={
        "data/aotinductor/model/../../../../../../../../tmp/auditkit-pwned": b"x"})
    corpus["pt2-traversal.pt2"] = (files / "pt2-traversal.pt2", "climbs out of the archive")
    rewrite_zip(base, files / "pt2-absolute.pt2", add={"/tmp/auditkit-pwned-abs": b"x"})
    corpus["pt2-absolute.pt2"] = (files / "pt2-absolute.pt2", "is an absolute path")
    rewrite_zip(base, files / "pt2-backslash.pt2", add={"..\\..\\auditkit-pwned-bs": b"x"})
    corpus["pt2-backslash.pt2"] = (files / "pt2-backslash.pt2", "climbs out of the archive")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is told to write
        rewrite_zip(base, files / "pt2-duplicate.pt2", add={"archive_version": b"0"})
    corpus["pt2-duplicate.pt2"] = (files / "pt2-duplicate.pt2", "appears twice")

    zeros = bytes(32 << 20)  # 32 MiB of zeros deflate to ~32 kB
    rewrite_zip(base, files / "pt2-bomb.pt2", replace={"data/weights/weight_0": zeros},
                deflate=("data/weights/weight_0",))
    corpus["pt2-bomb.pt2"] = (files / "pt2-bomb.pt2", "compression bomb")
    huge = json.loads(json.dumps(weights))
    meta = huge["config"]["0.weight"]["tensor_meta"]
    meta["sizes"] = [{"as_int": 1 << 15}, {"as_int": 1 << 15}]
    meta["strides"] = [{"as_int": 1 << 15}, {"as_int": 1}]
    rewrite_zip(base, files / "pt2-huge-declared.pt2", replace={
        "data/weights/model_weights_config.json": json.dumps(huge).encode(),
        "data/weights/weight_0": b"",
    })
    corpus["pt2-huge-declared.pt2"] = (files / "pt2-huge-declared.pt2", "lies about its tensor")

    state = files / "state.pt"
    torch.save(net.state_dict(), state)
    rewrite_zip(state, files / "torchsave-bomb.pt", replace={"data/1": zeros},
                deflate=("data/1",))
    corpus["torchsave-bomb.pt"] = (files / "torchsave-bomb.pt", "compression bomb")
    buffer = io.BytesIO()
    _HugePickler(buffer, protocol=2).dump({"weight": _HugeTensor()})
    with zipfile.ZipFile(files / "torchsave-huge-declared.pt", "w") as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", b"\x00" * 16)
        zf.writestr("archive/version", "3\n")
    corpus["torchsave-huge-declared.pt"] = (files / "torchsave-huge-declared.pt", "lies about")
    # 4 MB of pickle that builds 4 million dicts (~300 MB), with no tensor in sight.
    with zipfile.ZipFile(files / "torchsave-pickle-bomb.pt", "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02(" + b"}" * 4_000_000 + b"l.")
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    corpus["torchsave-pickle-bomb.pt"] = (files / "torchsave-pickle-bomb.pt", "memory bomb")

    # safetensors headers that lie.
    put("st-header-beyond-file.safetensors", struct.pack("<Q", 1 << 40) + b'{"a": 1}',
        "safetensors header is invalid")
    put("st-huge-tensor.safetensors", _safetensors(
        {"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 16]}},
        bytes(16)), "lies about its tensor sizes")
    put("st-overlap.safetensors", _safetensors({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }, bytes(24)), "overlap")
    put("st-not-json.safetensors", struct.pack("<Q", 12) + b"{not json!!}" + bytes(8),
        "safetensors header is invalid")

    # TorchScript that misbehaves while loading (sandboxed).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(HangAtLoad()), str(files / "ts-hang.pt"))
        torch.jit.save(torch.jit.script(AllocateAtLoad()), str(files / "ts-allocate.pt"))
    corpus["ts-hang.pt"] = (files / "ts-hang.pt", "took longer than")
    corpus["ts-allocate.pt"] = (files / "ts-allocate.pt", "needed more than")

    # Not model files at all.
    (files / "link-dev-zero.pt").symlink_to("/dev/zero")
    corpus["link-dev-zero.pt"] = (files / "link-dev-zero.pt", "not a regular file (a character device)")
    (files / "link-dangling.pt").symlink_to(files / "absent.pt")
    corpus["link-dangling.pt"] = (files / "link-dangling.pt", "which does not exist")
    (files / "link-to-pickle.pt").symlink_to(files / "pickle-os.pkl")
    corpus["link-to-pickle.pt"] = (files / "link-to-pickle.pt", "pickled Python object")
    (files / "folder.pt").mkdir()
    corpus["folder.pt"] = (files / "folder.pt", "is a directory")
    os.mkfifo(files / "fifo.pt")
    corpus["fifo.pt"] = (files / "fifo.pt", "not a regular file (a FIFO)")
    short = Path(tempfile.mkdtemp(prefix="ak-sock-"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(short / "s.pt"))
    sock.close()
    (files / "socket.pt").symlink_to(short / "s.pt")
    corpus["socket.pt"] = (files / "socket.pt", "not a regular file (a socket)")
    put("empty.pt", b"", "the file is empty")
    return corpus


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, build_corpus(root)


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch):
    """A TMPDIR of the test's own, to prove loading leaves nothing behind in it."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder

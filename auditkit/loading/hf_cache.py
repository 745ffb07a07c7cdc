"""Hugging Face models by name, from the local hub cache: ``auditkit scan hf:ORG/NAME --data ...``.

A model the user downloaded before (``hf download ORG/NAME``, ``from_pretrained``) lies in the
hub cache as ``models--ORG--NAME/snapshots/<commit>/``, with ``refs/main`` naming the commit.
auditkit reads that layout directly, strictly offline: nothing here imports huggingface_hub or
touches the network, so a name not in the cache is one line saying where it looked and how to
download it, never a download. The snapshot then goes through exactly the checks of a local
folder (``hf_folder``: safetensors only, no remote code).

The cache is ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else ``HF_HOME/hub``,
else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``, as
huggingface_hub resolves it. ``hf:ORG/NAME@REVISION`` picks another ref (a branch or tag name
in ``refs/``) or a commit the cache holds.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError

PREFIX = "hf:"
#: A hub repo id: an optional owner, a name; letters, digits, '-', '_', '.' (as the hub allows).
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_NAME = re.compile(rf"^(?:{_PART}/)?{_PART}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

BAD_NAME = (
    "{ref}: not a Hugging Face model name; write hf:ORG/NAME as on the hub (letters, digits, "
    "'-', '_', '.'; no '..', no absolute path), e.g. hf:google/vit-base-patch16-224"
)
NOT_CACHED = (
    "{ref}: not in the local Hugging Face cache (looked in {folder}); auditkit never downloads: "
    "run `hf download {name}` (pip install huggingface_hub) where there is network, or set "
    "HF_HUB_CACHE to the cache that holds it"
)
NO_REVISION = (
    "{ref}: the cached model has no revision {revision!r} (looked in {folder}; cached: "
    "{cached}); download it with `hf download {name} --revision {revision}`, or name one of those"
)
LEAVES_CACHE = (
    "{ref}: {file} in the cached snapshot leads out of the cache ({target}); re-download the "
    "model with `hf download {name}`"
)


def is_hub_name(ref: Any) -> bool:
    """Whether ``ref`` names a model in the hub cache (``hf:ORG/NAME``) rather than a path."""
    return isinstance(ref, (str, Path)) and str(ref).startswith(PREFIX)


def hub_cache() -> Path:
    """The hub cache folder, from the environment as huggingface_hub reads it."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = (
        Path(env["XDG_CACHE_HOME"]).expanduser()
        if env.get("XDG_CACHE_HOME")
        else (Path.home() / ".cache")
    )
    return base / "huggingface" / "hub"


def parse(ref: str | Path) -> tuple[str, str]:
    """``(repo id, revision)`` of ``hf:ORG/NAME[@REVISION]``, or exit-2 error when malformed."""
    text = str(ref)[len(PREFIX) :]
    name, _, revision = text.partition("@")
    revision = revision or "main"
    if (
        ".." in name
        or "--" in name
        or not _NAME.match(name)
        or not _REVISION.match(revision)
        or ".." in revision
    ):
        raise AuditkitInputError(BAD_NAME.format(ref=ref))
    return name, revision


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def snapshot(ref: str | Path) -> tuple[Path, str]:
    """The cached snapshot folder ``ref`` names, and its commit; nothing is downloaded."""
    name, revision = parse(ref)
    repo = hub_cache() / ("models--" + name.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        raise AuditkitInputError(NOT_CACHED.format(ref=ref, folder=repo, name=name))
    ref_file = repo / "refs" / revision
    commit = revision
    if ref_file.is_file() and _inside(ref_file, repo):
        commit = ref_file.read_text(encoding="utf-8", errors="replace").strip()[:100]
    folder = snapshots / commit
    if not _REVISION.match(commit) or not folder.is_dir() or not _inside(folder, repo):
        cached = ", ".join(sorted(p.name for p in snapshots.iterdir())[:5]) or "none"
        raise AuditkitInputError(
            NO_REVISION.format(ref=ref, revision=revision, folder=repo, cached=cached, name=name)
        )
    for file in folder.iterdir():  # the snapshot's files are links into the repo's blobs/
        if not _inside(file, repo):
            raise AuditkitInputError(
                LEAVES_CACHE.format(ref=ref, file=file.name, name=name, target=file.resolve())
            )
    return folder, commit


def load_hub_name(ref: str | Path, *, arch: Any, unsafe_pickle: bool, limits: Any) -> Any:
    """A ``LoadedModel`` for ``hf:ORG/NAME``: its cached snapshot, checked as a local folder."""
    from auditkit.loading.hf_folder import load_hf_folder

    folder, commit = snapshot(ref)
    loaded = load_hf_folder(folder, arch=arch, unsafe_pickle=unsafe_pickle, limits=limits)
    extra = dict(loaded.metadata.extra)
    extra["huggingface"] = {
        **extra.get("huggingface", {}),
        "name": parse(ref)[0],
        "revision": commit,
        "snapshot": str(folder),
    }
    metadata = dataclasses.replace(loaded.metadata, extra=extra)
    return dataclasses.replace(loaded, path=str(ref), metadata=metadata)

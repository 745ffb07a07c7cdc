"""The README points only at files in the repository and states its measurements' commands.

The README is the front page; the reference moved to docs/ (tests/test_docs.py checks it).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OUTPUTS = ("auditkit-out/", ".auditkit-checkpoint/")  # written by the commands shown


def test_readme_links_and_paths_exist_in_the_repository():
    assert "../" not in README
    links = re.findall(r"\]\(([^)#]+)\)", README)
    # Backticked paths into the repository's own folders (other backticked paths are archive
    # entries or outputs, e.g. data/aotinductor/ or auditkit-out/).
    tracked = ("auditkit", "benchmarks", "examples", "plugins", "reports", "tests", ".ci")
    top = tuple(f"{name}/" for name in tracked)
    paths = [p for p in re.findall(r"`((?:[\w.-]+/)+[\w.-]*)`", README) if p.startswith(top)]
    for target in [*links, *paths]:
        if target.startswith(("http://", "https://", *OUTPUTS)):
            continue
        assert (ROOT / target).exists(), target


def test_readme_states_how_times_and_sizes_were_measured():
    assert "time .venv/bin/auditkit demo" in README and "du -sh .venv" in README
    assert "passed with warnings" in README and "--fail-on" in README


def test_readme_points_at_the_docs_for_what_moved_there():
    """What the long README held is one link away: the CLI, the API, CI, formats, untrusted
    files, scale, plugins and limitations each have their page."""
    for page in ("cli", "api", "ci", "model-formats", "untrusted-files", "scale", "plugins",
                 "limitations"):
        assert f"](docs/{page}.md)" in README, page
    assert "make test-busy" in README and "Same seed, same numbers" in README

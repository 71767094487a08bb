"""The repository tests itself: its tests read fixtures from inside it only, so a fresh clone (CI, an
outside contributor) runs the whole suite with nothing beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Paths that would reach outside a clone: the shared folder the fixtures came from, absolute work trees.
OUTSIDE = re.compile(r"\.\./shared|shared/fixtures|/work/|SEANCE_(WIRE|SOPS)_FIXTURES")


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in done.stdout.decode().split("\0") if name]


def test_fixtures_are_in_the_repository() -> None:
    assert (REPO / "tests" / "fixtures" / "wire" / "INDEX.md").is_file()
    assert (REPO / "tests" / "fixtures" / "sops" / "README.md").is_file()
    tracked = tracked_files()
    assert "tests/fixtures/wire/INDEX.md" in tracked and "tests/fixtures/sops/README.md" in tracked


def test_nothing_refers_outside_the_repository() -> None:
    offenders = []
    for name in tracked_files():
        if name.startswith("tests/fixtures/") or name == "tests/test_repository.py":
            continue  # recordings are third-party bytes, kept as recorded
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        offenders += [f"{name}: {match.group(0)}" for match in OUTSIDE.finditer(text)]
    assert offenders == []


def test_a_copy_with_nothing_beside_it_collects_and_reads_its_fixtures(tmp_path: Path) -> None:
    """What a clone sees (the tracked files, as they are in the work tree) in a directory of its own:
    every module collects, and the tests that read the wire and SOPS fixtures pass."""
    clone = tmp_path / "clone"
    for name in tracked_files():
        source = REPO / name
        if source.is_file():
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (tmp_path / "shared").exists()
    env = {**os.environ, "PYTHONPATH": str(clone / "src")}  # this copy's code, not the work tree's
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "test_wire or test_sopsfile"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1:] or [done.stderr]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\d{3,} passed", summary[0]) and "error" not in summary[0], summary[0]

"""Atomic writes and the private plaintext directory of `edit`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from seance.secrets.fileio import private_plaintext, write_atomic


def test_write_atomic_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f.yaml"]  # no temporary left behind
    write_atomic(tmp_path / "g.yaml", "x", 0o600)
    assert stat.S_IMODE((tmp_path / "g.yaml").stat().st_mode) == 0o600


def test_private_plaintext_is_private_and_removed_even_on_error() -> None:
    with pytest.raises(RuntimeError), private_plaintext("secret: x\n", ".yaml") as path:
        assert path.read_text() == "secret: x\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        if Path("/dev/shm").is_dir():
            assert path.parent.parent == Path("/dev/shm")
        (path.parent / ".secrets.yaml.swp").write_text("editor swap")
        raise RuntimeError("editor crashed")
    assert not path.exists() and not path.parent.exists()

"""Shared fixtures: the SOPS fixture files, their age identities, and a throw-away GnuPG home."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from secrets_testkit import FIXTURES, fixture_identities

from seance.secrets.keyring import KeyRing


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def maybe_gnupg_home(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Iterator[Path | None]:
    """A private GNUPGHOME with the fixture PGP keys imported (never the user's keyring), or None
    when gpg is not installed."""
    gpg = shutil.which("gpg")
    if gpg is None:
        yield None
        return
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    keys = sorted(str(p) for p in (fixtures_dir / "keys").glob("*.asc"))
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run([gpg, "--batch", "--import", *keys], env=env, capture_output=True, check=True)
    yield home
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)


@pytest.fixture
def gnupg_home(maybe_gnupg_home: Path | None) -> Path:
    if maybe_gnupg_home is None:
        pytest.skip("gpg is not installed (Debian package 'gnupg'); PGP tests need it")
    return maybe_gnupg_home


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no sops variables and an empty HOME (no default keys.txt)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "GNUPGHOME", "XDG_"))}
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture
def keyring(clean_env: dict[str, str], maybe_gnupg_home: Path | None) -> KeyRing:
    """All fixture keys: age identities in memory, PGP keys in the private GnuPG home (if gpg exists)."""
    env = {**clean_env, "GNUPGHOME": str(maybe_gnupg_home)} if maybe_gnupg_home else clean_env
    return KeyRing(env=env, age_identities=fixture_identities(), use_gpg=maybe_gnupg_home is not None)


@pytest.fixture
def age_keyring(clean_env: dict[str, str]) -> KeyRing:
    """Only the fixture age identities; GnuPG not used."""
    return KeyRing(env=clean_env, age_identities=fixture_identities(), use_gpg=False)

"""Paths and keys shared by the secrets tests (a plain module: tests/secrets is not a package)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seance.secrets.age_keys import parse_identities

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "sops"
if not FIXTURES.is_dir():  # the work tree may live elsewhere; SEANCE_SOPS_FIXTURES overrides
    FIXTURES = Path(os.environ.get("SEANCE_SOPS_FIXTURES", "/work/shared/fixtures/sops"))
REPO = Path(__file__).resolve().parents[2]


def fixture_identities() -> list[Any]:
    identities: list[Any] = []
    for key_file in sorted((FIXTURES / "keys").glob("*.txt")):
        identities += parse_identities(key_file.read_text(), key_file.name)
    return identities

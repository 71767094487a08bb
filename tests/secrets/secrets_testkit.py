"""Paths and keys shared by the secrets tests (a plain module: tests/secrets is not a package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seance.secrets.age_keys import parse_identities

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "sops"


def fixture_identities() -> list[Any]:
    identities: list[Any] = []
    for key_file in sorted((FIXTURES / "keys").glob("*.txt")):
        identities += parse_identities(key_file.read_text(), key_file.name)
    return identities

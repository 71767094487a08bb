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


# Each value is what sops 3.11 reads (test_interop_sops.py checks it against the binary).
FLOW_SCALARS_OVER_LINES = [
    ('"0\n\n end"', "0\nend"),  # Hypothesis's counterexample: an empty line is one newline
    ('"0\n\n\n end"', "0\n\nend"),
    ('"0\n   \n end"', "0\nend"),  # a line of spaces is an empty line
    ('"\n\n end"', "\nend"),
    ("'0\n\n end'", "0\nend"),
    ("'0\n\n\n end'", "0\n\nend"),
    ("'\n\n '", "\n"),
    ('"a  \n   b  \n  \n   c"', "a b\nc"),  # spaces around a line break are dropped
    ("'a  \n    b  '", "a b  "),  # ... but not at the ends of the value
    ('"a\t\n\tb"', "a b"),
    ('"a\\\n end"', "aend"),  # an escaped line break joins the lines
    ('"a \\\n   end"', "a end"),  # ... keeping the spaces before the backslash
    ('"a\\\n  \n end"', "a\nend"),  # ... and an empty line after it is still a newline
]

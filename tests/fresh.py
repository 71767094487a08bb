"""What a fresh interpreter has imported after running some code: for the tests that keep a heavy
or optional package out of the serving process (`seance gateway` starts in a new interpreter too)."""

from __future__ import annotations

import subprocess
import sys

REPORT = "\nimport sys as _sys\nprint(' '.join(sorted({_name.split('.')[0] for _name in _sys.modules})))\n"


def packages_after(code: str, timeout: float = 120) -> set[str]:
    """The top-level packages loaded once `code` has run in a new interpreter; fails with its
    stderr if the code does."""
    done = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())

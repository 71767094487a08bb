"""scripts/serve and scripts/bootstrap.sh: the first run installs the runtime only (./scripts/test the
whole toolchain), serves on loopback, says where, and passes extra arguments through.

A fake python3 stands in for the real one so these run in a second; the real install is measured
by the opt-in slow test at the end (SEANCE_SLOW_TESTS=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYTHON = """#!/bin/sh
# python3 for these tests: `--version`, and `-m venv DIR` making a venv whose pip and seance log argv.
case "$1" in
  --version) echo "Python 3.11.0"; exit 0 ;;
  -m) dir="$3" ;;
  *) exit 2 ;;
esac
mkdir -p "$dir/bin"
for tool in pip seance python; do
  printf '#!/bin/sh\\necho "%s $*" >> "$FAKE_LOG"\\n' "$tool" > "$dir/bin/$tool"
  chmod +x "$dir/bin/$tool"
done
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, str]:
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("SEANCE_EXTRAS", "VIRTUAL_ENV", "SOPS_AGE_KEY_FILE")}
    return env | {"PYTHON": str(python), "SEANCE_VENV": str(tmp_path / "venv"), "FAKE_LOG": str(tmp_path / "log")}


def run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    log = Path(env["FAKE_LOG"])
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return done, calls


def test_serve_installs_the_runtime_only_and_serves_on_loopback(fake: dict[str, str]) -> None:
    done, calls = run([str(ROOT / "scripts" / "serve")], fake)
    assert done.returncode == 0, done.stderr
    assert calls == [
        f"pip install --disable-pip-version-check -e {ROOT}",  # no [test]: no pytest, mypy, SDKs, sops
        "seance gateway --host 127.0.0.1 --config examples/config.yaml --secrets secrets/secrets.yaml",
    ]
    assert f"==> installing Seance into {fake['SEANCE_VENV']}" in done.stderr
    assert "==> serving http://127.0.0.1:4000 (master key sk-seance-dev-master-key" in done.stderr
    done, calls = run([str(ROOT / "scripts" / "serve")], fake)  # second run: nothing to install
    assert [call.split()[0] for call in calls] == ["seance"] and "installing" not in done.stderr


def test_serve_passes_extra_arguments_through_and_says_where(fake: dict[str, str]) -> None:
    done, calls = run([str(ROOT / "scripts" / "serve"), "--port", "4001", "--host=0.0.0.0", "--workers", "2"], fake)
    assert done.returncode == 0, done.stderr
    assert calls[-1].endswith("--secrets secrets/secrets.yaml --port 4001 --host=0.0.0.0 --workers 2")
    assert "==> serving http://0.0.0.0:4001 " in done.stderr


def test_the_test_toolchain_is_added_once_and_kept(fake: dict[str, str]) -> None:
    bootstrap = ["bash", "-c", "source scripts/bootstrap.sh"]
    _, calls = run(bootstrap, fake)
    assert calls == [f"pip install --disable-pip-version-check -e {ROOT}"]
    _, calls = run(bootstrap, fake | {"SEANCE_EXTRAS": "test"})
    assert calls == [f"pip install --disable-pip-version-check -e {ROOT}[test]"]
    _, calls = run(bootstrap, fake)  # serve after test: the tools stay, nothing is installed
    assert calls == []
    assert "SEANCE_EXTRAS=test source scripts/bootstrap.sh" in (ROOT / "scripts" / "test").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SEANCE_SLOW_TESTS"), reason="slow: set SEANCE_SLOW_TESTS=1")
def test_the_real_runtime_install_is_small(tmp_path: Path) -> None:
    """A real first run of the runtime install: measured, and without the test toolchain. (The
    whole toolchain, what serve used to install, is about 440 MB.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("SEANCE_EXTRAS", "VIRTUAL_ENV")}
    env |= {"SEANCE_VENV": str(tmp_path / "venv"), "PYTHON": shutil.which("python3") or sys.executable}
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", "source scripts/bootstrap.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    size = sum(f.stat().st_size for f in (tmp_path / "venv").rglob("*") if f.is_file() and not f.is_symlink())
    print(f"runtime install: {size / 1e6:.0f} MB in {seconds:.0f} s")
    assert size < 120e6
    python = str(tmp_path / "venv" / "bin" / "python")
    for tool in ("pytest", "mypy", "openai", "anthropic", "hypothesis", "kubernetes_validate"):
        assert subprocess.run([python, "-c", f"import {tool}"], capture_output=True, check=False).returncode != 0
    assert subprocess.run([str(tmp_path / "venv" / "bin" / "seance"), "--version"], check=False).returncode == 0

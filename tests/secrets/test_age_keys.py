"""age identity discovery as sops does it, and clear errors that never echo key material."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from secrets_testkit import FIXTURES

from seance.secrets.age_keys import default_keys_file, discover_identities, parse_identities, unwrap, wrap
from seance.secrets.errors import SecretsError

NIX = FIXTURES / "keys" / "sops-nix.age-keys.txt"
HELM = FIXTURES / "keys" / "helm-secrets.age-key.txt"


def recipients(identities: list[object]) -> list[str]:
    return [str(i.to_public()) for i in identities]  # type: ignore[attr-defined]


def key_line(path: Path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))


def test_every_source_is_used_in_sops_order(tmp_path: Path) -> None:
    default = tmp_path / "xdg" / "sops" / "age" / "keys.txt"
    default.parent.mkdir(parents=True)
    default.write_text(HELM.read_text())
    cmd = f'{sys.executable} -c "print(open({str(NIX)!r}).read())"'
    env = {
        "SOPS_AGE_KEY": key_line(NIX),
        "SOPS_AGE_KEY_FILE": str(HELM),
        "SOPS_AGE_KEY_CMD": cmd,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
    }
    nix, helm = recipients(parse_identities(NIX.read_text(), "n")), recipients(parse_identities(HELM.read_text(), "h"))
    assert recipients(discover_identities(env)) == nix + helm + nix + helm


def test_default_location_follows_the_user_config_dir(tmp_path: Path) -> None:
    assert default_keys_file({"XDG_CONFIG_HOME": "/x"}) == Path("/x/sops/age/keys.txt")
    if sys.platform.startswith("linux"):
        assert default_keys_file({"HOME": "/h"}) == Path("/h/.config/sops/age/keys.txt")
    assert discover_identities({"HOME": str(tmp_path)}) == []


def test_bad_key_material_is_reported_by_line_without_echoing_it(tmp_path: Path) -> None:
    bad = tmp_path / "keys.txt"
    bad.write_text("# comment\nAGE-SECRET-KEY-1NOTAREALKEYATALLXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n")
    with pytest.raises(
        SecretsError, match=r"SOPS_AGE_KEY_FILE=.*keys\.txt: line 2 is not a valid age identity"
    ) as caught:
        discover_identities({"SOPS_AGE_KEY_FILE": str(bad)})
    assert "NOTAREALKEY" not in str(caught.value)
    with pytest.raises(SecretsError, match="SOPS_AGE_KEY: line 1 is not an age identity"):
        discover_identities({"SOPS_AGE_KEY": "hunter2"})
    with pytest.raises(SecretsError, match="cannot read it"):
        discover_identities({"SOPS_AGE_KEY_FILE": str(tmp_path / "missing.txt")})
    with pytest.raises(SecretsError, match="SOPS_AGE_KEY_CMD exited with status 1"):
        discover_identities({"SOPS_AGE_KEY_CMD": f"{sys.executable} -c 'raise SystemExit(1)'"})


def test_wrap_and_unwrap() -> None:
    identities = parse_identities(NIX.read_text(), "n")
    enc = wrap(b"k" * 32, recipients(identities)[0])
    assert enc.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n") and enc.endswith("-----END AGE ENCRYPTED FILE-----\n")
    assert unwrap(enc, identities) == b"k" * 32
    assert unwrap(enc, parse_identities(HELM.read_text(), "h")) is None
    with pytest.raises(SecretsError, match="not a valid age recipient"):
        wrap(b"k", "age1nope")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed")
def test_ssh_keys_as_recipients_and_identities(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    recipient = (home / ".ssh" / "id_ed25519.pub").read_text().strip()
    enc = wrap(b"k" * 32, recipient)
    assert unwrap(enc, discover_identities({"HOME": str(home)})) == b"k" * 32  # the default ~/.ssh key
    explicit = discover_identities({"HOME": str(tmp_path), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": str(key)})
    assert unwrap(enc, explicit) == b"k" * 32
    key.write_text("not a key")
    assert discover_identities({"HOME": str(home)}) == []  # an unusable default key is skipped

"""PGP through GnuPG (a private GNUPGHOME with the fixture keys), and delegation to `sops` for key
types seance does not implement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from secrets_testkit import REPO

from seance.secrets.errors import SecretsError
from seance.secrets.keyring import KeyRing
from seance.secrets.pgp_keys import unwrap, wrap
from seance.secrets.sopsfile import load_and_decrypt, render

KEY_1 = "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"
KEY_3_PUBLIC_ONLY = "B611A2F9F11D0FF82568805119F9B5DAEA91FF86"


def test_wrap_unwrap_with_gnupg(gnupg_home: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "GNUPGHOME": str(gnupg_home)}
    enc = wrap(b"d" * 32, KEY_1, env)
    assert enc.startswith("-----BEGIN PGP MESSAGE-----")
    assert unwrap(enc, env) == b"d" * 32
    no_secret = wrap(b"d" * 32, KEY_3_PUBLIC_ONLY, env)
    assert unwrap(no_secret, env) is None


def test_unknown_fingerprint_is_a_clear_error(gnupg_home: Path, clean_env: dict[str, str]) -> None:
    with pytest.raises(SecretsError, match="GnuPG cannot encrypt to PGP key 0000"):
        wrap(b"d", "0000000000000000000000000000000000000000", {**clean_env, "GNUPGHOME": str(gnupg_home)})


def test_missing_gpg_is_a_clear_error(clean_env: dict[str, str], tmp_path: Path) -> None:
    env = {**clean_env, "PATH": str(tmp_path)}
    with pytest.raises(SecretsError, match="install gpg \\(Debian package 'gnupg'\\)"):
        wrap(b"d", KEY_1, env)
    assert unwrap("x", env) is None


def kms_only_file(tmp_path: Path) -> Path:
    """The example file with its age key replaced by a KMS key we cannot use."""
    text = (REPO / "secrets" / "secrets.yaml").read_text()
    start = text.index("    age:\n")
    end = text.index("    lastmodified:")
    path = tmp_path / "kms.yaml"
    path.write_text(
        text[:start] + "    kms:\n        - arn: arn:aws:kms:us-east-1:1:key/x\n          enc: AAAA\n" + text[end:]
    )
    return path


def test_foreign_key_type_without_sops_names_the_type(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "PATH": str(tmp_path / "empty")}
    with pytest.raises(SecretsError, match="wrapped with kms keys, which seance does not implement"):
        load_and_decrypt(kms_only_file(tmp_path), KeyRing(env=env, age_identities=[], use_gpg=False))


def test_foreign_key_type_is_delegated_to_sops(tmp_path: Path, clean_env: dict[str, str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sops"
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\nprintf "litellm:\\n    KEY: via-sops\\n"\n')
    fake.chmod(0o755)
    env = {**clean_env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    path = kms_only_file(tmp_path)
    decrypted = load_and_decrypt(path, KeyRing(env=env, age_identities=[], use_gpg=False))
    assert render(decrypted.docs, None, "yaml") == "litellm:\n    KEY: via-sops\n"
    assert (bin_dir / "args").read_text().split() == [
        "decrypt",
        "--input-type",
        "yaml",
        "--output-type",
        "yaml",
        str(path),
    ]

"""Every fixture file decrypts to its expected plaintext with the MAC checked; output formatting
matches what the real sops wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from secrets_testkit import FIXTURES

from seance.secrets.errors import MacMismatchError, NoKeyError, SecretsError
from seance.secrets.gofmt import format_time
from seance.secrets.keyring import KeyRing
from seance.secrets.sopsfile import load_and_decrypt, parse, render
from seance.secrets.tree import Branch, Comment

AGE_FILES = [
    "sops-age.secret.enc.json",
    "sops-age.secret.enc.yaml",
    "helm-secrets.secrets.age.yaml",
    "sops-nix.secrets.yaml",
]
PGP_FILES = sorted(p.name for p in (FIXTURES / "pgp").glob("*") if "plain" not in p.name)
GENERATED = sorted(p.name for p in (FIXTURES / "generated" / "enc").glob("*"))


def as_expected(value: Any) -> Any:
    """Our tree in the notation of expected/*.json."""
    if isinstance(value, Branch):
        return {k: as_expected(v) for k, v in value if not isinstance(k, Comment)}
    if isinstance(value, list):
        return [{"__comment__": v.value} if isinstance(v, Comment) else as_expected(v) for v in value]
    if hasattr(value, "tzinfo"):
        return format_time(value)
    return value


def decrypted_comments(value: Any, path: list[str], out: list[list[str]]) -> list[list[str]]:
    if isinstance(value, Branch):
        for key, item in value:
            if isinstance(key, Comment):
                out.append([":".join(path) + ":", key.value])
            else:
                decrypted_comments(item, [*path, key], out)
    elif isinstance(value, list):
        for item in value:
            decrypted_comments(item, path, out)
    return out


def check_against_expected(path: Path, expected_name: str, keyring: KeyRing) -> None:
    expected = json.loads((FIXTURES / "expected" / expected_name).read_text())
    decrypted = load_and_decrypt(path, keyring, ignore_mac=path.name == "sops.no_mac.yaml")
    assert as_expected(decrypted.docs[0]) == expected["plaintext"]
    assert decrypted.data_key.hex() == expected["data_key_hex"]
    if expected["decrypted_comments"]:
        assert decrypted_comments(decrypted.docs[0], [], []) == expected["decrypted_comments"]


@pytest.mark.parametrize("name", AGE_FILES)
def test_age_fixture_decrypts_to_expected(name: str, age_keyring: KeyRing) -> None:
    check_against_expected(FIXTURES / "age" / name, f"{name}.json", age_keyring)


@pytest.mark.parametrize("name", PGP_FILES)
def test_pgp_fixture_decrypts_to_expected(name: str, keyring: KeyRing, gnupg_home: Path) -> None:
    keyring.age_identities = []
    check_against_expected(FIXTURES / "pgp" / name, f"{name}.json", keyring)


@pytest.mark.parametrize("name", [n for n in GENERATED if (FIXTURES / "expected" / f"generated.{n}.json").exists()])
def test_generated_fixture_decrypts_to_expected(name: str, keyring: KeyRing) -> None:
    check_against_expected(FIXTURES / "generated" / "enc" / name, f"generated.{name}.json", keyring)


@pytest.mark.parametrize("name", GENERATED)
def test_decrypted_output_is_byte_equal_to_sops(name: str, keyring: KeyRing) -> None:
    decrypted = load_and_decrypt(FIXTURES / "generated" / "enc" / name, keyring)
    expected = (FIXTURES / "generated" / "sops-decrypted" / name).read_text()
    assert render(decrypted.docs, None, decrypted.format) == expected


@pytest.mark.parametrize("name", GENERATED)
def test_encrypted_file_re_renders_byte_equal(name: str) -> None:
    path = FIXTURES / "generated" / "enc" / name
    parsed = parse(path.read_text(), "json" if name.endswith(".json") else "yaml", name)
    assert render(parsed.docs, parsed.metadata, parsed.format) == path.read_text()


def test_multidoc_mac_covers_both_documents(age_keyring: KeyRing) -> None:
    decrypted = load_and_decrypt(FIXTURES / "generated" / "enc" / "multidoc.yaml", age_keyring)
    assert [as_expected(doc) for doc in decrypted.docs] == [
        {"first": "doc one"},
        {"second": "doc two", "nested": {"n": 2}},
    ]


def test_no_mac_file_is_refused_without_ignore_mac(keyring: KeyRing, gnupg_home: Path) -> None:
    with pytest.raises(MacMismatchError, match="no MAC"):
        load_and_decrypt(FIXTURES / "pgp" / "sops.no_mac.yaml", keyring)


def test_shamir_two_of_three_needs_two_keys(clean_env: dict[str, str]) -> None:
    from seance.secrets.age_keys import parse_identities

    path = FIXTURES / "generated" / "enc" / "shamir_2of3.yaml"
    keys = {p.name: parse_identities(p.read_text(), p.name) for p in (FIXTURES / "keys").glob("*.txt")}
    expected = (FIXTURES / "generated" / "sops-decrypted" / "shamir_2of3.yaml").read_text()
    for pair in (["sops-nix.age-keys.txt", "sops-age.key.txt"], ["sops-age.key.txt", "helm-secrets.age-key.txt"]):
        ring = KeyRing(env=clean_env, age_identities=[i for name in pair for i in keys[name]], use_gpg=False)
        assert render(load_and_decrypt(path, ring).docs, None, "yaml") == expected
    alone = KeyRing(env=clean_env, age_identities=keys["helm-secrets.age-key.txt"], use_gpg=False)
    with pytest.raises(NoKeyError, match="only 1 of the 2 key groups"):
        load_and_decrypt(path, alone)


def test_wrong_key_is_one_clear_error(clean_env: dict[str, str]) -> None:
    import pyrage

    ring = KeyRing(env=clean_env, age_identities=[pyrage.x25519.Identity.generate()], use_gpg=False)
    with pytest.raises(NoKeyError, match=r"no available key decrypts the data key.*age1yt3tf"):
        load_and_decrypt(FIXTURES / "generated" / "enc" / "all_types.yaml", ring)


def test_plaintext_file_is_not_a_sops_file(tmp_path: Path, age_keyring: KeyRing) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("a: 1\n")
    with pytest.raises(SecretsError, match="not a SOPS-encrypted file"):
        load_and_decrypt(plain, age_keyring)

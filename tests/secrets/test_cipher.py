"""One value <-> ENC[AES256_GCM,…]: every type, the key path as AAD, clear errors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from secrets_testkit import FIXTURES

from seance.secrets.cipher import decrypt_value, encrypt_value
from seance.secrets.errors import SecretsError
from seance.secrets.tree import Comment

KEY = bytes(range(32))


@pytest.mark.parametrize(
    "value", ["text", "", 42, -7, 2.5, 1e21, True, False, b"\x00\xff", datetime(2025, 1, 2, tzinfo=UTC), Comment(" c")]
)
def test_every_type_round_trips(value: object) -> None:
    encrypted = encrypt_value(value, KEY, "a:b:")
    assert decrypt_value(encrypted, KEY, "a:b:", "f") == value


def test_layout_matches_sops() -> None:
    text = encrypt_value("hello", KEY, "k:")
    assert text.startswith("ENC[AES256_GCM,data:") and text.endswith(",type:str]")
    iv = text.split(",iv:")[1].split(",")[0]
    tag = text.split(",tag:")[1].split(",")[0]
    assert len(base64.b64decode(iv)) == 32 and len(base64.b64decode(tag)) == 16
    assert encrypt_value(True, KEY, "k:") != encrypt_value(True, KEY, "k:")  # fresh IV every time


def test_known_value_from_a_sops_file() -> None:
    import json

    key = bytes.fromhex(
        json.loads((FIXTURES / "expected" / "generated.all_types.yaml.json").read_text())["data_key_hex"]
    )
    text = (
        "ENC[AES256_GCM,data:mb1b3Zyf0QjKX7o=,iv:OkcunuCdKab852teXqPxj7uA9m2lDe6L7m0+ATIqiUA=,"
        "tag:tafJY81ARt/mtEimpUt/QQ==,type:str]"
    )
    assert decrypt_value(text, key, "string:", "f") == "hello world"
    with pytest.raises(SecretsError, match="cannot decrypt value"):
        decrypt_value(text, key, "other:", "f")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ENC[AES256_GCM,data:abc", "not in sops' ENC"),
        ("plain", "not in sops' ENC"),
        ("ENC[AES256_GCM,data:@@,iv:AAAA,tag:AAAA,type:str]", "invalid base64"),
        ("ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]", "bad iv or tag length"),
    ],
)
def test_malformed_ciphertext_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        decrypt_value(text, KEY, "k:", "f: k")


def test_unknown_type_and_bad_typed_plaintext() -> None:
    bad_type = encrypt_value("x", KEY, "k:").replace("type:str", "type:wat")
    with pytest.raises(SecretsError, match="unknown value type 'wat'"):
        decrypt_value(bad_type, KEY, "k:", "f")
    not_int = encrypt_value("x", KEY, "k:").replace("type:str", "type:int")
    with pytest.raises(SecretsError, match="not a valid int"):
        decrypt_value(not_int, KEY, "k:", "f")


def test_integers_beyond_64_bits_are_refused() -> None:
    with pytest.raises(SecretsError, match="64 bits"):
        encrypt_value(2**64, KEY, "k:")

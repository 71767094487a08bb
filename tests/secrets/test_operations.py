"""Re-encryption after an edit, rotation, key updates (in memory; the CLI tests cover the files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from secrets_testkit import fixture_identities

from seance.secrets.errors import SecretsError
from seance.secrets.keyring import KeyRing
from seance.secrets.metadata import AgeKey, KeyGroup, Metadata
from seance.secrets.operations import encrypt_plaintext, reencrypt, rotate, update_keys
from seance.secrets.sopsfile import Decrypted, decrypt, parse
from seance.secrets.tree import to_plain

NIX = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
HELM = "age1rh2xsjg8avja92j3jhtttuczgmqkz89lezxt4e3mmp5ukl5j4f9smvteju"
PLAIN = "# note\na: one\nb: [x, x, y]\nc:\n    d: 2\n"


@pytest.fixture
def ring(clean_env: dict[str, str]) -> KeyRing:
    return KeyRing(env=clean_env, age_identities=fixture_identities(), use_gpg=False)


def encrypted(ring: KeyRing, recipients: tuple[str, ...] = (NIX,)) -> tuple[str, Decrypted]:
    text = encrypt_plaintext(
        PLAIN, "yaml", "f", Metadata(key_groups=[KeyGroup(age=[AgeKey(r) for r in recipients])]), ring
    )
    return text, decrypt(parse(text, "yaml", "f"), "f", ring)


def ciphertexts(text: str) -> list[str]:
    return re.findall(r"ENC\[[^\]]*\]", text.split("sops:")[0])


def test_reencrypt_keeps_every_unchanged_ciphertext_even_repeated_values(ring: KeyRing) -> None:
    text, decrypted = encrypted(ring)
    again = reencrypt(PLAIN.replace("d: 2", "d: 3"), parse(text, "yaml", "f"), decrypted, ring, "f")
    before, after = ciphertexts(text), ciphertexts(again)
    assert len(before) == len(after) == 6  # the comment, a, the three list items, d
    assert [b == a for b, a in zip(before, after, strict=True)] == [True] * 5 + [False]
    assert to_plain(decrypt(parse(again, "yaml", "f"), "f", ring).docs[0]) == {
        "a": "one",
        "b": ["x", "x", "y"],
        "c": {"d": 3},
    }


def test_rotate_changes_the_data_key(ring: KeyRing) -> None:
    _, decrypted = encrypted(ring)
    rotated = decrypt(parse(rotate(decrypted, ring), "yaml", "f"), "f", ring)
    assert rotated.data_key != decrypted.data_key
    assert rotated.docs == decrypted.docs


def test_update_keys_adds_without_rotating_and_rotates_on_removal(ring: KeyRing, tmp_path: Path) -> None:
    text, decrypted = encrypted(ring)
    path = tmp_path / "f.yaml"
    path.write_text(text)
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {NIX},{HELM}\n")
    added = update_keys(path, decrypted, ring, cwd=tmp_path)
    assert added.added == [f"age {HELM}"] and not added.removed and added.text is not None
    assert decrypt(parse(added.text, "yaml", "f"), "f", ring).data_key == decrypted.data_key
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {HELM}\n")
    removed = update_keys(path, decrypted, ring, cwd=tmp_path)
    assert removed.removed == [f"age {NIX}"] and removed.text is not None
    assert decrypt(parse(removed.text, "yaml", "f"), "f", ring).data_key != decrypted.data_key


def test_operations_refuse_files_decrypted_by_sops(ring: KeyRing) -> None:
    _, decrypted = encrypted(ring)
    decrypted.data_key = b""
    with pytest.raises(SecretsError, match="only sops can use; rotate it with `sops rotate`"):
        rotate(decrypted, ring)

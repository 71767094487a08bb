"""Encrypt -> decrypt over random documents (hypothesis), and tampering of any value byte, key name,
unencrypted value, MAC or lastmodified is detected."""

from __future__ import annotations

import base64
import contextlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from secrets_strategies import KEYS, SCALARS, branch, comments, documents

from seance.secrets.errors import MacMismatchError, SecretsError
from seance.secrets.keyring import now_rfc3339
from seance.secrets.metadata import AgeKey, KeyGroup, Metadata, Rules
from seance.secrets.sopsfile import parse, render
from seance.secrets.tree import Branch, Comment
from seance.secrets.treecrypt import decrypt_docs, encrypt_docs

KEY = bytes(range(32))
DOCS = documents()
COMMENTS = comments()


def metadata(rules: Rules | None = None) -> Metadata:
    md = Metadata(key_groups=[KeyGroup(age=[AgeKey("age1example")])], rules=rules or Rules())
    md.lastmodified = now_rfc3339()
    return md


# bytes only exist in memory (they are written as text), so only the in-memory round trip has them
TREE_DOCS = st.lists(
    st.tuples(KEYS, st.recursive(st.one_of(SCALARS, st.binary(max_size=8)), lambda c: st.lists(c, max_size=3))),
    min_size=1,
    max_size=5,
).map(branch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=TREE_DOCS)
def test_encrypt_then_decrypt_gives_the_document_back(doc: Branch) -> None:
    md = metadata()
    encrypted = encrypt_docs([doc], md, KEY)
    assert decrypt_docs(encrypted, md, KEY, "f") == [doc]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, comment=COMMENTS)
def test_round_trip_through_yaml_and_json_text(doc: Branch, comment: Comment) -> None:
    md = metadata()
    yaml_doc = Branch([(comment, None), *doc])
    for fmt, original in (("yaml", yaml_doc), ("json", doc)):
        text = render(encrypt_docs([original], md, KEY), md, fmt)
        parsed = parse(text, fmt, "f")
        assert parsed.metadata is not None
        assert decrypt_docs(parsed.docs, parsed.metadata, KEY, "f") == [original]


SAMPLE = """\
# comment
name: value
number: 42
nested:
    list:
        - a
        - 2.5
    flag: true
public_unencrypted: clear text
when: 2025-01-02
"""


def encrypted_sample() -> str:
    md = metadata(Rules(unencrypted_suffix="_unencrypted"))
    return render(encrypt_docs(parse(SAMPLE, "yaml", "s").docs, md, KEY), md, "yaml")


def decrypt_text(text: str) -> None:
    parsed = parse(text, "yaml", "s")
    assert parsed.metadata is not None
    decrypt_docs(parsed.docs, parsed.metadata, KEY, "s")


def test_untampered_sample_decrypts() -> None:
    decrypt_text(encrypted_sample())


def byte_flips(text: str) -> list[str]:
    """Every variant of `text` with one bit flipped in one decoded byte of one ENC data/iv/tag field."""
    variants = []
    for match in re.finditer(r"(data|iv|tag):([A-Za-z0-9+/=]*)", text):
        raw = base64.b64decode(match.group(2))
        for index in range(len(raw)):
            flipped = bytearray(raw)
            flipped[index] ^= 0x01
            new = base64.b64encode(bytes(flipped)).decode()
            variants.append(text[: match.start(2)] + new + text[match.end(2) :])
    return variants


def test_flipping_any_byte_of_any_value_or_the_mac_is_detected() -> None:
    text = encrypted_sample()
    comment, _, rest = text.partition("\n")
    assert comment.startswith("#ENC[")
    variants = [comment + "\n" + variant for variant in byte_flips(rest)]
    assert len(variants) > 400  # every byte of 7 values and the MAC
    for variant in variants:
        with pytest.raises(SecretsError):
            decrypt_text(variant)


def test_a_tampered_comment_stays_ciphertext_as_in_sops() -> None:
    # Comments are outside the MAC in the SOPS format; sops keeps one it cannot decrypt as it is
    # (files from old sops had clear-text comments). It must never decrypt to other text.
    text = encrypted_sample()
    comment, _, rest = text.partition("\n")
    for variant in byte_flips(comment):
        parsed = parse(variant + "\n" + rest, "yaml", "s")
        assert parsed.metadata is not None
        first_key, _ = decrypt_docs(parsed.docs, parsed.metadata, KEY, "s")[0][0]
        assert isinstance(first_key, Comment) and first_key.value == variant[1:]


@pytest.mark.parametrize("key", ["name", "number", "nested", "list", "flag", "when"])
def test_renaming_a_key_is_detected(key: str) -> None:
    text = encrypted_sample().replace(f"{key}:", f"{key}x:", 1)
    with pytest.raises(SecretsError, match="cannot decrypt value"):
        decrypt_text(text)


def test_changing_an_unencrypted_value_breaks_the_mac() -> None:
    text = encrypted_sample().replace("clear text", "clear text!")
    with pytest.raises(MacMismatchError, match="MAC mismatch"):
        decrypt_text(text)


def test_changing_lastmodified_breaks_the_mac() -> None:
    text = re.sub(r'lastmodified: "\d{4}', 'lastmodified: "1999', encrypted_sample())
    with pytest.raises(MacMismatchError, match="MAC cannot be decrypted"):
        decrypt_text(text)


def test_reordering_values_breaks_the_mac() -> None:
    lines = encrypted_sample().splitlines(keepends=True)
    a = next(i for i, line in enumerate(lines) if line.startswith("        - "))
    b = a + 1
    lines[a], lines[b] = lines[b], lines[a]
    with pytest.raises(MacMismatchError):
        decrypt_text("".join(lines))


def test_removing_the_mac_is_refused_unless_ignored() -> None:
    text = re.sub(r"    mac: ENC\[[^\]]*\]\n", "", encrypted_sample())
    with pytest.raises(MacMismatchError, match="no MAC"):
        decrypt_text(text)
    parsed = parse(text, "yaml", "s")
    assert parsed.metadata is not None
    decrypt_docs(parsed.docs, parsed.metadata, KEY, "s", ignore_mac=True)


def test_a_sops_key_inside_data_is_refused() -> None:
    with pytest.raises(SecretsError, match="top-level 'sops' key"):
        encrypt_docs([Branch([("sops", "x")])], metadata(), KEY)


def test_plain_value_where_ciphertext_belongs_is_one_clear_error() -> None:
    text = encrypted_sample()
    text = re.sub(r"^name: ENC\[[^\]]*\]", "name: 7", text, flags=re.M)
    with pytest.raises(SecretsError, match="name should be encrypted but holds a plain value"):
        decrypt_text(text)


def test_truncated_enc_is_one_clear_error_without_the_value() -> None:
    text = encrypted_sample()
    match = re.search(r"^name: (ENC\[[^\]]*\])", text, flags=re.M)
    assert match is not None
    text = text.replace(match.group(1), match.group(1)[:30])
    with pytest.raises(SecretsError, match=r"s: name: value is not in sops' ENC") as caught:
        decrypt_text(text)
    assert "value\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("rules", "clear", "hidden"),
    [
        (Rules(encrypted_suffix="_secret"), ["host: db"], ["pw_secret"]),
        (Rules(unencrypted_regex="^(host|items)$"), ["host: db", "- 1"], ["pw_secret"]),
        (Rules(encrypted_regex="^pw"), ["host: db"], ["pw_secret"]),
    ],
)
def test_encryption_rules_choose_what_is_encrypted(rules: Rules, clear: list[str], hidden: list[str]) -> None:
    md = metadata(rules)
    doc = parse("host: db\npw_secret: hunter2\nitems:\n    - 1\n", "yaml", "s").docs
    text = render(encrypt_docs(doc, md, KEY), md, "yaml")
    for line in clear:
        assert line in text
    for key in hidden:
        assert f"{key}: ENC[" in text
    parsed = parse(text, "yaml", "s")
    assert parsed.metadata is not None
    assert decrypt_docs(parsed.docs, parsed.metadata, KEY, "s") == doc


def test_mac_only_encrypted_ignores_clear_values() -> None:
    md = metadata(Rules(encrypted_regex="^pw$", mac_only_encrypted=True))
    text = render(encrypt_docs(parse("host: db\npw: x\n", "yaml", "s").docs, md, KEY), md, "yaml")
    decrypt_text(text.replace("host: db", "host: changed"))  # not covered by the MAC


ENCRYPTED_SAMPLE = encrypted_sample()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(ENCRYPTED_SAMPLE) - 1), st.sampled_from(list("a0:-#[]{}\"' \n\t,|>&*!%@`\\é"))),
        min_size=1,
        max_size=4,
    )
)
def test_any_corruption_is_a_secrets_error_never_a_crash(edits: list[tuple[int, str]]) -> None:
    text = list(ENCRYPTED_SAMPLE)
    for position, char in edits:
        text[position] = char
    with contextlib.suppress(SecretsError):  # anything else (a crash) fails the test
        parsed = parse("".join(text), "yaml", "s")
        if parsed.metadata is None:
            return  # the 'sops' key itself was hit: "not a SOPS-encrypted file" for a real load
        decrypt_docs(parsed.docs, parsed.metadata, KEY, "s")

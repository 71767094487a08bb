"""One value <-> `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, as sops v3 does it.

AES-256-GCM with a 32-byte random IV (sops uses a non-standard nonce size), the key path as
additional data, and the value's type recorded so it comes back as the same type.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from seance.secrets.errors import SecretsError
from seance.secrets.gofmt import format_float_f, format_time, parse_time
from seance.secrets.tree import Comment

IV_SIZE = 32
TAG_SIZE = 16
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.*),iv:(.+),tag:(.+),type:(.+)\]$", re.DOTALL)


def is_encrypted_text(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("ENC[") and value.endswith("]")


def value_bytes(value: Any) -> tuple[bytes, str]:
    """The bytes sops encrypts and hashes for a value, and its `type:` name."""
    if isinstance(value, Comment):
        return value.value.encode(), "comment"
    if isinstance(value, bool):  # before int: bool is an int in Python; Go writes "True"/"False"
        return (b"True" if value else b"False"), "bool"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise SecretsError("an integer does not fit in 64 bits, which sops requires; quote it to keep it as text")
        return str(value).encode(), "int"
    if isinstance(value, float):
        return format_float_f(value).encode(), "float"
    if isinstance(value, str):
        return value.encode(), "str"
    if isinstance(value, bytes):
        return value, "bytes"
    if isinstance(value, datetime):
        return format_time(value).encode(), "time"
    raise SecretsError(f"cannot encrypt a value of type {type(value).__name__}")


def encrypt_value(value: Any, key: bytes, aad: str) -> Any:
    plain, type_name = value_bytes(value)
    if type_name == "str" and not plain:
        return ""  # sops leaves empty strings as they are
    iv = os.urandom(IV_SIZE)
    sealed = AESGCM(key).encrypt(iv, plain, aad.encode())
    data, tag = sealed[:-TAG_SIZE], sealed[-TAG_SIZE:]
    b64 = base64.b64encode
    return f"ENC[AES256_GCM,data:{b64(data).decode()},iv:{b64(iv).decode()},tag:{b64(tag).decode()},type:{type_name}]"


def decrypt_value(text: str, key: bytes, aad: str, where: str) -> Any:
    """Decrypt one ENC[…] string; `where` names the place for error messages (never the value)."""
    if text == "":
        return ""
    match = _ENC.match(text)
    if match is None:
        raise SecretsError(f"{where}: value is not in sops' ENC[AES256_GCM,…] format (truncated or edited?)")
    data_b64, iv_b64, tag_b64, type_name = match.groups()
    try:
        data = base64.b64decode(data_b64, validate=True)
        iv = base64.b64decode(iv_b64, validate=True)
        tag = base64.b64decode(tag_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError(f"{where}: ENC[…] value has invalid base64 (truncated or edited?)") from None
    if not 8 <= len(iv) <= 128 or len(tag) != TAG_SIZE:  # the nonce sizes AES-GCM accepts
        raise SecretsError(f"{where}: ENC[…] value has a bad iv or tag length (truncated or edited?)")
    try:
        plain = AESGCM(key).decrypt(iv, data + tag, aad.encode())
    except InvalidTag:
        raise SecretsError(
            f"{where}: cannot decrypt value (wrong data key, or the value or its key name was changed)"
        ) from None
    return _typed(plain, type_name, where)


def _typed(plain: bytes, type_name: str, where: str) -> Any:
    if type_name == "bytes":
        return plain
    try:
        text = plain.decode()
    except UnicodeDecodeError:
        raise SecretsError(f"{where}: decrypted {type_name} value is not UTF-8") from None
    try:
        if type_name == "str":
            return text
        if type_name == "comment":
            return Comment(text)
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "bool":
            return _go_bool(text)
        if type_name == "time":
            parsed = parse_time(text)
            if parsed is None:
                raise ValueError(type_name)
            return parsed
    except ValueError:
        raise SecretsError(f"{where}: decrypted value is not a valid {type_name}") from None
    raise SecretsError(f"{where}: unknown value type '{type_name}' in ENC[…]")


def _go_bool(text: str) -> bool:
    # strconv.ParseBool spellings
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)

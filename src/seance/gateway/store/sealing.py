"""Provider credentials of models added at run time, sealed before they reach the database.

A litellm_params value whose name says it is a credential (`api_key`, `aws_secret_access_key`,
`vertex_credentials`, `extra_headers`…) is stored as `seance-sealed:v1:<Fernet token>` (AES-128-CBC
with HMAC-SHA256) under a key derived with HKDF-SHA256 from LITELLM_SALT_KEY, else from the master
key: LiteLLM seals them with the same two secrets, in the same order. An `os.environ/NAME`
reference is no secret: it is stored as written and resolved when the model is served.

Changing the secret the key comes from makes sealed values unreadable (those models are then not
served, with a WARNING): set LITELLM_SALT_KEY before rotating the master key.

`cryptography` is imported when a value is first sealed or opened, not when the gateway starts:
most gateways store no model, and the import alone added ~7.5 MB to every worker's RSS (its Rust
extension and OpenSSL's pages; `seance gateway` with the bench's config, bare pass-through: VmRSS
81.5 -> 74 MB at start).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

PREFIX = "seance-sealed:v1:"
ENV_PREFIX = "os.environ/"
# parts of a litellm_params name that make its value a credential (LiteLLM's /model/info leaves
# these out too); the token counts are not
SECRET_PARTS = ("key", "secret", "password", "credential", "token", "headers")
NOT_SECRET = frozenset({"max_tokens", "max_completion_tokens", "max_input_tokens", "max_output_tokens"})
_INFO = b"seance: litellm_params of models stored in the database"


class SealError(Exception):
    """A credential cannot be sealed or opened: the message says why (never the value)."""


def is_secret(name: str) -> bool:
    return name not in NOT_SECRET and any(part in name for part in SECRET_PARTS)


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENV_PREFIX)


class Sealer:
    def __init__(self, secret: str | None) -> None:
        """`secret`: LITELLM_SALT_KEY, else the master key (None: literal credentials are refused)."""
        self._secret = secret or None
        self._fernet: Fernet | None = None

    def _cipher(self) -> Fernet | None:
        """The Fernet key derived from the secret, made on first use (None: no secret)."""
        if self._fernet is None and self._secret is not None:
            from cryptography.fernet import Fernet
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
            self._fernet = Fernet(base64.urlsafe_b64encode(hkdf.derive(self._secret.encode())))
        return self._fernet

    @classmethod
    def of(cls, env: Mapping[str, str], master_key: str | None) -> Sealer:
        return cls(env.get("LITELLM_SALT_KEY") or master_key)

    def seal(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """litellm_params as stored: every literal credential sealed."""
        out = dict(params)
        for name, value in params.items():
            if not is_secret(name) or value is None or is_reference(value) or _sealed(value):
                continue
            fernet = self._cipher()
            if fernet is None:
                raise SealError(
                    f"litellm_params.{name}: a literal credential is stored encrypted, which needs "
                    "LITELLM_SALT_KEY or a master key; or write it as os.environ/NAME"
                )
            out[name] = PREFIX + fernet.encrypt(orjson.dumps(value)).decode()
        return out

    def open(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stored litellm_params with their credentials readable again."""
        out = dict(params)
        for name, value in params.items():
            if not _sealed(value):
                continue
            fernet = self._cipher()
            if fernet is None:
                raise SealError(f"litellm_params.{name} is sealed and no LITELLM_SALT_KEY or master key is set")
            from cryptography.fernet import InvalidToken

            try:
                out[name] = orjson.loads(fernet.decrypt(value[len(PREFIX) :].encode()))
            except (InvalidToken, orjson.JSONDecodeError):
                raise SealError(
                    f"litellm_params.{name} was sealed under another LITELLM_SALT_KEY or master key"
                ) from None
        return out


def _sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)

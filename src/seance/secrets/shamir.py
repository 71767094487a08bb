"""Shamir secret sharing over GF(2^8), share layout as in HashiCorp Vault (which sops uses).

A share is one y-byte per secret byte followed by its x coordinate. sops splits the data key this
way across key groups; `threshold` shares recover it.
"""

from __future__ import annotations

import secrets as random_source

from seance.secrets.errors import SecretsError


def _mul(a: int, b: int) -> int:
    result = 0
    while b:
        if b & 1:
            result ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B  # the AES field polynomial x^8 + x^4 + x^3 + x + 1
        b >>= 1
    return result


def _inverse(a: int) -> int:
    # a^254 == a^-1 in GF(2^8)
    result, power, exponent = 1, a, 254
    while exponent:
        if exponent & 1:
            result = _mul(result, power)
        power = _mul(power, power)
        exponent >>= 1
    return result


def _evaluate(coefficients: list[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = _mul(result, x) ^ coefficient
    return result


def split(secret: bytes, parts: int, threshold: int) -> list[bytes]:
    """`parts` shares of `secret`, any `threshold` of which recover it; share i has x = i + 1."""
    if not 2 <= threshold <= parts <= 255:
        raise SecretsError(f"shamir: need 2 <= threshold ({threshold}) <= key groups ({parts}) <= 255")
    shares = [bytearray() for _ in range(parts)]
    for byte in secret:
        coefficients = [byte] + [random_source.randbelow(256) for _ in range(threshold - 1)]
        for index, share in enumerate(shares):
            share.append(_evaluate(coefficients, index + 1))
    for index, share in enumerate(shares):
        share.append(index + 1)
    return [bytes(share) for share in shares]


def combine(shares: list[bytes]) -> bytes:
    """The secret from shares (Lagrange interpolation at x = 0)."""
    if len(shares) < 2:
        raise SecretsError("shamir: at least 2 key group shares are needed")
    length = len(shares[0])
    if length < 2 or any(len(share) != length for share in shares):
        raise SecretsError("shamir: key group shares have different lengths")
    xs = [share[-1] for share in shares]
    if len(set(xs)) != len(xs):
        raise SecretsError("shamir: two key group shares have the same x coordinate")
    secret = bytearray()
    for position in range(length - 1):
        value = 0
        for i, share in enumerate(shares):
            basis = 1
            for j, x_j in enumerate(xs):
                if i != j:
                    basis = _mul(basis, _mul(x_j, _inverse(xs[i] ^ x_j)))
            value ^= _mul(share[position], basis)
        secret.append(value)
    return bytes(secret)

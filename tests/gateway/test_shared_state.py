"""Where the shared Redis is found: LiteLLM's places, in LiteLLM's order, credentials never shown."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.conftest import free_port

from seance.gateway.config import ConfigError, load_settings
from seance.gateway.resp import Client
from seance.gateway.shared_state import find_redis

MODEL = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o, api_key: k}\n"


def settings(tmp_path: Path, extra: str = "", **env: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(MODEL + extra)
    return load_settings(path, {"LITELLM_MASTER_KEY": "sk-m", **env}, announce=False)


def test_none_configured_means_in_process(tmp_path: Path) -> None:
    assert find_redis(settings(tmp_path)) is None


def test_redis_url_wins_and_its_password_is_never_shown(tmp_path: Path) -> None:
    found = find_redis(
        settings(tmp_path, "router_settings: {redis_host: other}\n", REDIS_URL="redis://:s3cret@valkey:6380/2")
    )
    assert found is not None
    assert found.url == "redis://:s3cret@valkey:6380/2"
    assert found.where == "redis://valkey:6380/2 (from REDIS_URL)"
    assert "s3cret" not in repr(found)


def test_litellm_environment_variables(tmp_path: Path) -> None:
    found = find_redis(settings(tmp_path, REDIS_HOST="cache", REDIS_PORT="7000", REDIS_PASSWORD="p@ss/w"))
    assert found is not None and found.url == "redis://:p%40ss%2Fw@cache:7000/0"


def test_a_managed_servers_tls_and_acl_user(tmp_path: Path) -> None:
    """Azure's 6380, ElastiCache with encryption in transit: REDIS_SSL (LiteLLM's) makes it rediss://."""
    env = {"REDIS_HOST": "x.redis.cache.windows.net", "REDIS_PORT": "6380", "REDIS_PASSWORD": "pw"}
    found = find_redis(settings(tmp_path, **env, REDIS_SSL="True", REDIS_USERNAME="gateway"))
    assert found is not None and found.url == "rediss://gateway:pw@x.redis.cache.windows.net:6380/0"
    assert found.where == "rediss://x.redis.cache.windows.net:6380/0 (from REDIS_HOST)"
    client = Client(found.url, 1.0)
    assert (client.tls, client.username, client.password) == (True, "gateway", "pw") and "pw" not in found.where
    plain = find_redis(settings(tmp_path, **env, REDIS_SSL="false"))
    assert plain is not None and plain.url.startswith("redis://:pw@")
    params = "litellm_settings: {cache: true, cache_params: {type: redis, host: c, ssl: true, username: u}}\n"
    found = find_redis(settings(tmp_path, params))
    assert found is not None and found.url == "rediss://u@c:6379/0"
    with pytest.raises(ConfigError, match=r"REDIS_SSL: true or false, not 'sometimes'"):
        find_redis(settings(tmp_path, REDIS_HOST="c", REDIS_SSL="sometimes"))


def test_redis_db_beside_redis_host(tmp_path: Path) -> None:
    found = find_redis(settings(tmp_path, REDIS_HOST="c", REDIS_DB="4"))
    assert found is not None and found.url == "redis://c:6379/4"
    with pytest.raises(ConfigError, match=r"REDIS_DB: a Redis database number \(0, 1, …\), not 'x'"):
        find_redis(settings(tmp_path, REDIS_HOST="c", REDIS_DB="x"))


@pytest.mark.parametrize(
    ("extra", "url"),
    [
        ("router_settings: {redis_host: r, redis_port: 6390, redis_password: pw}\n", "redis://:pw@r:6390/0"),
        ("litellm_settings: {cache: true, cache_params: {type: redis, host: c}}\n", "redis://c:6379/0"),
        ("litellm_settings: {cache: true, cache_params: {type: redis, url: 'redis://u:6379/1'}}\n", "redis://u:6379/1"),
        ("router_settings: {redis_host: r, redis_db: 3}\n", "redis://r:6379/3"),
        ("litellm_settings: {cache: true, cache_params: {type: redis, host: c, db: 2}}\n", "redis://c:6379/2"),
    ],
)
def test_config_file_places(tmp_path: Path, extra: str, url: str) -> None:
    found = find_redis(settings(tmp_path, extra))
    assert found is not None and found.url == url


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("router_settings: {redis_host: r, redis_db: -1}\n", "router_settings.redis_db"),
        ("litellm_settings: {cache: true, cache_params: {type: redis, host: c, db: two}}\n",
         "litellm_settings.cache_params: db: a Redis database number (0, 1, …), not 'two'"),
    ],
)  # fmt: skip
def test_a_database_number_that_is_not_one(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        settings(tmp_path, extra)  # refused as the config is read: never while serving


def test_a_local_cache_is_not_a_redis(tmp_path: Path) -> None:
    assert find_redis(settings(tmp_path, "litellm_settings: {cache: true, cache_params: {type: local}}\n")) is None


async def test_the_client_talks_to_the_real_server(tmp_path: Path) -> None:
    found = find_redis(settings(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0"))
    assert found is not None
    client = found.client()
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_the_database_number_is_the_one_written_to(tmp_path: Path) -> None:
    """router_settings.redis_db: the request path's client (limits, cache) selects that database."""
    from redis.asyncio import Redis

    found = find_redis(settings(tmp_path, "router_settings: {redis_host: 127.0.0.1, redis_db: 5}\n"))
    assert found is not None
    key = f"seance-test:{uuid.uuid4().hex}"
    assert await Client(found.url, 2.0).call("SET", key, "in five", "EX", 60) == "OK"
    five, zero = Redis(db=5), Redis(db=0)
    try:
        assert await five.get(key) == b"in five"
        assert await zero.get(key) is None
    finally:
        await five.delete(key)
        await five.aclose()
        await zero.aclose()


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1 with its key: (ca, cert, key) files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        built = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            built = built.add_extension(x509.SubjectAlternativeName([ip]), critical=False)
        return built.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    files[0].write_bytes(
        certificate("test CA", ca_key, "test CA", ca_key, True).public_bytes(serialization.Encoding.PEM)
    )
    server = certificate("127.0.0.1", server_key, "test CA", ca_key, False)
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (scripts/services.sh's)")
async def test_redis_ssl_speaks_tls_to_a_real_tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REDIS_SSL=true against redis-server's TLS port (its certificate from a CA the test trusts): the
    rate limits' client connects, authenticates and counts there."""
    ca, cert, key = _tls_files(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--requirepass", "tls-pw", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # what the default context trusts (read as it is made)
        env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port), "REDIS_PASSWORD": "tls-pw", "REDIS_SSL": "true"}
        found = find_redis(settings(tmp_path, **env))
        assert found is not None and found.url.startswith("rediss://")
        client = Client(found.url, 2.0)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert await client.call("PING") == "PONG"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        assert await client.call("INCR", "seance-test:tls") == 1
        plain = Client(found.url.replace("rediss://", "redis://"), 0.5)  # plain text to the TLS port
        with pytest.raises(OSError):
            await plain.call("PING")
    finally:
        server.terminate()
        server.wait(timeout=10)

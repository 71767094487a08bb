"""Opt-in (slow): build the gateway image with scripts/build-image.sh, run the gateway inside it with
`buildah run --isolation chroot`, and get 200 from /health/readiness.

Run with SEANCE_SLOW_TESTS=1; needs the Debian packages buildah and mmdebstrap, root (or a rootless
buildah setup), a Debian mirror and PyPI. The first run makes the Debian rootfs (~40 s); later runs
reuse it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/seance-gateway:test"
PORT = 18242
BUILDAH_ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.environ.get("SEANCE_SLOW_TESTS") != "1", reason="slow: set SEANCE_SLOW_TESTS=1"),
    pytest.mark.skipif(
        not (shutil.which("buildah") and shutil.which("mmdebstrap")),
        reason="needs the Debian packages buildah and mmdebstrap (apt-get install buildah mmdebstrap)",
    ),
]


def _buildah(*args: str) -> str:
    result = subprocess.run(["buildah", *args], env=BUILDAH_ENV, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-image.sh"), "--tag", TAG], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == TAG
    print(f"image built in {time.monotonic() - started:.1f} s")
    return TAG


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = _buildah("from", image)
    try:
        yield name
    finally:
        _buildah("rm", name)


def _readiness(deadline: float) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{PORT}/health/readiness"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_gateway_serves_readiness_inside_the_image(container: str) -> None:
    command = [
        "buildah", "run", "--isolation", "chroot", "--env", "LITELLM_MASTER_KEY=sk-image-test", container,
        "--", "seance", "gateway", "--host", "127.0.0.1", "--port", str(PORT),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=BUILDAH_ENV, start_new_session=True)
    started = time.monotonic()
    try:
        status, body = _readiness(deadline=started + 60)
        print(f"ready in {time.monotonic() - started:.2f} s")
        assert status == 200
        assert b"healthy" in body
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=35)  # the gateway drains for up to 25 s
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_image_runs_non_root_and_holds_the_gateway_only(container: str) -> None:
    script = (
        "id -u; "
        "ls /opt/seance/lib/python3*/site-packages/seance; "
        "for tool in pip pip3 gcc cc make; do command -v $tool || true; done"
    )
    output = _buildah("run", "--isolation", "chroot", container, "--", "sh", "-c", script).split()
    assert output[0] == "10001"
    assert "gateway" in output and "deploy" not in output
    assert not [line for line in output if line.startswith("/")], "build tools in the final image"
    fields = "{{.OCIv1.Config.User}} {{.OCIv1.Config.ExposedPorts}}"
    config = _buildah("inspect", "--type", "image", "--format", fields, TAG)
    assert config.startswith("10001:10001") and "4000/tcp" in config

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
BUILDAH = ["buildah", "--storage-driver", "vfs"]  # where scripts/build-image.sh puts the image
BUILDAH_ENV = {**os.environ, "SEANCE_STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}

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
    result = subprocess.run([*BUILDAH, *args], env=BUILDAH_ENV, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-image.sh"), "--tag", TAG],
        env=BUILDAH_ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
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


def _stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=35)  # the gateway drains for up to 25 s
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_gateway_serves_readiness_inside_the_image(container: str) -> None:
    command = [
        *BUILDAH, "run", "--isolation", "chroot", "--env", "LITELLM_MASTER_KEY=sk-image-test", container,
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
        _stop(server)


# As the pod runs it: read-only root, a fresh /tmp, uid 10001, the synthesized config.yaml.
READ_ONLY_RUN = """
set -e
mount --bind "$ROOTFS" "$JAIL"
mount -o remount,ro,bind "$JAIL"
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$JAIL/tmp"
mount --rbind /dev "$JAIL/dev"
mount -t proc proc "$JAIL/proc"
cp "$CONFIG" "$JAIL/tmp/config.yaml"
exec chroot --userspec=10001:10001 "$JAIL" /opt/seance/bin/seance gateway \
  --config /tmp/config.yaml --host 127.0.0.1 --port "$PORT"
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_gateway_needs_no_writable_disk_but_tmp(container: str, tmp_path: Path) -> None:
    from tests.deploy.helpers import find, synth_documents

    config = tmp_path / "config.yaml"
    documents = synth_documents("prod", valkey={"mode": "none"})
    config.write_text(find(documents, "ConfigMap")["data"]["config.yaml"])
    jail = tmp_path / "jail"
    jail.mkdir()
    rootfs = _buildah("mount", container)
    env = {
        "PATH": "/opt/seance/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1", "LITELLM_MASTER_KEY": "sk-image-test",
        "ROOTFS": rootfs, "JAIL": str(jail), "CONFIG": str(config), "PORT": str(PORT),
    }  # fmt: skip
    server = subprocess.Popen(["unshare", "--mount", "sh", "-c", READ_ONLY_RUN], env=env, start_new_session=True)
    try:
        status, _ = _readiness(deadline=time.monotonic() + 60)
        assert status == 200
    finally:
        _stop(server)
        _buildah("umount", container)


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

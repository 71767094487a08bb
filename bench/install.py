"""First-run installs: Debian's nginx, its echo module and wrk; LiteLLM in a venv of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from procs import BenchError
from upstream import ECHO_MODULE

LITELLM_VERSION = "1.108.7"
# litellm[proxy] does not bring the Prometheus client its `callbacks: ["prometheus"]` imports at start
# (the proxy exits with ModuleNotFoundError): an operator who turns metrics on installs it, so do we.
PROMETHEUS_CLIENT_VERSION = "0.26.0"
DEBIAN_PACKAGES = ("nginx-light", "libnginx-mod-http-echo", "wrk")


def _run(argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    print(f"  $ {' '.join(argv)}  (log: {log})", flush=True)
    with log.open("ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise BenchError(f"{argv[0]} failed with {done.returncode}; see {log}")


def ensure_debian_packages(work: Path) -> None:
    if shutil.which("nginx") and shutil.which("wrk") and ECHO_MODULE.exists():
        return
    if os.geteuid() != 0:
        raise BenchError(f"run once as root, or: apt-get install -y {' '.join(DEBIAN_PACKAGES)}")
    print("Installing nginx, its echo module and wrk from Debian (first run only)")
    log = work / "apt.log"
    # A policy script that says 101 stops apt from starting a system-wide nginx on port 80.
    policy = work / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", POLICYRCD=str(policy))
    _run(["apt-get", "update"], log, env)
    _run(["apt-get", "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES], log, env)


def _venv_has(venv: Path, package: str, version: str | None) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and (version is None or probe.stdout.strip() == version)


def ensure_venv_package(venv: Path, requirement: str, package: str, version: str | None) -> None:
    if _venv_has(venv, package, version):
        return
    print(f"Installing {requirement} into {venv} (first run only; LiteLLM takes a few minutes)")
    log = venv.parent / f"pip-{package}.log"
    if not (venv / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(venv)], log)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", requirement], log)
    if not _venv_has(venv, package, version):
        raise BenchError(f"{requirement} did not install into {venv}; see {log}")


def ensure_litellm(work: Path) -> None:
    ensure_venv_package(work / "litellm-venv", f"litellm[proxy]=={LITELLM_VERSION}", "litellm", LITELLM_VERSION)


def ensure_litellm_prometheus(work: Path) -> None:
    requirement = f"prometheus_client=={PROMETHEUS_CLIENT_VERSION}"
    ensure_venv_package(work / "litellm-venv", requirement, "prometheus_client", PROMETHEUS_CLIENT_VERSION)


def ensure_py_spy(work: Path) -> Path:
    venv = work / "tools-venv"
    ensure_venv_package(venv, "py-spy", "py-spy", None)
    return venv / "bin" / "py-spy"

"""Serving the gateway: uvicorn (uvloop + httptools) in this process, or N forked workers sharing
one listening socket. Workers fork after the config is parsed and validated, so each inherits the
same settings object and nothing is handed over through the environment."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import time
from types import FrameType

import uvicorn

from seance.gateway.app import Gateway
from seance.gateway.serving import GatewayProtocol, ServingLimits

log = logging.getLogger("seance.gateway")


class _Server(uvicorn.Server):
    """Marks the app as draining as soon as a stop is asked, so /health/readiness answers 503
    while in-flight requests finish. A single process says when it is ready and when it stopped."""

    def __init__(self, config: uvicorn.Config, app: Gateway, ready_line: str | None = None) -> None:
        super().__init__(config)
        self.gateway = app
        self.ready_line = ready_line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.ready_line:
            log.info("%s", self.ready_line)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.ready_line:  # uvicorn then re-raises the stop signal: this is the last word
            log.info("seance gateway stopped")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.gateway.health.draining = True
        super().handle_exit(sig, frame)


def default_max_connections() -> int:
    """Half the descriptors this process may open (raised to the hard limit first, as nginx's
    worker_rlimit_nofile would): the other half is for upstream connections and files. A cap well
    under the limit keeps accept() working, so new clients and probes are never locked out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, min(soft // 2, 65536))


def ready_line(app: Gateway, host: str, port: int, workers: int) -> str:
    deployments = app.deployments
    groups = deployments.model_names()
    models = len(deployments.all())
    source = app.settings.source
    return (
        f"seance gateway ready on http://{host}:{port}: {models} deployment{'s' * (models != 1)} in "
        f"{len(groups)} model group{'s' * (len(groups) != 1)}, {workers} worker{'s' * (workers != 1)}, "
        f"config {source}"
    )


def serve(
    app: Gateway,
    *,
    host: str,
    port: int,
    workers: int = 1,
    graceful_timeout: float = 25.0,
    limits: ServingLimits | None = None,
) -> None:
    limits = limits or ServingLimits(max_connections=default_max_connections())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=GatewayProtocol.bound(limits),
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,  # logging is set up by seance.gateway.logs
        log_level=None,
        timeout_graceful_shutdown=int(graceful_timeout),
        timeout_keep_alive=int(limits.keepalive_timeout),
        server_header=False,
        proxy_headers=False,  # client addresses are not used; skip the per-request middleware
        date_header=True,
    )
    line = ready_line(app, host, port, workers)
    if workers <= 1:
        _Server(config, app, line).run()
        return
    sock = config.bind_socket()
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                _Server(config, app).run(sockets=[sock])
            finally:
                os._exit(0)
        children[pid] = number

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in range(workers):
        spawn(number)
    log.info("%s", line)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        number = children.pop(pid, -1)
        if number >= 0 and not stopping:
            log.warning("worker %d (pid %d) exited with status %d; starting a new one", number, pid, status)
            time.sleep(0.5)
            spawn(number)
    sock.close()
    log.info("seance gateway stopped")

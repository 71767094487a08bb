"""Serving the gateway: uvicorn (uvloop + httptools) in this process, or N forked workers, each with
a listening socket of its own where the kernel balances them (SO_REUSEPORT on Linux), else sharing
one. Workers fork after the config is parsed and validated, so each inherits the same settings
object and nothing is handed over through the environment. A stop (SIGTERM, SIGINT) ends the whole
gateway within --graceful-timeout: see _Server and _serve_workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from seance.gateway.app import Gateway
from seance.gateway.asgi import shutdown
from seance.gateway.serving import GatewayProtocol, ServingLimits

log = logging.getLogger("seance.gateway")

ENDING_SECONDS = 1.0  # at most this much of the grace period is kept to end what is still running


class _Server(uvicorn.Server):
    """Marks the app as draining as soon as a stop is asked, so /health/readiness answers 503
    while in-flight requests finish. A single process says when it is ready and when it stopped.

    Shutdown, within `grace` seconds of the stop signal (the process is gone by then):

        at once        ─► stop listening; close idle connections; busy ones close after their answer
        until the cut  ─► in-flight requests and streams finish
        at the cut     ─► (grace minus up to 1 s) a request not yet answered gets 503; a stream gets
                          its front's error event; one WARNING line per stream, none with a traceback
        then           ─► the app's shutdown (upstream pools), bounded by what is left of the grace
    """

    def __init__(self, config: uvicorn.Config, app: Gateway, grace: float, announce: bool = False) -> None:
        super().__init__(config)
        self.gateway = app
        self.grace = grace
        self.announce = announce  # the single process says when it is ready and when it stopped
        self.stop_asked: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.announce:
            bound = [s.getsockname()[1] for server in self.servers for s in server.sockets or ()]
            port = bound[0] if bound else self.config.port  # the real one when --port 0 asked for any
            log.info("%s", ready_line(self.gateway, self.config.host, port, 1))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.gateway.health.draining = True
        if self.stop_asked is None:
            self.stop_asked = time.monotonic()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        began = self.stop_asked if self.stop_asked is not None else time.monotonic()
        end = began + self.grace
        cut = end - min(ENDING_SECONDS, self.grace / 5)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        while (state.connections or state.tasks) and time.monotonic() < cut and not self.force_exit:
            await asyncio.sleep(0.05)
        if state.tasks and not self.force_exit:
            await self._end_in_flight(end)
        for connection in list(state.connections):
            connection.transport.close()
        if not self.force_exit:
            try:
                await asyncio.wait_for(self.lifespan.shutdown(), max(0.05, end - time.monotonic() - 0.1))
            except TimeoutError:
                log.warning("the app's shutdown did not finish within the grace period")
        if self.announce:  # uvicorn then re-raises the stop signal: this is the last word
            log.info("seance gateway stopped")

    async def _end_in_flight(self, end: float) -> None:
        """The grace period is ending: answer what has no answer yet with 503, end each stream with
        its error event (see asgi.relay), and give them until shortly before `end` to be written."""
        state = self.server_state
        waiting = streaming = 0
        for connection in list(state.connections):
            cycle = connection.cycle if isinstance(connection, GatewayProtocol) else None
            if cycle is None or cycle.response_complete:
                continue
            if cycle.response_started:
                streaming += 1
            else:
                waiting += 1
                connection.refuse_for_shutdown()  # type: ignore[union-attr]  # a GatewayProtocol
        log.warning(
            "the grace period of %g s is ending: %d stream%s end%s with an error event, %d request%s get%s 503",
            self.grace, streaming, "s" * (streaming != 1), "s" * (streaming == 1),
            waiting, "s" * (waiting != 1), "s" * (waiting == 1),
        )  # fmt: skip
        shutdown.ending = True
        await asyncio.sleep(0.01)  # the refused requests' disconnect watchers end their tasks quietly
        for task in list(state.tasks):
            task.cancel()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=max(0.01, (end - time.monotonic()) / 2))


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
    worker_exited: Callable[[int], None] | None = None,
) -> None:
    """`worker_exited`: told the pid of each worker that ends (metrics: its live gauges stop counting)."""
    limits = limits or ServingLimits(max_connections=default_max_connections())
    app.workers = workers  # (what /cache/* tells of an in-process cache: each worker has its own)
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
    if workers <= 1:
        _Server(config, app, graceful_timeout, announce=True).run()
        return
    _serve_workers(config, app, workers, graceful_timeout, worker_exited)


def reuse_port_balances() -> bool:
    """Whether the kernel spreads new connections over several listening sockets bound to one port
    (Linux's SO_REUSEPORT). Elsewhere SO_REUSEPORT exists with other meanings (BSD, macOS: the last
    socket bound takes every connection), so the workers share one socket instead."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _listener(host: str, port: int, *, reuse_port: bool, backlog: int | None) -> socket.socket:
    """A TCP socket bound to host:port; listening unless `backlog` is None."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if backlog is not None:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _serve_workers(
    config: uvicorn.Config,
    app: Gateway,
    workers: int,
    grace: float,
    worker_exited: Callable[[int], None] | None = None,
) -> None:
    """N forked workers. Where the kernel balances SO_REUSEPORT sockets (Linux), each worker gets a
    listening socket of its own, made by the parent just before the fork and closed in the parent
    just after it: new connections are spread over the workers by a hash of their addresses, and a
    worker that dies takes its socket with it (no connection waits in a queue nobody accepts from).
    The parent keeps a bound, not listening, socket on the port: it fails early if the port is
    taken, holds the port while a worker is replaced, and never receives a connection. Elsewhere
    all workers accept from one shared socket.

    SIGTERM or SIGINT: the parent stops listening (closes its socket), passes SIGTERM on to every
    worker (each stops listening at once and drains, see _Server), and kills any worker still there
    when the grace period ends, so that the whole gateway is gone within it."""
    reuse_port = reuse_port_balances()
    host = config.host
    try:
        own = _listener(host, config.port, reuse_port=reuse_port, backlog=None if reuse_port else config.backlog)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    port = own.getsockname()[1]
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        sock = _listener(host, port, reuse_port=True, backlog=config.backlog) if reuse_port else own
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's own handler (reload.py)
            try:
                if reuse_port:
                    own.close()
                _Server(config, app, grace).run(sockets=[sock])
            finally:
                os._exit(0)
        if reuse_port:
            sock.close()  # the worker's own; a copy here would keep it in the kernel's choice
        children[pid] = number

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            own.close()
            signal.setitimer(signal.ITIMER_REAL, max(grace, 0.01))
        for pid in children:  # SIGTERM, not a second SIGINT: that would be uvicorn's "force quit"
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def overdue(signum: int, frame: FrameType | None) -> None:
        for pid, number in children.items():
            log.warning("worker %d (pid %d) still running at the end of the %g s grace: killed", number, pid, grace)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def reload(signum: int, frame: FrameType | None) -> None:
        for pid in children:  # each worker reloads its config (reload.py)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, overdue)
    signal.signal(signal.SIGHUP, reload)
    for number in range(workers):
        spawn(number)
    log.info("%s", ready_line(app, host, port, workers))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        number = children.pop(pid, -1)
        if worker_exited is not None and number >= 0:
            worker_exited(pid)
        if number >= 0 and not stopping:
            log.warning("worker %d (pid %d) exited with status %d; starting a new one", number, pid, status)
            time.sleep(0.5)
            if not stopping:
                spawn(number)
    signal.setitimer(signal.ITIMER_REAL, 0)
    own.close()
    log.info("seance gateway stopped")

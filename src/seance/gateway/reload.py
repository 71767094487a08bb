"""Live config reload, in each worker:

    SIGHUP, or (--watch-config) a change of the config file seen by polling it every second
        ─► read and validate it as the start does ─► Gateway.reload swaps it in
    invalid ─► one ERROR line naming the file, the key and the reason; the running config stays

Requests in flight finish on the config they started with; the upstream pools are kept. The file
is compared by modification time, size and inode, through symlinks: a Kubernetes ConfigMap update
(a new `..data` directory swapped in under the mounted name) shows as a change. A half-written file
is refused and the finished one, a moment later, taken. With --workers N the parent passes SIGHUP
on to every worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seance.gateway.config import ConfigError, Settings

if TYPE_CHECKING:
    from seance.gateway.app import Gateway

POLL = 1.0  # seconds between looks at the file with --watch-config
log = logging.getLogger("seance.gateway")


class Reloader:
    def __init__(
        self, load: Callable[[], Settings], path: Path | None, watch: bool = False, poll: float = POLL
    ) -> None:
        """`load`: reads and validates the config as the start did (ConfigError when it is bad)."""
        self.load = load
        self.path = path
        self.watch = watch and path is not None
        self.poll = poll
        self.app: Gateway | None = None
        self._tasks: set[asyncio.Task[bool | None]] = set()
        self._lock = asyncio.Lock()
        self._seen: tuple[int, int, int] | None = None

    def start(self, app: Gateway) -> None:
        self.app = app
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._asked)
        if self.watch:
            self._seen = self._stat()
            self._spawn(self._watch())

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reload(self, why: str) -> bool:
        """Loads the file and swaps it in; False (and one ERROR line) when it is refused."""
        assert self.app is not None
        if self.path is None:
            log.warning("%s: no config file to reload (the gateway started without one)", why)
            return False
        async with self._lock:  # one at a time: a SIGHUP during a watched change waits for it
            try:
                settings = self.load()
                await self.app.reload(settings)
            except ConfigError as exc:
                log.error("%s: config reload refused, the running config stays: %s", why, exc)
                return False
            except Exception:  # a bug: the worker must go on serving the config it has
                log.exception("%s: config reload failed, the running config stays", why)
                return False
        deployments = self.app.deployments
        log.info(
            "%s: config reloaded from %s: %d deployments in %d model groups",
            why, settings.source, len(deployments.all()), len(deployments.model_names()),
        )  # fmt: skip
        return True

    def _asked(self) -> None:
        self._spawn(self.reload("SIGHUP"))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            seen = self._stat()
            if seen is not None and seen != self._seen:
                self._seen = seen
                await self.reload(f"{self.path} changed")

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path) if self.path is not None else None
        except OSError:
            return None  # gone for a moment (a ConfigMap swap): look again next time
        return None if found is None else (found.st_mtime_ns, found.st_size, found.st_ino)

    def _spawn(self, work: Coroutine[Any, Any, bool | None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

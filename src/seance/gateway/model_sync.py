"""Models added at run time (/model/new, /model/update, /model/delete), served beside config.yaml's
by every worker of every replica:

    a write through the management API (admin/models.py) ─► the row is written ─► that worker
        reads the table again and swaps a new deployment table in at once (Gateway.use_stored)
    every `poll` seconds, each worker: the table's row count and latest update ─► changed (another
        worker or replica wrote) ─► the same re-read and swap

The swap is a reload's (Gateway._swap): requests in flight finish on the table they started with,
and a SIGHUP reload keeps the stored models. The request path never waits on the database: only
the background poll and the management handlers read it. A row that cannot be served (a variable
gone from the environment, a credential sealed under another key) is left out with a WARNING.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from seance.gateway.config import ConfigError, ModelEntry
from seance.gateway.errors import BadRequest
from seance.gateway.routing.deployments import Deployments
from seance.gateway.store import models as rows
from seance.gateway.store import reason_of
from seance.gateway.store.models import Version
from seance.gateway.store.sealing import Sealer, SealError
from seance.litellm_config import read_model_entry

if TYPE_CHECKING:
    from seance.gateway.app import Gateway
    from seance.gateway.store import Store

log = logging.getLogger("seance.gateway")


class ModelSync:
    def __init__(self, app: Gateway, store: Store, poll: float) -> None:
        self.app = app
        self.store = store
        self.poll = poll
        settings = app.settings
        self.sealer = Sealer.of(settings.env, settings.master_key)
        self._seen: Version | None = None
        self._unreadable: dict[str, str] = {}  # model id -> why its row cannot be read
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> list[ModelEntry]:
        """The stored models as entries (at the start, before serving)."""
        self._seen, found = await rows.read_all(self.store.engine)
        return self._entries(found)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- what the management API asks (admin/models.py) --

    def check(self, model_id: str, raw: Mapping[str, Any]) -> ModelEntry:
        """`raw` (a /model/new or merged /model/update body) as the entry it would be served as;
        BadRequest naming the key when it cannot be served, as the config's validation says it."""
        settings = self.app.settings
        try:
            entry = read_model_entry(_stored_shape(model_id, raw), settings.env)
            others = [e for e in self.app.deployments.stored if e.model_info.get("id") != model_id]
            trial = Deployments(dataclasses.replace(settings, announce=False), [*others, entry])
        except ConfigError as exc:
            raise BadRequest(str(exc), param=_param(str(exc))) from None
        if model_id in trial.rejected:
            reason = trial.rejected[model_id]
            raise BadRequest(reason, param=_param(reason))
        return entry

    async def changed(self) -> None:
        """This worker wrote the table: serve what it holds now."""
        await self._refresh(force=True)

    # -- internals --

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the models served stay, look again later
                log.warning("models stored in the database not read (they stay as they were): %s", reason_of(exc))

    async def _refresh(self, force: bool = False) -> None:
        if not force and await rows.version(self.store.engine) == self._seen:
            return
        seen, found = await rows.read_all(self.store.engine)
        entries = self._entries(found)
        try:
            await self.app.use_stored(entries)
        except ConfigError as exc:  # e.g. a stored model_name now an alias of the config
            log.error("models stored in the database not applied, the served ones stay: %s", exc)
            return
        self._seen = seen
        self.report(self.app.deployments)

    def report(self, deployments: Deployments) -> None:
        for model_id, reason in deployments.rejected.items():
            log.warning("model %s stored in the database is not served: %s", model_id, reason)

    def _entries(self, found: list[dict[str, Any]]) -> list[ModelEntry]:
        entries = []
        unreadable: dict[str, str] = {}
        for row in found:
            model_id = row["model_id"]
            try:
                raw = {"model_name": row["model_name"], "litellm_params": self.sealer.open(row["litellm_params"]),
                       "model_info": row["model_info"]}  # fmt: skip
                entries.append(read_model_entry(_stored_shape(model_id, raw), self.app.settings.env))
            except (ConfigError, SealError) as exc:
                unreadable[model_id] = str(exc)
        for model_id, reason in unreadable.items():
            if self._unreadable.get(model_id) != reason:  # once per problem, not per poll
                log.warning("model %s stored in the database is not served: %s", model_id, reason)
        self._unreadable = unreadable
        return entries


def _stored_shape(model_id: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The entry as it is served: model_info carries its id and LiteLLM's `db_model: true`."""
    info = raw.get("model_info") or {}
    return {**raw, "model_info": {**info, "id": model_id, "db_model": True}}


def _param(message: str) -> str | None:
    """The key path a validation message starts with ("litellm_params.temprature: …")."""
    path = message.split(":", 1)[0]
    return path if path.startswith(("model_name", "litellm_params", "model_info")) else None

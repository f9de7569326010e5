"""`motor` mode: Motor's AsyncIOMotorClient, which runs blocking PyMongo on Motor's own global thread pool.

That pool is sized by the MOTOR_MAX_WORKERS environment variable (Motor's default: 5 x CPUs), read once when
Motor is imported. Motor is deprecated (critical fixes only until 2027-05-14); `async` mode is its successor.
"""

from __future__ import annotations

import asyncio

from motor.motor_asyncio import AsyncIOMotorClient

from app.store.base import AwaitableDriverStore, client_options


class MotorStore(AwaitableDriverStore):
    mode = "motor"

    @classmethod
    def open(cls, settings) -> MotorStore:
        return cls(AsyncIOMotorClient(settings.mongodb_uri, **client_options(settings)), settings.db_name)

    async def close(self) -> None:
        # Motor's close() is the blocking PyMongo one (it ends the server sessions, which waits on a dead database).
        await asyncio.to_thread(self._client.close)

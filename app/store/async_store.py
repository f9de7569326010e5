"""`async` mode: PyMongo's native AsyncMongoClient (Motor's official successor).

I/O waits on the event loop itself through asyncio transports; no thread is involved, and a slow query holds
only a pooled connection.
"""

from __future__ import annotations

from pymongo import AsyncMongoClient

from app.store.base import AwaitableDriverStore, client_options


class AsyncStore(AwaitableDriverStore):
    mode = "async"

    @classmethod
    def open(cls, settings) -> AsyncStore:
        return cls(AsyncMongoClient(settings.mongodb_uri, **client_options(settings)), settings.db_name)

    def pool_stats(self) -> None:
        """No thread runs a database call here: what waits is a pooled connection, which has no pool figures."""
        return None

    async def close(self) -> None:
        await self._client.close()

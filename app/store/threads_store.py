"""`threads` mode, the thread-pool fallback: blocking PyMongo on a pool the app owns and sizes.

Every driver call, including the iteration of a cursor, runs inside a worker: a lazy cursor handed back to the
loop would do its network I/O (getMore) on the loop and block it. The pool is the app's own, not the loop's
default executor, so database work never queues behind unrelated blocking calls. It is a `BlockingPool`, so
its size, active and queued counts are visible (`pool_stats()`, in the metrics and on the status page).
"""

from __future__ import annotations

import asyncio

from pymongo import MongoClient, ReturnDocument

from app.blocking import BlockingPool
from app.store.base import Collections, client_options, writable


class ThreadsStore:
    mode = "threads"

    def __init__(self, client: MongoClient, db_name: str, threads: int, queue_limit: int = 256):
        self._client = client
        self._db = client[db_name]
        self._collections = Collections(self._db)
        # Bounded: beyond queue_limit waiting calls, a caller gets a fast 503 (app.admission.QueueFull).
        self.pool = BlockingPool(threads, name="db", queue_limit=queue_limit)

    @classmethod
    def open(cls, settings) -> ThreadsStore:
        client = MongoClient(settings.mongodb_uri, **client_options(settings))
        return cls(client, settings.db_name, settings.db_threads, settings.db_queue_limit)

    def server_known(self) -> bool:
        return self._client.topology_description.has_writable_server()

    def pool_stats(self) -> dict[str, int]:
        """The pool's size and how many calls run and wait in it right now."""
        return self.pool.stats()

    async def ping(self):
        await self.pool.run(self._client.admin.command, "ping")

    async def find_one(self, collection, filter, projection=None):
        return await self.pool.run(self._collections[collection].find_one, filter, projection)

    async def find(self, collection, filter, *, projection=None, sort=None, limit=0):
        def materialise():
            return list(self._collections[collection].find(filter, projection, sort=sort, limit=limit))

        return await self.pool.run(materialise)

    async def insert_one(self, collection, document):
        await self.pool.run(self._collections[collection].insert_one, document)

    async def find_one_and_update(self, collection, filter, update, projection=None):
        return await self.pool.run(
            self._collections[collection].find_one_and_update,
            filter,
            update,
            projection=projection,
            return_document=ReturnDocument.AFTER,
        )

    async def delete_one(self, collection, filter):
        result = await self.pool.run(self._collections[collection].delete_one, filter)
        return result.deleted_count

    async def bulk_update(self, collection, updates, *, durable=True):
        if updates:
            bulk_write = writable(self._collections[collection], durable).bulk_write
            await self.pool.run(bulk_write, list(updates), ordered=False)

    async def count(self, collection, filter):
        return await self.pool.run(self._collections[collection].count_documents, filter)

    async def create_index(self, collection, keys, **options):
        return await self.pool.run(self._collections[collection].create_index, list(keys), **options)

    async def close(self):
        # Let running calls finish before the client they use goes away. close() ends the server sessions, which
        # with a dead database waits for its timeouts: off the loop, like every other call on this client.
        try:
            await self.pool.aclose()
        finally:
            await asyncio.to_thread(self._client.close)

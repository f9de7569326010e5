"""The `Store` interface every database mode implements, and the code the awaitable drivers share.

Handlers and domain modules call only these methods, so the code above the store is identical in every mode.
The methods are a small subset of the collection API that behaves the same on mongod and the embedded server.
Driver errors are PyMongo's own in all three modes (Motor raises them too), so callers catch
`DATABASE_UNAVAILABLE` without knowing the mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pymongo import ReturnDocument, WriteConcern
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WriteConcernError
from pymongo.operations import UpdateOne

Document = dict[str, Any]

# Errors that mean "the database cannot answer right now" (as opposed to "your request is wrong"): handlers turn
# them into 503. ServerSelectionTimeoutError, AutoReconnect and NetworkTimeout are ConnectionFailure subclasses.
# A WriteConcernError (WTimeoutError is one) means the write was not confirmed as asked (FLEET_DB_WRITE_CONCERN):
# it is reported as failed, never as done.
DATABASE_UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, WriteConcernError)


class Store(Protocol):
    mode: str

    async def ping(self) -> None: ...

    async def find_one(
        self, collection: str, filter: Mapping, projection: Mapping | None = None
    ) -> Document | None: ...

    async def find(
        self,
        collection: str,
        filter: Mapping,
        *,
        projection: Mapping | None = None,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[Document]: ...

    async def insert_one(self, collection: str, document: Document) -> None: ...

    async def find_one_and_update(
        self, collection: str, filter: Mapping, update: Mapping, projection: Mapping | None = None
    ) -> Document | None:
        """Apply `update` to one matching document and return it as it is after the update."""

    async def delete_one(self, collection: str, filter: Mapping) -> int: ...

    async def bulk_update(self, collection: str, updates: Sequence[UpdateOne], *, durable: bool = True) -> None:
        """Apply `updates` unordered. `durable=False`: with write concern w: 1, no journal wait, instead of
        the fleet's (FLEET_DB_WRITE_CONCERN, FLEET_DB_JOURNAL), for data that may be lost."""

    async def count(self, collection: str, filter: Mapping) -> int: ...

    async def create_index(self, collection: str, keys: Sequence[tuple[str, int]], **options: Any) -> str:
        """Create an index (no-op if the same one exists) and return its name; `options` as MongoDB's
        createIndexes takes them (unique=True, expireAfterSeconds=...)."""

    def server_known(self) -> bool:
        """Whether the driver knows a server it can write to right now (no I/O: its monitor's last view)."""

    def pool_stats(self) -> dict[str, int] | None:
        """The thread pool that runs this store's driver calls, if it has one (no I/O): its `size` and whichever of
        `active`, `queued`, `queue_limit` and `refused` it can tell; None when no thread runs them (async mode)."""

    async def close(self) -> None: ...


def client_options(settings) -> dict[str, Any]:
    """Options shared by every driver: short timeouts so a dead database is a fast 503, a sized pool, and the
    write concern that makes an acknowledged write a durable one."""
    concern = settings.db_write_concern
    return {
        "w": int(concern) if concern.isdigit() else concern,
        "journal": settings.db_journal,
        "serverSelectionTimeoutMS": settings.db_timeout_ms,
        "connectTimeoutMS": settings.db_timeout_ms,
        "socketTimeoutMS": settings.db_socket_timeout_ms,
        # A write waits for its write concern (majority, journal) at most this long, then fails (503) instead of
        # holding a thread or a connection while a majority is lost. Inside a request the deadline's
        # pymongo.timeout governs instead (app/store/guard.py); this bounds everything else.
        "wTimeoutMS": settings.request_timeout_ms,
        "maxPoolSize": settings.db_pool_size,
        "appname": "tornado-fleet",
    }


# w: 1, no journal wait: confirmed by the primary, not waited for in its journal. (Not the database's implicit
# default, which is w: "majority" since MongoDB 5.0.)
DEFAULT_WRITE_CONCERN = WriteConcern(w=1)


def writable(collection, durable: bool):
    """`collection` with the fleet's write concern (durable) or w: 1, no journal wait."""
    return collection if durable else collection.with_options(write_concern=DEFAULT_WRITE_CONCERN)


class Collections:
    """A database's Collection objects by name, each made once: PyMongo builds a new one on every `db[name]`, which
    showed in the database endpoints' profile (README "Performance")."""

    def __init__(self, db):
        self._db = db
        self._by_name: dict[str, Any] = {}

    def __getitem__(self, name: str):
        collection = self._by_name.get(name)
        if collection is None:
            collection = self._by_name[name] = self._db[name]
        return collection


class AwaitableDriverStore:
    """A `Store` over a driver whose collection methods are awaitable (Motor and AsyncMongoClient).

    The two drivers agree on every call used here, so one implementation serves both modes; the subclasses only
    create and close their client.
    """

    mode = "abstract"

    def __init__(self, client, db_name: str):
        self._client = client
        self._db = client[db_name]
        self._collections = Collections(self._db)

    def server_known(self):
        return self._client.topology_description.has_writable_server()

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def find_one(self, collection, filter, projection=None):
        return await self._collections[collection].find_one(filter, projection)

    async def find(self, collection, filter, *, projection=None, sort=None, limit=0):
        cursor = self._collections[collection].find(filter, projection, sort=sort, limit=limit)
        return await cursor.to_list(None)

    async def insert_one(self, collection, document):
        await self._collections[collection].insert_one(document)

    async def find_one_and_update(self, collection, filter, update, projection=None):
        return await self._collections[collection].find_one_and_update(
            filter, update, projection=projection, return_document=ReturnDocument.AFTER
        )

    async def delete_one(self, collection, filter):
        result = await self._collections[collection].delete_one(filter)
        return result.deleted_count

    async def bulk_update(self, collection, updates, *, durable=True):
        if updates:
            await writable(self._collections[collection], durable).bulk_write(list(updates), ordered=False)

    async def count(self, collection, filter):
        return await self._collections[collection].count_documents(filter)

    async def create_index(self, collection, keys, **options):
        return await self._collections[collection].create_index(list(keys), **options)

"""Open-loop HTTP load on 127.0.0.1 with one record per request: what a latency-over-time plot needs.

`run_load` sends GETs to one path at a fixed rate over a pool of keep-alive connections (asyncio, no threads).
Open loop: request i is due at ``i / rate`` whatever happened before, and its latency is counted from that due
time, so a request that waited for a free connection behind a stuck one is counted as delayed too (no
"coordinated omission"). With ``rate=0`` it is a closed loop instead: every connection sends its next request as
soon as the previous one is answered, and latency is counted from the send.

Bounded by design: a duration, a request cap, a per-request timeout, and 127.0.0.1 (or a local unix socket) only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

from app.addresses import Address

MAX_REQUESTS = 200_000
HEAD_LIMIT = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    path: str
    at: float  # due time (open loop) or send time (closed loop), seconds after the load's t0
    latency: float  # seconds, from `at` to the end of the response
    status: int  # 0: no HTTP response (connection error or client timeout)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time, reopened when closed: to 127.0.0.1:`address`
    (a port), or to an address of app/addresses.py (a unix socket's path, or (host, port))."""

    def __init__(self, address: int | Address, timeout: float):
        self.address = address
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        """The response status, or 0 if no complete response arrived within the timeout."""
        try:
            return await asyncio.wait_for(self._exchange(path), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            return 0

    async def _exchange(self, path: str) -> int:
        if self._writer is None:
            if isinstance(self.address, str):
                opened = asyncio.open_unix_connection(self.address, limit=HEAD_LIMIT)
            else:
                host, port = ("127.0.0.1", self.address) if isinstance(self.address, int) else self.address
                opened = asyncio.open_connection(host, port, limit=HEAD_LIMIT)
            self._reader, self._writer = await opened
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fleet-openloop\r\n\r\n".encode())
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            await self._read_chunked()
        else:
            await self._reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            await self.close()
        return status

    async def _read_chunked(self) -> None:
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self._reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_load(
    address: int | Address,
    path: str,
    *,
    t0: float,
    duration: float,
    rate: float,
    connections: int,
    request_timeout: float = 15.0,
) -> list[Sample]:
    """GET `path` on `address` (127.0.0.1:PORT, or see HttpConnection) from `t0` (time.monotonic()) for `duration`
    seconds; one Sample each."""
    samples: list[Sample] = []
    pool = [HttpConnection(address, request_timeout) for _ in range(connections)]
    try:
        if rate > 0:
            await _open_loop(pool, path, samples, t0=t0, duration=duration, rate=rate)
        else:
            await asyncio.gather(*(_closed_loop(conn, path, t0, duration, samples) for conn in pool))
    finally:
        await asyncio.gather(*(conn.close() for conn in pool))
    return samples


async def _open_loop(pool, path, samples, *, t0, duration, rate) -> None:
    due: asyncio.Queue[float | None] = asyncio.Queue()

    async def worker(conn: HttpConnection) -> None:
        while (at := await due.get()) is not None:
            status = await conn.get(path)
            samples.append(Sample(path, at, time.monotonic() - t0 - at, status))

    workers = [asyncio.create_task(worker(conn)) for conn in pool]
    count = min(int(duration * rate), MAX_REQUESTS)
    for i in range(count):
        at = i / rate
        delay = t0 + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(at)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)


async def _closed_loop(conn: HttpConnection, path, t0, duration, samples) -> None:
    delay = t0 - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    while (at := time.monotonic() - t0) < duration and len(samples) < MAX_REQUESTS:
        status = await conn.get(path)
        samples.append(Sample(path, at, time.monotonic() - t0 - at, status))

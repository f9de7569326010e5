"""Graceful drain: what a process does between SIGTERM and exit.

Tornado's `close_all_connections()` alone would cut requests in flight, so the process counts them itself:
stop accepting, answer every request still arriving on an open connection with ``Connection: close`` (so nginx
stops reusing it), wait for the in-flight count to reach zero within a deadline, then close what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

log = logging.getLogger("fleet.lifecycle")


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.started_at = time.time()
        self._idle = asyncio.Event()
        self._idle.set()

    def request_started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, server, deadline_seconds: float) -> bool:
        """Stop `server` and wait for in-flight requests. Returns False if the deadline cut some off."""
        self.draining = True
        server.stop()
        log.info("draining: %d request(s) in flight, deadline %.1fs", self.in_flight, deadline_seconds)
        try:
            await asyncio.wait_for(self._idle.wait(), deadline_seconds)
            clean = True
        except TimeoutError:
            log.warning("drain deadline reached with %d request(s) still in flight", self.in_flight)
            clean = False
        # What is left now is idle keep-alive connections (or requests past the deadline).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), 1.0)
        return clean

"""A slow request that does not block the loop: `GET /fault/sleep?seconds=S` awaits S seconds, then answers.

It has the shape of a slow database query in `async` mode: the process keeps serving other requests meanwhile,
and the request counts as in flight. tests/whole_fleet/test_switch.py uses it to show that a request in flight when its
process is told to stop still completes (the drain waits for it). Like /fault/block (app/handlers/fault.py),
`make_app` routes it only when FLEET_FAULTS is on; otherwise it is a 404.
"""

from __future__ import annotations

import asyncio
import os

from app.handlers.base import BaseHandler
from app.handlers.fault import parse_seconds


class SleepHandler(BaseHandler):
    async def get(self) -> None:
        seconds = parse_seconds(self.get_query_argument("seconds", None))
        await asyncio.sleep(seconds)
        self.write_json({"slept_seconds": seconds, "port": self.process.port, "pid": os.getpid()})

"""Fault injection for demos and tests: block this process's event loop, as a blocking driver call would.

`GET /fault/block?seconds=S` sleeps S seconds (0 < S <= 60) on the event loop itself, then answers with what it
did. `make_app` routes it only when FLEET_FAULTS is on; otherwise it is a 404 like any unknown path.

It blocks the process that receives it, so pick one by its own socket (in var/run: the fleet's account only):
    curl -s --unix-socket var/run/app-8001.sock 'http://app/fault/block?seconds=3'
Sent through nginx it lands on one process of nginx's choosing, and nginx does not replay it on another
(it is a slow GET, like a "query of death": see deploy/nginx.conf), which makes it a demo of exactly that.
"""

from __future__ import annotations

import math
import os
import time

from app.handlers.base import BaseHandler
from app.validation import ValidationError

MAX_BLOCK_SECONDS = 60.0


class BlockHandler(BaseHandler):
    def get(self) -> None:
        seconds = parse_seconds(self.get_query_argument("seconds", None))
        started = time.monotonic()
        block_event_loop(seconds)
        self.write_json(
            {"blocked_seconds": round(time.monotonic() - started, 3), "port": self.process.port, "pid": os.getpid()}
        )


def parse_seconds(raw: str | None) -> float:
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError("seconds must be a number", field="seconds") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_BLOCK_SECONDS):
        raise ValidationError(f"seconds must be above 0 and at most {MAX_BLOCK_SECONDS:g}", field="seconds")
    return seconds


def block_event_loop(seconds: float) -> None:
    # On the loop thread on purpose: this is the bug being simulated. The watchdog names this function.
    time.sleep(seconds)

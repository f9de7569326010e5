"""Event-loop watchdog: measures the loop's lag all the time and names the code that blocks it.

A heartbeat on the loop re-arms itself every `interval`; its lag is how late it runs. A daemon thread watches
the heartbeat: once it is overdue by more than `threshold`, the loop is stalled, and the thread reads the loop
thread's current frame (``sys._current_frames()``) and logs the stack of the blocking code, once per stall.
The thread is the only one that can: the loop itself runs nothing until the blocking call returns.

Handlers reach it as ``self.settings["watchdog"]``; `current_lag`, `max_lag` (over the last `window` seconds) and
`stalls` are what /readyz and the metrics report. A Watchdog that was never started reports zeros. While a stall
lasts, the thread also calls `on_stall` every STALL_POLL seconds: app.server hangs the stall shedder there
(app/shedding.py).

Limits: a C extension that holds the GIL while it blocks also stops this thread, so its stack is logged only
once the GIL is released (usually: when the loop is already free again); `time.sleep`, socket I/O, blocking
database drivers and pure-Python CPU loops all release it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("fleet.watchdog")

# Frames logged per stall, innermost last: enough to see the handler and the call that blocks below it.
STACK_DEPTH = 12
# How often the thread runs `on_stall` while a stall lasts: requests arriving meanwhile wait at most about this.
STALL_POLL = 0.01


class Watchdog:
    def __init__(
        self,
        threshold: float = 0.3,
        *,
        window: float = 60.0,
        interval: float | None = None,
        on_stall: Callable[[], None] | None = None,
    ):
        self.threshold = threshold
        self.window = window
        # A few heartbeats per threshold, so a stall is seen soon after it crosses the threshold; at most 10/s,
        # which costs the loop nothing measurable.
        self.interval = interval if interval is not None else min(0.1, threshold / 4)
        # Called from the watchdog thread at every check while a stall lasts (app/shedding.py).
        self.on_stall = on_stall
        self.stalls = 0
        self._last_lag = 0.0
        # (whole second, largest lag seen in it), oldest first; bounded by `window`.
        self._maxima: collections.deque[list[float]] = collections.deque()
        self._lock = threading.Lock()
        self._expected: float | None = None  # monotonic time the next heartbeat is due
        self._reported: float | None = None  # the `_expected` of the last stall counted
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Start watching the running loop (call it from inside the loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._expected = time.monotonic() + self.interval
        self._timer = self._loop.call_later(self.interval, self._beat)
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None

    @property
    def stalled(self) -> bool:
        """True while the next heartbeat is overdue by more than the threshold: the loop is blocked right now."""
        expected = self._expected
        return expected is not None and time.monotonic() - expected > self.threshold

    @property
    def current_lag(self) -> float:
        """Seconds: the last heartbeat's lag, or how overdue the next one is if that is more (a stall under way)."""
        expected = self._expected
        if expected is None:
            return 0.0
        return max(self._last_lag, time.monotonic() - expected)

    @property
    def max_lag(self) -> float:
        """Seconds: the largest lag over the last `window` seconds, including a stall under way."""
        horizon = time.monotonic() - self.window
        with self._lock:
            recent = max((lag for second, lag in self._maxima if second >= horizon), default=0.0)
        return max(recent, self.current_lag)

    def _beat(self) -> None:
        now = time.monotonic()
        expected = self._expected
        lag = max(0.0, now - expected)
        self._last_lag = lag
        self._record(now, lag)
        if lag > self.threshold:
            with self._lock:
                seen = self._reported == expected
                if not seen:
                    # Shorter than the watchdog thread's check: counted, but no stack was captured.
                    self._reported = expected
                    self.stalls += 1
            note = "" if seen else " (too short to capture a stack)"
            log.warning("event loop running again after a %.3fs stall%s", lag, note)
        self._expected = now + self.interval
        self._timer = self._loop.call_later(self.interval, self._beat)

    def _record(self, now: float, lag: float) -> None:
        second = float(int(now))
        with self._lock:
            if self._maxima and self._maxima[-1][0] == second:
                self._maxima[-1][1] = max(self._maxima[-1][1], lag)
            else:
                self._maxima.append([second, lag])
            while self._maxima and self._maxima[0][0] < now - self.window - 1:
                self._maxima.popleft()

    def _watch(self) -> None:
        while not self._stop.wait(STALL_POLL if self.on_stall is not None and self.stalled else self.interval):
            expected = self._expected
            overdue = time.monotonic() - expected
            if overdue <= self.threshold:
                continue
            with self._lock:
                new = self._reported != expected
                if new:
                    self._reported = expected
                    self.stalls += 1
            if new:
                self._log_stall(overdue)
            if self.on_stall is not None:
                try:
                    self.on_stall()
                except Exception:
                    log.exception("on_stall hook failed")

    def _log_stall(self, overdue: float) -> None:
        frame = sys._current_frames().get(self._loop_thread_id)
        if frame is None:
            log.warning("event loop blocked for %.3fs; its thread has no Python frame", overdue)
            return
        stack = traceback.extract_stack(frame)[-STACK_DEPTH:]
        del frame  # a frame reference keeps the loop thread's locals alive
        where = stack[-1]
        log.warning(
            "event loop blocked for %.3fs (threshold %.3fs) in %s:%d %s(); stack, most recent call last:\n%s",
            overdue,
            self.threshold,
            where.filename,
            where.lineno,
            where.name,
            "".join(traceback.format_list(stack)).rstrip(),
        )

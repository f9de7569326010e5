"""The one error a benchmark raises when it cannot run as asked (scripts/bench and scripts/blast-radius)."""

from __future__ import annotations


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why. `partial`: the results measured until then, if any."""

    def __init__(self, message: str, partial: dict | None = None):
        super().__init__(message)
        self.partial = partial

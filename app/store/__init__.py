"""Database access: `open_store(settings)` is the one place that branches on the database mode."""

from __future__ import annotations

from app.store.base import DATABASE_UNAVAILABLE, Store
from app.store.guard import GuardedStore


def open_store(settings, metrics=None) -> Store:
    """Create the store for ``settings.db_mode``. Call it inside the running loop, once per process.

    `metrics` (app.metrics.Metrics): each operation is timed and its errors counted there; None, not."""
    # Imported here so a process loads only its own driver.
    if settings.db_mode == "motor":
        from app.store.motor_store import MotorStore as cls
    elif settings.db_mode == "threads":
        from app.store.threads_store import ThreadsStore as cls
    elif settings.db_mode == "async":
        from app.store.async_store import AsyncStore as cls
    else:
        raise ValueError(f"unknown database mode {settings.db_mode!r}")
    # Every operation within its request's deadline, none for a client that left, each timed (app/store/guard.py).
    return GuardedStore(cls.open(settings), selection_timeout=settings.db_timeout_ms / 1000, metrics=metrics)


__all__ = ["DATABASE_UNAVAILABLE", "Store", "open_store"]

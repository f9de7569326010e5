"""Fixtures of the in-process tests of app/ (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.app.inprocess import open_sockets


@pytest.fixture(autouse=True)
def _close_handler_sockets():
    yield
    while open_sockets:
        open_sockets.pop().close()

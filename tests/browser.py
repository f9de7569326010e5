"""Headless Chromium, driven over the DevTools protocol: the real browser the status page test needs.

Debian's `chromium` package (scripts/test installs it); nothing is downloaded. The flags keep an offline,
throw-away browser quiet: no background networking, component updates, sync or first-run work (on a machine
without network those would flood the log with refused connections), and a fresh profile each time. The page
is read through Runtime.evaluate on its own DevTools websocket (Tornado's websocket client), so a test sees
exactly what the page's own script drew.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path

from tornado.websocket import websocket_connect

from fleet import probe
from fleet.sandbox import start_process, stop_process

FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    # Containers and CI runners often have a small /dev/shm; Chromium then crashes on larger pages.
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
]


def chromium_binary() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        raise RuntimeError("chromium is not installed (scripts/test installs Debian's chromium package)")
    return binary


class Chromium:
    """One headless browser with one page. Use `await Chromium.open(url, workdir)`, then `close()`."""

    def __init__(self, process, websocket):
        self.process = process
        self._websocket = websocket
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, workdir: Path, *, width: int = 1280, height: int = 420) -> Chromium:
        profile = workdir / "chromium-profile"
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a reused profile keeps the last browser's port
        args = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", url]
        process = start_process(args, workdir / "chromium.log")
        try:
            if not probe.wait_until(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, 30):
                raise RuntimeError(f"chromium did not start: {(workdir / 'chromium.log').read_text()[-2000:]}")
            port = int(port_file.read_text().split()[0])
            page = probe.wait_until(lambda: _page_target(port), 15)
            if not page:
                raise RuntimeError("chromium opened no page")
            websocket = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024)
        except BaseException:
            stop_process(process)
            raise
        browser = cls(process, websocket)
        # The page's viewport is the whole screenshot (--window-size alone leaves room for browser chrome).
        await browser.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
        )
        return browser

    async def send(self, method: str, **params) -> dict:
        self._next_id += 1
        call_id = self._next_id
        await self._websocket.write_message(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = await self._websocket.read_message()
            if message is None:
                raise RuntimeError(f"chromium closed the DevTools connection during {method}")
            reply = json.loads(message)
            if reply.get("id") == call_id:  # anything else is an event nobody subscribed to
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, predicate, expression: str, within: float, interval: float = 0.1):
        """Evaluate `expression` until `predicate(value)` holds; returns the value (the last one after `within` s)."""
        deadline = time.monotonic() + within
        while True:
            value = await self.evaluate(expression)
            if predicate(value) or time.monotonic() > deadline:
                return value
            await asyncio.sleep(interval)

    async def screenshot(self) -> bytes:
        """The page as it is drawn now, as PNG."""
        shot = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        self._websocket.close()
        # By PID, never by name; Chromium's helper processes exit with it.
        stop_process(self.process)


def _page_target(port: int) -> dict | None:
    code, targets = probe.get_json("127.0.0.1", port, "/json/list")
    if code != 200 or not isinstance(targets, list):
        return None
    return next((t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")), None)

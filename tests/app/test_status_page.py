"""The status page's routes on one process (app/handlers/status_page.py): its files are answered like every
route (request ids, JSON 405s), and a client error is logged once.
"""

from __future__ import annotations

import json

import tornado.httpclient
import tornado.httpserver
import tornado.testing


def test_the_status_page_files_are_answered_like_every_route(start_app):
    app = start_app(FLEET_DB_MODE="motor")
    client = tornado.httpclient.HTTPClient()
    try:
        script = client.fetch(f"{app.url}/status.js")
        assert script.code == 200 and "lagHotMs" in script.body.decode()
        assert len(script.headers["X-Request-ID"]) == 32
        refused = client.fetch(f"{app.url}/status.css", method="POST", body=b"", raise_error=False)
        assert refused.code == 405
        assert refused.headers["Content-Type"] == "application/json"
        assert json.loads(refused.body) == {"error": "method not allowed"}
        assert refused.headers["X-Request-ID"]
        # A client error is logged once (fleet.access), not a second time as a Tornado warning.
        missing = client.fetch(f"{app.url}/nowhere", raise_error=False)
        assert missing.code == 404
        report = json.loads(client.fetch(f"{app.url}/status.json").body)
        assert report["stall_threshold_ms"] == 300
    finally:
        client.close()
    app.stop()
    lines = app.log_text().splitlines()
    assert len([line for line in lines if "/nowhere" in line]) == 1, lines
    assert len([line for line in lines if "/status.css" in line]) == 1, lines

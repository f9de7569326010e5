"""Where a process listens (app/addresses.py): its unix socket, what replaces a stale one and what does not, and
who a request on it comes from."""

from __future__ import annotations

import asyncio
import errno
import os
import stat

import pytest
import tornado.httpserver
import tornado.web

from app import addresses
from app.handlers.base import LOCAL_PEER, BaseHandler
from app.lifecycle import Lifecycle
from app.settings import Settings
from fleet import probe


def test_a_socket_is_owner_only_and_a_stale_one_is_replaced(tmp_path):
    path = str(tmp_path / "app-8001.sock")
    (first,) = addresses.bind(path, backlog=8)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first.close()  # a process that died: its file stays, nothing answers
    assert not addresses.answers(path)
    (second,) = addresses.bind(path, backlog=8)
    try:
        assert addresses.answers(path)
    finally:
        second.close()


def test_a_live_socket_or_another_file_is_never_replaced(tmp_path):
    path = str(tmp_path / "app-8001.sock")
    (live,) = addresses.bind(path, backlog=8)
    try:
        with pytest.raises(OSError) as taken:
            addresses.bind(path, backlog=8)  # a second process with the same number
        assert taken.value.errno == errno.EADDRINUSE
        assert addresses.answers(path)  # the first one still serves
    finally:
        live.close()
    folder = tmp_path / "app-8002.sock"
    folder.mkdir()
    with pytest.raises(OSError) as taken:
        addresses.bind(str(folder), backlog=8)
    assert taken.value.errno == errno.EADDRINUSE and folder.is_dir()


@pytest.mark.parametrize("address", ["/tmp/x y/app-8001.sock", ("127.0.0.1", 8001)])
def test_urls_name_the_address_they_were_made_from(address):
    assert addresses.parse_url(addresses.url(address) + "/readyz?x=1") == (address, "/readyz?x=1")


class ClientIp(BaseHandler):
    def get(self) -> None:
        self.write_json({"client_ip": self.client_ip})


def test_a_request_on_a_unix_socket_comes_from_the_host_unless_nginx_says_otherwise(tmp_path):
    path = str(tmp_path / "app-8001.sock")
    app = tornado.web.Application([(r"/ip", ClientIp)], lifecycle=Lifecycle(), in_flight=set(), app_settings=Settings())

    async def scenario():
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(addresses.bind(path, backlog=8))
        try:
            url = addresses.url(path) + "/ip"
            direct = await asyncio.to_thread(probe.request, "GET", url)
            relayed = await asyncio.to_thread(probe.request, "GET", url, headers={"X-Real-IP": "203.0.113.9"})
        finally:
            server.stop()
            await server.close_all_connections()
        return direct.json(), relayed.json()

    direct, relayed = asyncio.run(scenario())
    # Tornado would say 0.0.0.0: only the fleet's account and root can connect there (app/access.py trusts it).
    assert direct == {"client_ip": LOCAL_PEER}
    assert relayed == {"client_ip": "203.0.113.9"}

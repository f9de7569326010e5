"""Who may see the fleet's internals: the status page, /status.json, its script and stylesheet, /openapi.json.

In development, everyone (as before). In production (FLEET_ENV=production), only a client whose address is in
FLEET_STATUS_ALLOW (the host itself by default) or a request with `Authorization: Bearer FLEET_STATUS_TOKEN`;
anyone else gets a JSON 403. nginx refuses the same requests before they reach a process (deploy/nginx.conf,
rendered by fleet/config.py); this check is the second line, for a process reached some other way.

The client's address is `BaseHandler.client_ip`: nginx's X-Real-IP, which nginx sets from the connection.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress

import tornado.web

from app.handlers.base import BaseHandler

REFUSED = "the fleet's internals are served in production only to FLEET_STATUS_ALLOW addresses or with the bearer token"


@functools.lru_cache(maxsize=16)
def _networks(allow: str) -> tuple:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allow.replace(" ", "").split(",") if item)


def address_allowed(address: str, allow: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(allow))


def bearer_matches(header: str | None, token: str) -> bool:
    if not token or not header:
        return False
    scheme, _, given = header.partition(" ")
    # Constant time: the comparison's duration says nothing about how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def internals_allowed(handler: BaseHandler) -> bool:
    settings = handler.app_settings
    if settings.env != "production":
        return True
    if address_allowed(handler.client_ip, settings.status_allow):
        return True
    return bearer_matches(handler.request.headers.get("Authorization"), settings.status_token)


class InternalHandler(BaseHandler):
    """Base of the handlers that show the fleet's internals: refused (403) to clients `internals_allowed` denies."""

    def prepare(self) -> None:
        super().prepare()
        if not internals_allowed(self):
            raise tornado.web.HTTPError(403, REFUSED)

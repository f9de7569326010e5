"""The nginx config of a Kubernetes pod's nginx container (deploy/kubernetes/deployment.yaml):
`python -m fleet.kubernetes nginx-conf --out PATH`, run by that container at start.

A pod runs one app process (port 8000 on 127.0.0.1: FLEET_ENV=production refuses any other address) and nginx
in front of it on the pod's port 8080, rendered from the same deploy/nginx.conf as on a host (fleet/config.py:
one upstream server), so a pod keeps every per-request protection of a host (slow clients, body limits, JSON
errors, per-client limits, security headers). Two lines are added for the cluster: requests arrive from the
Ingress controller, so the client address is taken from X-Forwarded-For when the request comes from a trusted
proxy address (FLEET_TRUSTED_PROXIES, comma-separated CIDRs); without it every client would share the Ingress
controller's address, and with it one per-client limit.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from pathlib import Path

from fleet.config import NGINX_TEMPLATE, render_nginx
from fleet.exit_status import EXIT_INVALID, fail

POD_PORT = 8080
APP_PORT = 8000
DEFAULT_TRUSTED = "10.0.0.0/8"


def trusted_proxies(value: str) -> list[str]:
    """CIDRs from a comma-separated list (ValueError naming the bad one)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ValueError("FLEET_TRUSTED_PROXIES: at least one address or CIDR")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"FLEET_TRUSTED_PROXIES: {item!r} is not an address or CIDR") from None
    return items


def render_pod_nginx(trusted: list[str], port: int = POD_PORT, app_port: int = APP_PORT) -> str:
    # The app container listens on the pod's loopback (its network namespace is the pod's own): TCP, no metrics
    # servers in nginx (the app serves its metrics port itself).
    conf = render_nginx(NGINX_TEMPLATE.read_text(), port, [app_port], socket_dir=None)
    directives = [*(f"set_real_ip_from {cidr};" for cidr in trusted), "real_ip_header X-Forwarded-For;"]
    directives.append("real_ip_recursive on;")

    def add_realip(match: re.Match) -> str:
        return match[0] + "".join(f"{match[1]}{line}\n" for line in directives)

    conf, found = re.subn(r"^([ \t]*)server_name _;\n", add_realip, conf, count=1, flags=re.M)
    if not found:
        raise ValueError("deploy/nginx.conf has no 'server_name _;' line")
    return conf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.kubernetes",
        description="Write the nginx config of a Kubernetes pod (deploy/kubernetes/): nginx on the pod's port "
        f"{POD_PORT} in front of the pod's one app process on 127.0.0.1:{APP_PORT}. Reads FLEET_TRUSTED_PROXIES "
        f"(default {DEFAULT_TRUSTED}): the Ingress controller's addresses.",
        epilog="Exit status: 0 written, 2 bad arguments or FLEET_TRUSTED_PROXIES.",
    )
    parser.add_argument("what", choices=["nginx-conf"])
    parser.add_argument("--out", type=Path, required=True, help="where to write it")
    args = parser.parse_args(argv)
    try:
        trusted = trusted_proxies(os.environ.get("FLEET_TRUSTED_PROXIES", DEFAULT_TRUSTED))
    except ValueError as exc:
        return fail(exc, EXIT_INVALID)
    args.out.write_text(render_pod_nginx(trusted))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Put this host back into its load balancer's rotation: `python -m fleet.undrain_host` (scripts/undrain-host).

Removes FLEET_VAR_DIR/host-draining.conf, reloads nginx and waits until /hostz answers 200 (at least one app process
ready); with `--wait-traffic`, also until the load balancer sends a request again (nginx's access log grows), which
is how `scripts/fleet-hosts` knows a host is back before it drains the next one.
"""

from __future__ import annotations

import argparse
import sys
import time

from app.settings import SettingsError
from fleet import probe, rolling
from fleet.config import FleetConfig
from fleet.drain_host import HEALTH_PATH, NGINX_TIMEOUT, AccessLog, HostError, connect, set_draining
from fleet.exit_status import fail, invalid_setting

READY_TIMEOUT = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/undrain-host",
        description="Put this host back into its load balancer's rotation (after scripts/drain-host): /hostz answers "
        "200 again once an app process is ready. The fleet is the one in FLEET_VAR_DIR (default: var/).",
        epilog="Exit status: 0 back in rotation: /hostz answers OK (and, with --wait-traffic, requests arrive "
        "again, or the wait ended: it says which), 1 the fleet is not running or no process is ready (the host is "
        "undrained: the load balancer sends it nothing until one is), 2 invalid setting.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=READY_TIMEOUT,
        help=f"seconds to wait for /hostz to answer 200 (default {READY_TIMEOUT:g})",
    )
    parser.add_argument(
        "--wait-traffic",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="then wait up to SECONDS for the load balancer to send a request again (default 0: do not wait)",
    )
    args = parser.parse_args(argv)
    try:
        config = FleetConfig.from_env()
        host = connect(config)
        watch = AccessLog(host.access_log)
        began = time.monotonic()
        set_draining(host, False, timeout=NGINX_TIMEOUT)
        if not probe.wait_until(lambda: host.hostz()[0] == 200, args.timeout, interval=0.2):
            code, body = host.hostz()
            raise HostError(
                f"undrained, but {HEALTH_PATH} answers {code} {body} after {args.timeout:g}s: no app process is "
                f"ready ({rolling.command('switch-db-mode', config, '--status')} shows why)"
            )
        print(f"undrained: {HEALTH_PATH} answers 200 ({time.monotonic() - began:.1f}s)")
        if args.wait_traffic > 0:
            back = probe.wait_until(watch.new_requests, args.wait_traffic, interval=0.2)
            if back:
                print(f"traffic is back: first request {time.monotonic() - began:.1f}s after the undrain")
            else:
                print(f"no request arrived within {args.wait_traffic:g}s (no traffic, or the load balancer is slow)")
    except SettingsError as exc:
        return invalid_setting(exc)
    except (rolling.RollingError, HostError) as exc:
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

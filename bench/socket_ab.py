"""A/B: nginx to a Tornado process over loopback TCP vs over a unix socket in a private folder (README "Security").

    python -m bench socket-ab [--rounds 3] [--seconds 8] [--connections 32] [--out results/security]

One Tornado process (the plain reference's /json, bench/plain_tornado.py, on uvloop) listens on both a TCP
port and a unix socket; one nginx (one worker, upstream keep-alive as deploy/nginx.conf) proxies one public port to
each. wrk loads the two public ports in turn, `--rounds` times each, and the CPU time the app process and nginx's
worker used is read from /proc around every run: requests/s and CPU µs per request, per variant (median of the
rounds, with the range). Nothing here is part of the fleet.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench import cpu, wrk
from fleet import probe
from fleet.config import nginx_binary
from fleet.sandbox import free_port_block

SERVER = textwrap.dedent(
    """
    import asyncio, signal, sys
    import tornado.httpserver, tornado.netutil, uvloop
    from bench.plain_tornado import Database, make_app

    async def main(port, path):
        server = tornado.httpserver.HTTPServer(make_app(Database("async", "mongodb://127.0.0.1:1/", "x")))
        server.add_sockets(tornado.netutil.bind_sockets(port, "127.0.0.1", backlog=1024))
        server.add_socket(tornado.netutil.bind_unix_socket(path, mode=0o600, backlog=1024))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    uvloop.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)

NGINX = """
{user}worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
    upstream tcp {{ server 127.0.0.1:{app_port}; keepalive 64; keepalive_timeout 2s; }}
    upstream unix {{ server unix:{socket}; keepalive 64; keepalive_timeout 2s; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {{ listen 127.0.0.1:{tcp_port}; location / {{ proxy_pass http://tcp; }} }}
    server {{ listen 127.0.0.1:{unix_port}; location / {{ proxy_pass http://unix; }} }}
}}
"""


def measure(url: str, seconds: int, connections: int, pids: dict[str, int]) -> dict[str, float]:
    before = {name: cpu.cpu_seconds(pid) for name, pid in pids.items()}
    result = wrk.run(url, seconds, wrk.WrkOptions(threads=2, connections=connections))
    after = {name: cpu.cpu_seconds(pid) for name, pid in pids.items()}
    per_request = cpu.per_request_us(before, after, result.requests)
    return {"rps": result.rps, **per_request, "errors": result.errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench socket-ab", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="folder for socket-ab.md (default: print only)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="socket-ab-"))  # 0700: nobody else can reach the socket
    app_port, tcp_port, unix_port = (base := free_port_block(3)), base + 1, base + 2
    socket_path = folder / "app.sock"
    (folder / "tmp").mkdir()
    (folder / "nginx.conf").write_text(
        NGINX.format(
            # Workers started by root run as nobody, who cannot enter the private folder: as the fleet's programs
            # do (one account, deploy/supervisord.conf), they run as the account that owns it.
            user=f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else "",
            app_port=app_port,
            socket=socket_path,
            tcp_port=tcp_port,
            unix_port=unix_port,
        )
    )
    app = subprocess.Popen([sys.executable, "-c", SERVER, str(app_port), str(socket_path)], cwd=Path.cwd())
    nginx = subprocess.Popen(
        [nginx_binary(), "-p", f"{folder}/", "-c", str(folder / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"]
    )
    try:
        for port in (tcp_port, unix_port):
            if not probe.wait_until(lambda p=port: probe.get_json(p, "/json")[0] == 200, 20):
                raise RuntimeError(f"nothing answers on {port}")
        pids = {"app": app.pid, "nginx": cpu.child_pids(nginx.pid)[0]}
        runs: dict[str, list[dict]] = {"tcp": [], "unix": []}
        for _ in range(args.rounds):
            for name, port in (("tcp", tcp_port), ("unix", unix_port)):
                runs[name].append(measure(f"http://127.0.0.1:{port}/json", args.seconds, args.connections, pids))
                time.sleep(1)
        text = report(runs, args)
        print(text)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "socket-ab.md").write_text(text)
    finally:
        for process in (nginx, app):
            process.send_signal(signal.SIGQUIT if process is nginx else signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(runs: dict[str, list[dict]], args) -> str:
    lines = [
        f"nginx -> one Tornado process, /json, wrk -t2 -c{args.connections}, {args.rounds} x {args.seconds} s per "
        f"variant, alternated; median (min-max); {os.cpu_count()} CPUs, shared",
        "",
        "| upstream | requests/s | app CPU µs/request | nginx CPU µs/request | errors |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("tcp", "loopback TCP"), ("unix", "unix socket (0700 folder)")):
        cells = []
        for key in ("rps", "app", "nginx"):
            values = [run[key] for run in runs[name]]
            cells.append(f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})")
        lines.append(f"| {label} | {' | '.join(cells)} | {sum(run['errors'] for run in runs[name])} |")
    return "\n".join(lines) + "\n"

"""The references that bound the fleet's figures on this machine: nginx alone, and the database alone.

- nginx alone answers `return 200` from a tiny config rendered into the run's folder, with the same worker count
  and access-log setting as deploy/nginx.conf, so fleet ÷ nginx-alone isolates what the app and the proxy hop
  cost, not a difference of nginx tuning.
- The database alone is driven by a plain PyMongo client, `find_one` by random `_id` from several threads: the
  most a database-bound endpoint can reach, in database operations per second.
(The third reference, one app process without nginx, is measured by the runner on a fleet's own process.)
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from pymongo import MongoClient

from bench.stats import percentile
from fleet import probe
from fleet.config import NGINX_TEMPLATE, nginx_binary
from fleet.sandbox import start_process, stop_process

NGINX_ALONE_TEMPLATE = """\
# nginx alone, answering every request itself: the ceiling of the proxy layer (rendered by scripts/bench).
worker_processes {workers};
pid nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server_tokens off;
    {access_log}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
}}
"""


def render_nginx_alone(port: int, deployed: str) -> str:
    """The reference config, with the deployed config's `worker_processes` and access-log buffering.

    The log line is written in nginx's built-in `combined` format: the deployed format may use variables
    defined elsewhere in that config (a `map`), and one log line costs about the same in either format.
    """
    workers = re.search(r"^\s*worker_processes\s+([^;]+);", deployed, re.M)
    access_log = re.search(r"^\s*access_log\s+([^;]+);", deployed, re.M)
    if access_log is None or access_log[1].split()[0] == "off":
        log_line = "access_log off;"
    else:
        buffering = [word for word in access_log[1].split()[1:] if "=" in word]
        log_line = " ".join(["access_log logs/access.log combined", *buffering]) + ";"
    return NGINX_ALONE_TEMPLATE.format(port=port, workers=workers[1].strip() if workers else "1", access_log=log_line)


class NginxAlone:
    """nginx with the reference config, in `folder`, on `port`; a context manager that stops it by PID."""

    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> NginxAlone:
        for sub in ("logs", "tmp"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(render_nginx_alone(self.port, NGINX_TEMPLATE.read_text()))
        args = [nginx_binary(), "-p", f"{self.folder}/", "-c", str(conf), "-e", "stderr", "-g", "daemon off;"]
        self._process = start_process(args, self.folder / "nginx-stderr.log")
        answering = probe.wait_until(
            lambda: probe.get_json(self.port, "/")[0] == 200 or self._process.poll() is not None, 10
        )
        if not answering or self._process.poll() is not None:
            self.__exit__()
            raise RuntimeError(f"reference nginx did not start: {(self.folder / 'nginx-stderr.log').read_text()}")
        return self

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            # QUIT: nginx's graceful stop; stop_process kills it by PID if that hangs.
            stop_process(self._process, signal.SIGQUIT)
            self._process = None


def database_alone(uri: str, db_name: str, threads: int, duration_s: float, rows: int = 10_000) -> dict:
    """One run of the database reference: find_one by random _id from `threads` threads for `duration_s`.

    Returns a run dict like wrk's (rps = operations/s, latency per operation, errors = failed operations).
    """
    with MongoClient(uri, maxPoolSize=threads, serverSelectionTimeoutMS=2000) as client:
        collection = client[db_name]["world"]
        collection.find_one({"_id": 1})  # connect and authenticate before the clock starts
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors = [0] * threads
        deadline = time.perf_counter() + duration_s

        def worker(index: int) -> None:
            own = latencies[index]
            rng = random.Random(index)
            while (start := time.perf_counter()) < deadline:
                try:
                    if collection.find_one({"_id": rng.randint(1, rows)}) is None:
                        errors[index] += 1
                except Exception:  # every failure counts, whatever the driver raised
                    errors[index] += 1
                own.append(time.perf_counter() - start)

        began = time.perf_counter()
        workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - began
    every = sorted(x for own in latencies for x in own)
    return {
        "rps": len(every) / elapsed,
        "p50_ms": 1000 * percentile(every, 50),
        "p99_ms": 1000 * percentile(every, 99),
        "errors": sum(errors),
        "requests": len(every),
    }

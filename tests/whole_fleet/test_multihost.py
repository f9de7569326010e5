"""Several fleets behind a load balancer (README "Beyond one host"), each host a network namespace on a private
bridge (tests/netns.py): three app hosts, each running its own supervisord fleet from this checkout (nginx and
PROCS app processes), a database host running the embedded server on its own address, and a front host running
HAProxy with active health checks on each host's /hostz. Steady read/write load goes through HAProxy (from inside
the front namespace, to its loopback). What is asserted is what a client sees: failed requests, acknowledged writes
read back, each process's mode and pid, HAProxy's view of each host. Run with -s for the figures."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.process_status import ProcessStatus
from app.settings import EMBEDDED_URI_OPTIONS
from bench.loadgen import Load, LoadResult, all_note_ids
from fleet import probe, rolling
from fleet.config import ROOT, FleetConfig
from fleet.sandbox import script_env, short_tmp_dir, start_process, stop_fleet, stop_process
from fleet.seed import seed
from fleet.supervisor import Supervisor
from tests import netns

pytestmark = [pytest.mark.multihost, pytest.mark.fleet]

APP_HOSTS = ("h1", "h2", "h3")
# App processes per host: 2 on each of 3 hosts, plus 3 nginx, 3 supervisord, the database and HAProxy, fit a
# 2-core machine while the load runs.
PROCS = 2
PORT = 8080  # nginx on every app host, HAProxy on the front host: each namespace has its own ports
DB_PORT = 27017
# HAProxy's health checks: every 500 ms, down after 2 failures, up after 2 successes, 1 s to answer.
CHECK_INTER_MS, CHECK_FALL, CHECK_RISE, CHECK_TIMEOUT_MS = 500, 2, 2, 1000
# The longest HAProxy waits for a host's answer: a request in flight on a host whose link is cut fails (or, a GET,
# is retried on another host) after this.
SERVER_TIMEOUT_S = 5
# Steady load well under what the machine serves and under nginx's per-client API limit (20 requests/s per
# client address, and every request reaches a host from HAProxy's one address): 8 clients x 4/s, 3/4 of them API
# requests, over 2 hosts while one is out.
CLIENTS, RATE = 8, 4.0
SLOW_GET_SECONDS = 2.0

HAPROXY_CFG = """\
global
    maxconn 2000
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    # One request per connection to a host: a request is never sent on a kept-alive connection to a host whose link
    # is already gone; a new connect to it fails and the request goes to another host (redispatch).
    option http-server-close
    timeout connect 1s
    timeout client 30s
    timeout server {server_timeout}s
    timeout check {check_timeout}ms
    retries 3
    option redispatch 1
    # Retried on another host: a refused or timed-out connect (any method: nothing was sent), and, for GET and HEAD
    # only (below), an answer that never came or a 502 from a host's nginx. Never a 503: that is the fleet saying
    # it cannot serve (its database is gone), the same on every host.
    retry-on conn-failure empty-response response-timeout 502

frontend fleet
    bind 127.0.0.1:{port}
    bind {address}:{port}
    default_backend hosts

backend hosts
    balance leastconn
    # A POST may have been applied by the host that did not answer: never send it twice.
    http-request disable-l7-retry unless METH_GET
    option httpchk GET /hostz
    http-check expect status 200
    default-server check inter {inter}ms fall {fall} rise {rise}
{servers}
"""


def haproxy_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on a non-root user's PATH.
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


class Topology:
    """Everything the scenarios need: the network, the hosts' fleets, the database and HAProxy."""

    def __init__(self, folder: Path, network: netns.Network):
        self.folder = folder
        self.network = network
        self.configs: dict[str, FleetConfig] = {}
        self.db: subprocess.Popen | None = None
        self.haproxy: subprocess.Popen | None = None
        self.stats_socket = folder / "haproxy.sock"

    @property
    def db_uri(self) -> str:
        return f"mongodb://{self.network.addresses['db']}:{DB_PORT}/?{EMBEDDED_URI_OPTIONS}"

    def ns(self, role: str) -> str:
        return self.network.namespaces[role]

    # --- the database host ---
    def start_db(self) -> None:
        args = [
            *self.network.exec_prefix("db"),
            str(Path(sys.executable).parent / "secantusd-py"),
            "--host",
            self.network.addresses["db"],
            "--port",
            str(DB_PORT),
            "--storage-path",
            str(self.folder / "db-data"),
        ]
        (self.folder / "db-data").mkdir(exist_ok=True)
        self.db = start_process(args, self.folder / "db.log")

        def seeded() -> bool:
            with contextlib.suppress(Exception):
                netns.in_netns(self.ns("db"), lambda: seed(self.db_uri, "fleet", timeout_ms=500))
                return True
            return False

        assert probe.wait_until(seeded, 30, interval=0.2), (self.folder / "db.log").read_text()[-2000:]

    def stop_db(self) -> None:
        if self.db is not None:
            stop_process(self.db)
            self.db = None

    # --- the app hosts ---
    def start_fleets(self) -> None:
        started = {}
        for role in APP_HOSTS:
            config = FleetConfig(
                var_dir=self.folder / self.ns(role),
                port=PORT,
                procs=PROCS,
                mongodb_uri=self.db_uri,
                # Each layer gives up before the one in front of it: the app answers 503 once a request's deadline
                # or a database operation's socket timeout passes (3 s), before HAProxy's 5 s for a whole request.
                app_env={
                    "FLEET_DB_MODE": "motor",
                    # /fault/sleep: slow GETs that are surely in flight when a host's link is cut.
                    "FLEET_FAULTS": "true",
                    "FLEET_REQUEST_TIMEOUT_MS": "3000",
                    "FLEET_DB_SOCKET_TIMEOUT_MS": "3000",
                },
            )
            config.var_dir.mkdir(mode=0o755)
            self.configs[role] = config
            args = [*self.network.exec_prefix(role), sys.executable, "-m", "fleet.launcher", "up"]
            started[role] = subprocess.Popen(
                args, env=script_env(config), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        for role, process in started.items():
            output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, f"{role}: {output}"

    def processes(self, role: str) -> list[ProcessStatus]:
        config = self.configs[role]
        return netns.in_netns(self.ns(role), lambda: rolling.status(rolling.connect(config)))

    def app_pids(self, role: str) -> set[int]:
        return {p["pid"] for p in Supervisor(self.configs[role].socket).app_processes()}

    def host_script(self, role: str, script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        argv = [*self.network.exec_prefix(role), "env", f"FLEET_VAR_DIR={self.configs[role].var_dir}"]
        return subprocess.run(
            [*argv, str(ROOT / "scripts" / script), *args], capture_output=True, text=True, timeout=timeout
        )

    # --- the front host ---
    def start_haproxy(self) -> None:
        servers = "\n".join(f"    server {role} {self.network.addresses[role]}:{PORT}" for role in APP_HOSTS)
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(
            HAPROXY_CFG.format(
                stats_socket=self.stats_socket,
                server_timeout=SERVER_TIMEOUT_S,
                check_timeout=CHECK_TIMEOUT_MS,
                port=PORT,
                address=self.network.addresses["lb"],
                inter=CHECK_INTER_MS,
                fall=CHECK_FALL,
                rise=CHECK_RISE,
                servers=servers,
            )
        )
        haproxy = haproxy_binary()
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        argv = [*self.network.exec_prefix("lb"), haproxy, "-db", "-f", str(cfg)]
        self.haproxy = start_process(argv, self.folder / "haproxy.log")
        assert probe.wait_until(self.all_up, 30, interval=0.1), self.servers()

    def stop_haproxy(self) -> None:
        if self.haproxy is not None:
            stop_process(self.haproxy)
            self.haproxy = None

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's row for each host (`show stat`): status (UP, DOWN, ...), stot (requests sent to it), ..."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        header, *rows = data.decode().strip().splitlines()
        names = header.lstrip("# ").split(",")
        table = [dict(zip(names, row.split(","), strict=False)) for row in rows]
        return {r["svname"]: r for r in table if r["pxname"] == "hosts" and r["svname"] in APP_HOSTS}

    def status(self, role: str) -> str:
        with contextlib.suppress(OSError):
            return self.servers()[role]["status"]
        return "?"

    def sent_to(self, role: str) -> int:
        return int(self.servers()[role]["stot"])

    def all_up(self) -> bool:
        with contextlib.suppress(OSError):
            return all(row["status"] == "UP" for row in self.servers().values())
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{PORT}"

    @contextlib.contextmanager
    def load(self) -> Iterator[Load]:
        """The load generator for the duration of the block, its clients in the front namespace (their sockets,
        and so their 127.0.0.1, are there: threads inherit the namespace of the thread that starts them)."""
        load = Load(self.url, clients=CLIENTS, rate=RATE)
        netns.in_netns(self.ns("lb"), load.start)
        try:
            yield load
        finally:
            load.stop()

    def note_ids(self) -> set[str]:
        return netns.in_netns(self.ns("lb"), all_note_ids, self.url)


@pytest.fixture(scope="module")
def topology():
    why = netns.unavailable()
    if why:
        pytest.skip(f"multihost tests: {why}")
    if not haproxy_binary():
        pytest.skip("multihost tests: needs HAProxy (scripts/test installs the Debian package)")
    folder = short_tmp_dir("multihost-")
    network = netns.Network()
    topo = Topology(folder, network)
    began = time.monotonic()
    try:
        network.add("lb", 10)
        network.add("db", 20)
        for number, role in enumerate(APP_HOSTS, 11):
            network.add(role, number)
        topo.start_db()
        topo.start_fleets()
        topo.start_haproxy()
        print(
            f"\nmultihost: 3 hosts x {PROCS} processes, database and HAProxy on {network.subnet}.0/24, up in "
            f"{time.monotonic() - began:.1f}s"
        )
        yield topo
    finally:
        topo.stop_haproxy()
        for config in topo.configs.values():
            stop_fleet(config)
        topo.stop_db()
        network.close()
        subprocess.run(["rm", "-rf", str(folder)])


def wait_for_requests(load: Load, more: int = 40) -> None:
    target = load.count() + more
    assert probe.wait_until(lambda: load.count() >= target, 30), "the load generator stopped making requests"


def wait_all_up(topo: Topology) -> None:
    assert probe.wait_until(topo.all_up, 30, interval=0.1), f"not every host is up: {topo.servers()}"


def assert_no_lost_write(topo: Topology, result: LoadResult) -> None:
    missing = set(result.acknowledged) - topo.note_ids()
    assert not missing, f"{len(missing)} acknowledged writes cannot be read back: {sorted(missing)[:5]}"


def time_until(predicate, timeout: float) -> float | None:
    began = time.monotonic()
    return time.monotonic() - began if probe.wait_until(predicate, timeout, interval=0.05) else None


def test_a_drained_host_is_restarted_and_undrained_with_no_failed_request(topology):
    topo = topology
    wait_all_up(topo)
    pids = topo.app_pids("h1")
    with topo.load() as load:
        wait_for_requests(load)
        began = time.monotonic()
        drained = topo.host_script("h1", "drain-host", "--quiet", "2", "--then", "restart")
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert topo.status("h1").startswith("DOWN"), "HAProxy still routes to the drained host"
        sent_while_out = topo.sent_to("h1")
        wait_for_requests(load)
        assert topo.sent_to("h1") == sent_while_out, "HAProxy sent requests to the drained host"
        undrained = topo.host_script("h1", "undrain-host", "--wait-traffic", "15")
        assert undrained.returncode == 0, undrained.stdout + undrained.stderr
        assert "traffic is back" in undrained.stdout, undrained.stdout
        seconds = time.monotonic() - began
        wait_for_requests(load)
    result = load.result
    assert result.failures == [], f"{len(result.failures)} failed: {result.failures[:5]}"
    assert not pids & topo.app_pids("h1"), "h1's processes were not restarted"
    assert_no_lost_write(topo, result)
    print(f"\ndrain, restart, undrain h1 in {seconds:.1f}s: {result.summary()}")
    print(f"  {drained.stdout.strip().splitlines()[1]}\n  {undrained.stdout.strip().splitlines()[-1]}")


def test_a_mode_switch_across_all_hosts_fails_no_request_and_loses_no_write(topology):
    topo = topology
    wait_all_up(topo)
    hosts = ",".join(topo.ns(role) for role in APP_HOSTS)
    template = f"ip netns exec {{host}} env FLEET_VAR_DIR={topo.folder}/{{host}}"
    with topo.load() as load:
        wait_for_requests(load)
        began = time.monotonic()
        switched = subprocess.run(
            [
                str(ROOT / "scripts/fleet-hosts"),
                "switch",
                "threads",
                "--hosts",
                hosts,
                "--command",
                template,
                "--quiet",
                "2",
                "--settle",
                "15",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        seconds = time.monotonic() - began
        assert switched.returncode == 0, switched.stdout[-4000:] + switched.stderr
        wait_for_requests(load)
    result = load.result
    assert result.failures == [], f"{len(result.failures)} failed: {result.failures[:5]}"
    for op in ("write", "read_back", "db", "list"):
        assert result.count(op) > 0, f"no {op} requests were made"
    assert_no_lost_write(topo, result)
    for role in APP_HOSTS:
        assert {(p.mode, p.ready) for p in topo.processes(role)} == {("threads", True)}, role
    assert "switched 3 host(s) to threads" in switched.stdout
    print(f"\nmode switch motor -> threads across 3 hosts in {seconds:.1f}s: {result.summary()}")
    for line in switched.stdout.splitlines():
        if "drained in" in line or "traffic is back" in line:
            print(f"  {line}")


def slow_gets(url: str, count: int, seconds: float) -> tuple[list[threading.Thread], list[tuple[int, float, int]]]:
    """`count` GET /fault/sleep requests at once, each in its own thread; (threads, [(status, latency, pid)]),
    pid: the app process that answered."""
    results: list[tuple[int, float, int]] = []

    def one() -> None:
        began = time.monotonic()
        try:
            response = probe.request("GET", f"{url}/fault/sleep?seconds={seconds:g}", timeout=30)
            status, pid = response.status, response.json().get("pid", 0) if response.status == 200 else 0
        except (OSError, ValueError):
            status, pid = 0, 0
        results.append((status, time.monotonic() - began, pid))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_a_host_whose_link_is_cut_fails_only_requests_in_flight_there_and_rejoins(topology):
    topo = topology
    wait_all_up(topo)
    with topo.load() as load:
        wait_for_requests(load)
        h2_pids = topo.app_pids("h2")
        # Slow GETs spread over the hosts (leastconn), some surely in flight on h2 when its link goes.
        threads, slow = netns.in_netns(topo.ns("lb"), slow_gets, topo.url, 3 * len(APP_HOSTS), SLOW_GET_SECONDS)
        time.sleep(SLOW_GET_SECONDS / 4)
        cut = time.monotonic()
        try:
            topo.network.set_link("h2", up=False)
            cut_done = time.monotonic()
            to_down = time_until(lambda: topo.status("h2").startswith("DOWN"), 30)
            assert to_down is not None, f"HAProxy never marked h2 down: {topo.servers()['h2']}"
            sent_while_down = topo.sent_to("h2")
            wait_for_requests(load)
            # Down for longer than HAProxy's server timeout: the slow GETs sent to h2 are not answered after the
            # link comes back (TCP would deliver a late answer then), but resent to another host.
            for thread in threads:
                thread.join(SERVER_TIMEOUT_S + 4 * SLOW_GET_SECONDS)
        finally:
            topo.network.set_link("h2", up=True)
        back = time.monotonic()
        to_up = time_until(lambda: topo.status("h2") == "UP", 30)
        assert to_up is not None, f"HAProxy never marked h2 up again: {topo.servers()['h2']}"
        assert probe.wait_until(lambda: topo.sent_to("h2") > sent_while_down, 30), "h2 got no request after rejoining"
        wait_for_requests(load)
    result = load.result
    assert [status for status, _, _ in slow] == [200] * len(slow), f"slow GETs failed: {slow}"
    # Those in flight on h2 got no answer from it: after its server timeout HAProxy sent them to another host.
    retried = [(latency, pid) for _, latency, pid in slow if latency >= SERVER_TIMEOUT_S]
    assert retried, f"no slow GET was in flight on h2 at the cut: {sorted(slow)}"
    assert not {pid for _, pid in retried} & h2_pids, "a resent GET was answered by h2"
    failures = result.failures
    assert [f for f in failures if f.op != "write"] == [], "GETs failed: HAProxy should have retried them"
    # A POST already sent to h2 cannot be retried (it may have been applied there): those in flight at the cut fail.
    late = [f for f in failures if f.started > cut_done]
    assert late == [], f"requests sent after the cut failed: {late[:5]}"
    assert len(failures) <= CLIENTS
    assert_no_lost_write(topo, result)
    print(
        f"\nlink of h2 cut for {back - cut:.1f}s: {result.summary()}; HAProxy marked it DOWN {to_down:.2f}s after "
        f"the cut (checks every {CHECK_INTER_MS} ms, fall {CHECK_FALL}, timeout {CHECK_TIMEOUT_MS} ms) and UP "
        f"{to_up:.2f}s after the link came back; failed: {len(failures)} POSTs in flight on h2; "
        f"{len(retried)} of {len(slow)} slow GETs ({SLOW_GET_SECONDS:g} s each) were in flight on h2 and answered "
        f"by another host after {min(retried)[0]:.1f}-{max(retried)[0]:.1f}s"
    )


def test_the_database_host_restarted_gives_fast_503s_and_every_host_recovers_without_a_restart(topology):
    topo = topology
    wait_all_up(topo)
    pids = {role: topo.app_pids(role) for role in APP_HOSTS}
    with topo.load() as load:
        wait_for_requests(load)
        stopped = time.monotonic()
        topo.stop_db()
        # Gone long enough for HAProxy to see every host not ready.
        assert probe.wait_until(lambda: all(topo.status(r).startswith("DOWN") for r in APP_HOSTS), 30), topo.servers()
        wait_for_requests(load)
        topo.start_db()
        restarted = time.monotonic()
        to_recover = time_until(topo.all_up, 60)
        assert to_recover is not None, f"not every host recovered: {topo.servers()}"
        recovered = time.monotonic()
        wait_for_requests(load, 60)
    result = load.result
    failures = result.failures
    assert failures, "no request failed while the database was gone: the test did not stop it"
    assert {f.status for f in failures} == {503}, f"not all failures were 503s: {failures[:5]}"
    # "Fast": a 503 comes back well before a client would give up (the load generator's timeout).
    slowest = max(f.latency for f in failures)
    assert slowest < load.timeout / 2, f"a 503 took {slowest:.1f}s"
    after = [o for o in result.outcomes if o.started > recovered]
    assert after and not [o for o in after if o.failed], "requests failed after every host recovered"
    assert {role: topo.app_pids(role) for role in APP_HOSTS} == pids, "an app process was restarted"
    assert_no_lost_write(topo, result)
    latencies = sorted(f.latency for f in failures)
    print(
        f"\ndatabase host down {restarted - stopped:.1f}s: {result.summary()}; {len(failures)} answered 503 "
        f"(median {1000 * latencies[len(latencies) // 2]:.0f} ms, slowest {1000 * slowest:.0f} ms); every host "
        f"back in HAProxy {to_recover:.1f}s after the database restarted, no app process restarted"
    )


def test_fleet_hosts_refuses_a_template_without_host_and_stops_at_an_unreachable_host(topology):
    topo = topology
    script = str(ROOT / "scripts/fleet-hosts")
    bad = subprocess.run([script, "status", "--hosts", "a", "--command", "ssh"], capture_output=True, text=True)
    assert bad.returncode == 2 and "has no {host}" in bad.stderr
    template = f"ip netns exec {{host}} env FLEET_VAR_DIR={topo.folder}/{{host}}"
    hosts = f"{topo.ns('h1')},tf-no-such-host"
    result = subprocess.run(
        [script, "switch", "async", "--hosts", hosts, "--command", template],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "host tf-no-such-host is not ready" in result.stderr and "nothing was changed" in result.stderr
    assert {p.mode for p in topo.processes("h1")} != {"async"}

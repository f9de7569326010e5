"""deploy/nginx.conf and deploy/supervisord.conf agree, parsed by nginx and supervisor themselves."""

import re
import signal
import subprocess
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from app.server import IDLE_CONNECTION_TIMEOUT
from app.settings import (
    MAX_DRAIN_SECONDS,
    MIN_DRAIN_SECONDS,
    NGINX_UPSTREAM_KEEPALIVE_SECONDS,
    Settings,
    SettingsError,
    write_env_file,
)
from fleet.config import (
    NGINX_TEMPLATE,
    SUPERVISORD_CONF,
    FleetConfig,
    listen_of,
    nginx_binary,
    profile_lines,
    render_nginx,
    running_app_listen,
)


def supervisor_groups(monkeypatch, config: FleetConfig) -> dict:
    for key, value in config.supervisor_env().items():
        monkeypatch.setenv(key, value)
    (config.var_dir / "log").mkdir(parents=True, exist_ok=True)
    options = ServerOptions()
    options.realize(args=["-c", str(SUPERVISORD_CONF)])
    return {group.name: group for group in options.process_group_configs}


def upstream_ports(nginx_conf: str, socket_dir: str = "var/run") -> list[int]:
    """The processes the upstream lists: by their sockets in `socket_dir`, or by their ports (None)."""
    block = re.search(r"upstream app \{(.*?)\}", nginx_conf, re.S).group(1)
    address = r"127\.0\.0\.1:(\d+)" if socket_dir is None else rf"unix:{re.escape(socket_dir)}/app-(\d+)\.sock"
    return [int(p) for p in re.findall(rf"^\s*server {address} ", block, re.M)]


def metrics_servers(nginx_conf: str) -> list[tuple[int, str]]:
    """(port, socket) of each server nginx runs for a process's metrics."""
    return re.findall(r"listen 127\.0\.0\.1:(\d+);.*proxy_pass http://unix:(\S+?):/metrics;", nginx_conf)


@pytest.mark.parametrize("procs", [2, 5])
@pytest.mark.parametrize("listen", ["unix", "tcp"])
def test_nginx_upstream_lists_exactly_supervisords_app_processes(monkeypatch, tmp_path, procs, listen):
    config = FleetConfig(
        var_dir=tmp_path, procs=procs, port=18080, app_port_base=18101, db_port=18200, app_listen=listen
    )
    groups = supervisor_groups(monkeypatch, config)
    app_ports = [int(re.search(r"--port (\d+)", p.command).group(1)) for p in groups["app"].process_configs]
    names = [p.name for p in groups["app"].process_configs]

    rendered = config.nginx_conf()
    socket_dir = str(tmp_path / "run") if listen == "unix" else None
    assert upstream_ports(rendered, socket_dir) == app_ports == list(range(18101, 18101 + procs))
    assert names == [f"app-{port}" for port in app_ports]
    assert re.search(r"^\s*listen 18080;", rendered, re.M)
    # Prometheus's ports: nginx's in front of the metrics sockets, or the processes' own (none in nginx).
    offset = config.app_settings().metrics_port_offset
    expected = [(str(p + offset), f"{tmp_path}/run/app-{p}.metrics.sock") for p in app_ports]
    assert metrics_servers(rendered) == (expected if listen == "unix" else [])

    # nginx itself accepts the rendered file.
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    (prefix / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(rendered)
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_template_itself_is_the_default_two_process_config():
    template = NGINX_TEMPLATE.read_text()
    assert upstream_ports(template) == [8001, 8002]
    assert metrics_servers(template) == [
        ("9001", "var/run/app-8001.metrics.sock"),
        ("9002", "var/run/app-8002.metrics.sock"),
    ]
    assert render_nginx(template, 8080, [8001, 8002]) == template


def test_supervisord_runs_db_only_without_mongodb_uri(monkeypatch, tmp_path):
    embedded = supervisor_groups(monkeypatch, FleetConfig(var_dir=tmp_path, procs=2))
    external = supervisor_groups(
        monkeypatch, FleetConfig(var_dir=tmp_path, procs=2, mongodb_uri="mongodb://db.example/")
    )
    assert embedded["db"].process_configs[0].autostart is True
    assert external["db"].process_configs[0].autostart is False


def test_control_socket_is_private_and_there_is_no_network_listener(monkeypatch, tmp_path):
    supervisor_groups(monkeypatch, FleetConfig(var_dir=tmp_path))  # sets the environment
    options = ServerOptions()
    options.realize(args=["-c", str(SUPERVISORD_CONF)])
    (server,) = options.server_configs
    assert server["family"].name == "AF_UNIX" and server["chmod"] == 0o700
    assert Path(server["file"]) == tmp_path / "supervisor.sock"


def test_the_database_mode_is_not_in_supervisord_conf():
    # A mode in supervisord.conf would make a rolling switch impossible: it lives in the env file only.
    settings_lines = [line for line in SUPERVISORD_CONF.read_text().splitlines() if not line.lstrip().startswith(";")]
    assert not any("FLEET_DB_MODE" in line or "MONGODB_URI" in line for line in settings_lines)


def test_nginx_closes_idle_upstream_connections_before_the_app_or_a_drain_would():
    # With upstream keep-alive only nginx may close an idle connection: a POST it writes on one the app closes at
    # that moment is answered 502 and never resent (app/lifecycle.py).
    upstream = NGINX_TEMPLATE.read_text().split("upstream app {", 1)[1].split("}", 1)[0]
    timeout = re.search(r"^\s*keepalive_timeout (\d+)s;", upstream, re.M)
    assert timeout, "the upstream block sets no keepalive_timeout"
    assert float(timeout[1]) == NGINX_UPSTREAM_KEEPALIVE_SECONDS
    assert IDLE_CONNECTION_TIMEOUT > NGINX_UPSTREAM_KEEPALIVE_SECONDS
    assert MIN_DRAIN_SECONDS > NGINX_UPSTREAM_KEEPALIVE_SECONDS
    with pytest.raises(SettingsError, match="FLEET_DRAIN_SECONDS: must be at least"):
        Settings.from_mapping({"FLEET_DRAIN_SECONDS": str(NGINX_UPSTREAM_KEEPALIVE_SECONDS)})


def test_app_stop_timeout_exceeds_the_drain_deadline(monkeypatch, tmp_path):
    config = FleetConfig(var_dir=tmp_path)
    app = supervisor_groups(monkeypatch, config)["app"].process_configs[0]
    # SIGTERM starts the drain; supervisord's SIGKILL must come after the longest drain the settings allow.
    assert app.stopsignal == signal.SIGTERM
    assert app.stopwaitsecs > MAX_DRAIN_SECONDS
    with pytest.raises(SettingsError, match="FLEET_DRAIN_SECONDS: must be at most"):
        Settings.from_mapping({"FLEET_DRAIN_SECONDS": str(MAX_DRAIN_SECONDS + 1)})


KEY = "k" * 43

TOKEN = "Abc.def+ghi/jkl=mno_pqr-stu~vwx0123456789"

PRODUCTION = {"FLEET_ENV": "production", "FLEET_SECRET_KEY": KEY}


def test_development_renders_the_template_unchanged_and_production_its_own_lines():
    template = NGINX_TEMPLATE.read_text()
    assert render_nginx(template, 8080, [8001, 8002], profile=profile_lines(Settings())) == template
    production = Settings.from_mapping({**PRODUCTION, "FLEET_STATUS_ALLOW": "127.0.0.1,10.1.0.0/16"})
    lines = profile_lines(production)
    assert "geo $fleet_production { default 1; }" in lines
    assert "geo $fleet_status_client { default 0; 127.0.0.1/32 1; 10.1.0.0/16 1; }" in lines
    assert "geo $fleet_benchmarks { default 0; }" in lines


def test_nginx_accepts_the_production_config_with_a_token(tmp_path):
    config = FleetConfig(var_dir=tmp_path, procs=2, app_env={**PRODUCTION, "FLEET_STATUS_TOKEN": TOKEN})
    config.write_runtime_files()
    # The token is in the owner-only include only, as a regex that matches exactly it.
    assert TOKEN not in (tmp_path / "nginx.conf").read_text()
    include = (tmp_path / "status-token.conf").read_text()
    pattern = re.search(r'"~(\^Bearer .*\$)" 1;', include)[1]  # the same in PCRE and Python for these characters
    assert re.match(pattern, f"Bearer {TOKEN}") and not re.match(pattern, f"Bearer {TOKEN}x")
    assert not re.match(pattern, "Bearer " + TOKEN.replace(".", "X").replace("+", "Y"))
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", f"{tmp_path}/nginx/", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_metrics_ports_that_collide_are_refused_before_anything_starts():
    with pytest.raises(SettingsError, match=r"FLEET_METRICS_PORT_OFFSET: metrics ports 8080-8081 collide .*\[8080\]"):
        FleetConfig(port=8080, procs=2, app_port_base=8001, app_env={"FLEET_METRICS_PORT_OFFSET": "79"}).validate()
    with pytest.raises(SettingsError, match=r"FLEET_METRICS_PORT_OFFSET: .* above 65535"):
        FleetConfig(port=8080, procs=2, app_port_base=65000, app_env={"FLEET_METRICS_PORT_OFFSET": "1000"}).validate()
    # 0: no metrics listener, nothing to collide with; the env file lists the fleet's ports for /status.
    config = FleetConfig(port=8080, procs=3, app_port_base=8001, app_env={"FLEET_METRICS_PORT_OFFSET": "0"})
    config.validate()
    assert config.app_settings().fleet_ports(8001) == [8001, 8002, 8003]
    with pytest.raises(SettingsError, match="FLEET_APP_PORTS: must be comma-separated port numbers"):
        Settings.from_mapping({"FLEET_APP_PORTS": "8001,eighty"})


@pytest.mark.parametrize(
    ("env", "listen"),
    [
        ({"FLEET_SOCKET_DIR": "/srv/fleet/var/run", "FLEET_DB_MODE": "motor"}, "unix"),
        ({"FLEET_SOCKET_DIR": "", "FLEET_DB_MODE": "motor"}, "tcp"),
        # Written before unix sockets: its processes run on their ports until a restart with FLEET_APP_LISTEN=unix.
        ({"FLEET_DB_MODE": "motor"}, "tcp"),
    ],
)
def test_a_fleets_env_file_says_how_its_processes_listen_whatever_the_callers_environment(tmp_path, env, listen):
    write_env_file(tmp_path / "fleet.env", env)
    assert listen_of(env) == listen
    # The tools that talk to the running processes go by the file, whatever the caller's FLEET_APP_LISTEN.
    given = FleetConfig.from_env({"FLEET_VAR_DIR": str(tmp_path), "FLEET_APP_LISTEN": "unix"})
    assert given.app_listen == "unix"
    assert running_app_listen(given.env_file) == {"app_listen": listen}
    # A start keeps what the file records; a file from before FLEET_SOCKET_DIR records nothing: the default.
    started = FleetConfig.from_env({"FLEET_VAR_DIR": str(tmp_path)}).app_listen
    assert started == (listen if "FLEET_SOCKET_DIR" in env else "unix")
    assert FleetConfig.from_env({"FLEET_VAR_DIR": str(tmp_path / "new")}).app_listen == "unix"

"""The deployment's shape (ports, process count, folders) and the files derived from it.

One `FleetConfig` produces both sides that must agree: the environment supervisord expands in
`deploy/supervisord.conf` (numprocs, numprocs_start) and the nginx upstream rendered from `deploy/nginx.conf`.
`tests/fleet/test_config.py` parses both with supervisor's and nginx's own tools and checks they list the same
ports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from app import addresses
from app.addresses import Address
from app.settings import (
    DEFAULT_DB_PORT,
    Settings,
    SettingsError,
    embedded_uri,
    env_name,
    parse_bool,
    read_env_file,
    write_env_file,
)
from fleet import dbauth, prometheus

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SUPERVISORD_CONF = DEPLOY / "supervisord.conf"
NGINX_TEMPLATE = DEPLOY / "nginx.conf"

LISTEN_MARK = "# fleet:listen"
USER_MARK = "# fleet:user"
# What the template's rendered lines hold for the defaults: the checkout's var/run, the default metrics offset.
TEMPLATE_SOCKET_DIR = "var/run"
TEMPLATE_METRICS_OFFSET = Settings.metrics_port_offset
UPSTREAM_ADDRESS = r"127\.0\.0\.1:\d+|unix:\S+"
METRICS_LISTEN = r"listen 127\.0\.0\.1:\d+;"
METRICS_SOCKET = r"unix:\S+?\.metrics\.sock:"
# The folder of the processes' sockets (app/addresses.py), under FLEET_VAR_DIR; FLEET_APP_LISTEN=tcp: none.
SOCKET_SUBDIR = "run"
# App settings computed from the fleet's shape on every start (`app_settings`): never carried over from an env file,
# compared with a running fleet's, or reported as changed.
DERIVED_SETTINGS = frozenset({"FLEET_APP_PORTS", "FLEET_ENV_FILE", "FLEET_SOCKET_DIR"})
APP_LISTEN = ("unix", "tcp")
DEFAULT_FLEET_USER = "tornado-fleet"
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
PROFILE_BEGIN = "# fleet:profile-begin"
PROFILE_END = "# fleet:profile-end"
# Included by the production profile (next to nginx.conf in FLEET_VAR_DIR): the bearer token's map, owner-only.
STATUS_TOKEN_CONF = "status-token.conf"


def default_procs() -> int:
    return max(2, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class FleetConfig:
    var_dir: Path = ROOT / "var"
    port: int = 8080
    procs: int = dataclasses.field(default_factory=default_procs)
    app_port_base: int = 8001
    db_port: int = DEFAULT_DB_PORT
    # None: run the embedded server under supervisord and point the fleet at it.
    mongodb_uri: str | None = None
    # App settings (FLEET_DB_MODE, ...) for the env file, as given; validated by `app_settings()`.
    app_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Debian's prometheus under supervisord on 127.0.0.1 (fleet/prometheus.py renders its files either way).
    prometheus: bool = False
    prometheus_port: int = 9090
    prometheus_interval: str = "15s"
    # nginx's access and error logs are renamed past this size, and nginx told to reopen them (fleet/logrotate.py).
    nginx_log_max_bytes: int = 10 * 1024 * 1024
    nginx_log_backups: int = 5
    # The embedded database's password in production (fleet/dbauth.py): kept in the env file's MONGODB_URI.
    db_password: str = dataclasses.field(default="", repr=False)
    # The account every program supervisord runs uses (README "Security"; fleet/privileges.py): "" is the one
    # running scripts/run. `from_env` makes it FLEET_USER, by default DEFAULT_FLEET_USER when run as root.
    user: str = ""
    # FLEET_APP_LISTEN: "unix", each process on a unix socket in FLEET_VAR_DIR/run (app/addresses.py), or "tcp",
    # on 127.0.0.1:PORT (what a benchmark needs to reach a process without nginx; squattable, README "Security").
    app_listen: str = "unix"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FleetConfig:
        environ = os.environ if environ is None else environ
        kwargs: dict = {}
        for var, field, kind in (
            ("FLEET_PORT", "port", int),
            ("FLEET_PROCS", "procs", int),
            ("FLEET_APP_PORT_BASE", "app_port_base", int),
            ("FLEET_DB_PORT", "db_port", int),
            ("FLEET_PROMETHEUS_PORT", "prometheus_port", int),
            ("FLEET_NGINX_LOG_MAXBYTES", "nginx_log_max_bytes", int),
            ("FLEET_NGINX_LOG_BACKUPS", "nginx_log_backups", int),
        ):
            if environ.get(var, "").strip():
                try:
                    kwargs[field] = kind(environ[var])
                except ValueError:
                    raise SettingsError(f"{var}={environ[var]!r}: expected an integer") from None
        if environ.get("FLEET_VAR_DIR", "").strip():
            kwargs["var_dir"] = Path(environ["FLEET_VAR_DIR"]).resolve()
        if environ.get("MONGODB_URI", "").strip():
            kwargs["mongodb_uri"] = environ["MONGODB_URI"].strip()
        if environ.get("FLEET_PROMETHEUS", "").strip():
            try:
                kwargs["prometheus"] = parse_bool(environ["FLEET_PROMETHEUS"])
            except ValueError:
                raw = environ["FLEET_PROMETHEUS"]
                raise SettingsError(f"FLEET_PROMETHEUS={raw!r}: expected true or false") from None
        kwargs.update(account_settings(environ))
        if environ.get("FLEET_APP_LISTEN", "").strip():
            kwargs["app_listen"] = environ["FLEET_APP_LISTEN"].strip()
        else:
            # Not given: as the fleet was started (its env file), so every script reaches the processes where they
            # listen, and a restart keeps it.
            kwargs.update(saved_app_listen(kwargs.get("var_dir", ROOT / "var") / "fleet.env"))
        if environ.get("FLEET_PROMETHEUS_INTERVAL", "").strip():
            kwargs["prometheus_interval"] = environ["FLEET_PROMETHEUS_INTERVAL"].strip()
        app_vars = {env_name(f.name) for f in dataclasses.fields(Settings)} - {"MONGODB_URI"}
        # The fleet's env file, under what the environment gives: a production fleet's generated key and the
        # settings it was started with hold for every script (scripts/status, stop, scale ...), not only the exports.
        kept = saved_app_env(kwargs.get("var_dir", ROOT / "var") / "fleet.env", app_vars)
        given = {k: v for k, v in environ.items() if k in app_vars}
        kwargs["app_env"] = {**kept, **given}
        config = cls(**kwargs)
        try:
            config.validate()
        except SettingsError:
            if not kept:
                raise
            # The env file itself is invalid: judged by the environment alone, as before; the script that reads
            # the file reports it in its own words (scripts/switch-db-mode, rolling-restart).
            config = dataclasses.replace(config, app_env=given)
            config.validate()
        return config

    def validate(self) -> None:
        if not 1 <= self.procs <= 64:
            raise SettingsError("FLEET_PROCS: must be between 1 and 64")
        ports = {"FLEET_PORT": self.port, "FLEET_DB_PORT": self.db_port}
        for var, port in {**ports, "FLEET_APP_PORT_BASE": self.app_port_base}.items():
            if not 1 <= port <= 65535 - self.procs:
                raise SettingsError(f"{var}: {port} is not a usable port")
        for var, port in ports.items():
            if port in self.app_ports:
                raise SettingsError(
                    f"{var}: {port} collides with the app ports {self.app_ports[0]}-{self.app_ports[-1]}"
                )
        if self.port == self.db_port:
            raise SettingsError("FLEET_DB_PORT: must differ from FLEET_PORT")
        self.check_metrics_ports(self.app_settings().metrics_port_offset)
        self.check_prometheus()
        if self.nginx_log_max_bytes < 0:
            raise SettingsError("FLEET_NGINX_LOG_MAXBYTES: must be 0 (never rotate) or a size in bytes")
        if self.nginx_log_backups < 1:
            raise SettingsError("FLEET_NGINX_LOG_BACKUPS: must be at least 1")
        if self.app_listen not in APP_LISTEN:
            raise SettingsError(f"FLEET_APP_LISTEN: {self.app_listen!r} is not one of {', '.join(APP_LISTEN)}")
        if self.user and not USER_NAME.match(self.user):
            raise SettingsError(f"FLEET_USER: {self.user!r} is not a user name")

    def check_prometheus(self) -> None:
        if not prometheus.INTERVAL.match(self.prometheus_interval):
            raise SettingsError(f"FLEET_PROMETHEUS_INTERVAL: {self.prometheus_interval!r} is not a duration like 15s")
        if not self.prometheus:
            return
        offset = self.app_settings().metrics_port_offset
        if not offset:
            raise SettingsError("FLEET_PROMETHEUS: needs metrics listeners (FLEET_METRICS_PORT_OFFSET is 0)")
        taken = {*self.app_ports, *(port + offset for port in self.app_ports), self.port, self.db_port}
        if not 1 <= self.prometheus_port <= 65535 or self.prometheus_port in taken:
            raise SettingsError(f"FLEET_PROMETHEUS_PORT: {self.prometheus_port} is not usable or taken by the fleet")
        if prometheus.binary() is None:
            raise SettingsError("FLEET_PROMETHEUS: prometheus is not installed (Debian: apt-get install prometheus)")

    def check_metrics_ports(self, offset: int) -> None:
        """Each process's metrics port (app port + FLEET_METRICS_PORT_OFFSET) must be free of the other ports."""
        if not offset:
            return
        metrics_ports = [port + offset for port in self.app_ports]
        if metrics_ports[-1] > 65535:
            raise SettingsError(f"FLEET_METRICS_PORT_OFFSET: {offset} puts metrics ports above 65535")
        taken = {*self.app_ports, self.port, self.db_port} & set(metrics_ports)
        if taken:
            raise SettingsError(
                f"FLEET_METRICS_PORT_OFFSET: metrics ports {metrics_ports[0]}-{metrics_ports[-1]} collide with "
                f"port(s) {sorted(taken)} (app ports, FLEET_PORT or FLEET_DB_PORT)"
            )

    @property
    def db_auth(self) -> bool:
        """Whether the embedded database requires the fleet's user: in production (fleet/dbauth.py)."""
        return self.embedded_db and self.app_env.get("FLEET_ENV", "").strip() == "production"

    @property
    def run_user(self) -> str:
        """The name of the account the programs run as (supervisord's `user=` for each)."""
        return self.user or pwd.getpwuid(os.geteuid()).pw_name

    @property
    def app_ports(self) -> list[int]:
        """The app processes' numbers (app-8001, ...): TCP ports only with FLEET_APP_LISTEN=tcp; otherwise each
        names its unix socket in socket_dir (app_address)."""
        return list(range(self.app_port_base, self.app_port_base + self.procs))

    @property
    def socket_dir(self) -> Path | None:
        """The folder of the processes' unix sockets (0700), or None when they listen on TCP."""
        return self.var_dir / SOCKET_SUBDIR if self.app_listen == "unix" else None

    def app_address(self, port: int) -> Address:
        """Where process `port` serves requests: its unix socket, or 127.0.0.1:PORT (app/addresses.py)."""
        return addresses.app_address(str(self.socket_dir or ""), "127.0.0.1", port)

    def processes_where(self) -> str:
        """The processes and where they listen, for a line of output: `2 processes app-8001-app-8002 on unix
        sockets in var/run` (or `on ports 8001-8002`)."""
        first, last = self.app_ports[0], self.app_ports[-1]
        where = f"unix sockets in {self.socket_dir}" if self.socket_dir is not None else f"ports {first}-{last}"
        return f"{self.procs} processes app-{first}-app-{last} on {where}"

    def app_url(self, port: int) -> str:
        """The URL (no path) of process `port` itself, not through nginx (fleet.probe.request understands it)."""
        return addresses.url(self.app_address(port))

    def metrics_address(self, port: int) -> Address | None:
        """Where process `port` serves its metrics (None: no metrics listener)."""
        offset = self.app_settings().metrics_port_offset
        return addresses.metrics_address(str(self.socket_dir or ""), "127.0.0.1", port, offset)

    @property
    def embedded_db(self) -> bool:
        return self.mongodb_uri is None

    @property
    def env_file(self) -> Path:
        return self.var_dir / "fleet.env"

    @property
    def socket(self) -> Path:
        return self.var_dir / "supervisor.sock"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_settings(self) -> Settings:
        """The settings every app process will load from the env file (raises SettingsError if invalid)."""
        uri = self.mongodb_uri or embedded_uri(self.db_port)
        if self.db_auth and self.db_password:
            uri = dbauth.authenticated_uri(self.db_port, self.db_password)
        # FLEET_APP_PORTS: the process serving /status asks every one of these.
        ports = ",".join(map(str, self.app_ports))
        derived = {"MONGODB_URI": uri, "FLEET_APP_PORTS": ports, "FLEET_SOCKET_DIR": str(self.socket_dir or "")}
        return Settings.from_mapping({**self.app_env, **derived})

    def supervisor_env(self) -> dict[str, str]:
        """The variables `deploy/supervisord.conf` expands (%(ENV_...)s); supervisord passes them to children."""
        venv_bin = Path(sys.executable).parent
        return {
            "FLEET_VAR_DIR": str(self.var_dir),
            "FLEET_PORT": str(self.port),
            "FLEET_PROCS": str(self.procs),
            "FLEET_APP_PORT_BASE": str(self.app_port_base),
            "FLEET_DB_PORT": str(self.db_port),
            "FLEET_DB_AUTOSTART": "true" if self.embedded_db else "false",
            "FLEET_DB_FLAGS": "--auth" if self.db_auth else "",
            "FLEET_ENV_FILE": str(self.env_file),
            "FLEET_VENV_BIN": str(venv_bin),
            "FLEET_NGINX": nginx_binary(),
            "FLEET_PROMETHEUS_AUTOSTART": "true" if self.prometheus else "false",
            "FLEET_PROMETHEUS_BIN": prometheus.binary() or "/usr/bin/prometheus",
            "FLEET_PROMETHEUS_PORT": str(self.prometheus_port),
            "FLEET_LOGROTATE_AUTOSTART": "true" if self.nginx_log_max_bytes else "false",
            "FLEET_NGINX_LOG_MAXBYTES": str(self.nginx_log_max_bytes),
            "FLEET_NGINX_LOG_BACKUPS": str(self.nginx_log_backups),
            "FLEET_RUN_USER": self.run_user,
        }

    def write_runtime_files(self) -> None:
        """Create var/ and write what the processes read at start: the env file and nginx's config."""
        for sub in ("log", "db", "nginx/logs", "nginx/tmp"):
            (self.var_dir / sub).mkdir(parents=True, exist_ok=True)
        if self.socket_dir is not None:
            # Only the fleet's account may create or open a socket here (fleet/privileges.py gives it the folder).
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            self.socket_dir.chmod(0o700)
        # Database files, logs, the env file: nobody but the fleet's own account looks inside (with a privilege
        # drop, fleet/privileges.py then lets the fleet's group through).
        self.var_dir.chmod(0o700)
        write_env_file(self.env_file, self.app_settings().to_env())
        prometheus.write_files(
            self.var_dir / "prometheus",
            app_ports=self.app_ports,
            metrics_offset=self.app_settings().metrics_port_offset,
            interval=self.prometheus_interval,
        )
        write_private(self.var_dir / STATUS_TOKEN_CONF, status_token_conf(self.app_settings()))
        (self.var_dir / "nginx.conf").write_text(self.nginx_conf())

    def nginx_conf(self) -> str:
        """nginx's config for this fleet: deploy/nginx.conf with its `fleet:` lines rendered."""
        settings = self.app_settings()
        return render_nginx(
            NGINX_TEMPLATE.read_text(),
            self.port,
            self.app_ports,
            socket_dir=str(self.socket_dir) if self.socket_dir is not None else None,
            metrics_offset=settings.metrics_port_offset,
            max_conns=settings.max_in_flight,
            profile=profile_lines(settings),
            # A root master's workers would be nobody, who cannot enter the sockets' folder (deploy/nginx.conf).
            user="root" if os.geteuid() == 0 and self.run_user == "root" else None,
        )


def account_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """FleetConfig's `user` (FLEET_USER; as root by default DEFAULT_FLEET_USER) and `db_password`."""
    found = {"db_password": environ.get("FLEET_DB_PASSWORD", "").strip(), "user": environ.get("FLEET_USER", "").strip()}
    if not found["user"] and os.geteuid() == 0:
        found["user"] = DEFAULT_FLEET_USER
    return {name: value for name, value in found.items() if value}


def saved_app_env(env_file: Path, app_vars: set[str]) -> dict[str, str]:
    """The app settings in a fleet's env file ({} when there is none, or it cannot be read: another account's)."""
    return {k: v for k, v in saved_env(env_file).items() if k in app_vars - DERIVED_SETTINGS}


def saved_app_listen(env_file: Path) -> dict[str, str]:
    """{"app_listen": ...} as a fleet's env file records it, for a start: {} when there is none, or it predates
    FLEET_SOCKET_DIR (a cold start then takes the default, unix sockets)."""
    saved = saved_env(env_file)
    return {"app_listen": listen_of(saved)} if "FLEET_SOCKET_DIR" in saved else {}


def running_app_listen(env_file: Path) -> dict[str, str]:
    """{"app_listen": ...} of the processes running from this env file ({} without one): what the tools that talk
    to a running fleet (status, rolling restart, switch, scale) need, whatever the caller's environment says."""
    saved = saved_env(env_file)
    return {"app_listen": listen_of(saved)} if saved else {}


def listen_of(env: Mapping[str, str]) -> str:
    """How the processes started from this env file listen: on sockets when it names their folder; on TCP when it
    names none, or predates FLEET_SOCKET_DIR (those processes were started on their ports)."""
    return "unix" if env.get("FLEET_SOCKET_DIR", "").strip() else "tcp"


def saved_env(env_file: Path) -> dict[str, str]:
    """A fleet's env file ({} when there is none, or it cannot be read: another account's)."""
    with contextlib.suppress(SettingsError):
        return read_env_file(env_file) if env_file.is_file() else {}
    return {}


def profile_lines(settings: Settings) -> list[str]:
    """The lines between the `fleet:profile` markers of deploy/nginx.conf for these settings (README "Security")."""
    benchmarks = int(settings.benchmarks_on)
    if settings.env != "production":
        return [
            "geo $fleet_production { default 0; }",
            f"geo $fleet_benchmarks {{ default {benchmarks}; }}",
            "geo $fleet_status_client { default 1; }",
            "map $http_authorization $fleet_status_bearer { default 0; }",
        ]
    allowed = " ".join(f"{network} 1;" for network in settings.status_networks())
    return [
        "geo $fleet_production { default 1; }",
        f"geo $fleet_benchmarks {{ default {benchmarks}; }}",
        f"geo $fleet_status_client {{ default 0; {allowed} }}",
        f"include {STATUS_TOKEN_CONF};",
    ]


def status_token_conf(settings: Settings) -> str:
    """The map the production profile includes: 1 for a request carrying FLEET_STATUS_TOKEN (none: never)."""
    # A regex, not a string key: a long string key overflows nginx's map hash bucket. Of the token's characters
    # (app/settings.py allows a token68's) only . and + mean something in a regex.
    pattern = settings.status_token.replace(".", "\\.").replace("+", "\\+")
    match = f' "~^Bearer {pattern}$" 1;' if settings.status_token else ""
    head = "# Written by scripts/run from FLEET_STATUS_TOKEN; owner-only."
    return f"{head}\nmap $http_authorization $fleet_status_bearer {{ default 0;{match} }}\n"


def write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only, from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)
    os.replace(tmp, path)


def render_nginx(
    template: str,
    port: int,
    app_ports: list[int],
    *,
    socket_dir: str | None = TEMPLATE_SOCKET_DIR,
    metrics_offset: int = TEMPLATE_METRICS_OFFSET,
    max_conns: int | None = None,
    profile: list[str] | None = None,
    user: str | None = None,
) -> str:
    """Rewrite the lines marked `fleet:` in deploy/nginx.conf for this port and these processes.

    The upstream lists each process's unix socket in `socket_dir` (None: 127.0.0.1:PORT, for processes on TCP);
    with sockets, nginx serves each process's metrics on 127.0.0.1:(PORT + `metrics_offset`) (0: none). `max_conns`
    (the app's FLEET_MAX_IN_FLIGHT) replaces each server line's max_conns= (None: the template's stays); `profile`
    the lines between the fleet:profile markers (`profile_lines`; None: the template's stay); `user` (if given)
    becomes the fleet:user line's `user` directive. The defaults render the template as it is."""
    if profile is not None:
        template = render_profile(template, profile)

    def upstream(model: str) -> list[str]:
        if max_conns is not None:
            model = re.sub(r"max_conns=\d+", f"max_conns={max_conns}", model)
        return [re.sub(UPSTREAM_ADDRESS, upstream_address(socket_dir, p), model, count=1) for p in app_ports]

    def metrics(model: str) -> list[str]:
        if socket_dir is None or not metrics_offset:
            return []
        return [
            re.sub(
                METRICS_SOCKET,
                f"unix:{addresses.metrics_address(socket_dir, '127.0.0.1', p, metrics_offset)}:",
                re.sub(METRICS_LISTEN, f"listen 127.0.0.1:{p + metrics_offset};", model, count=1),
                count=1,
            )
            for p in app_ports
        ]

    template = render_block(template, "upstream", upstream)
    template = render_block(template, "metrics", metrics)
    out = []
    for line in template.splitlines():
        if LISTEN_MARK in line:
            out.append(re.sub(r"listen(\s+)(\S*?)(\d+)(?=[;\s])", lambda m: f"listen{m[1]}{m[2]}{port}", line, count=1))
        elif line.strip() == USER_MARK and user:
            out.append(f"user {user};  {USER_MARK}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def upstream_address(socket_dir: str | None, port: int) -> str:
    """A process's address in nginx's terms: `unix:` and its socket (app/addresses.py names it), or 127.0.0.1:PORT."""
    return f"unix:{addresses.app_address(socket_dir, '127.0.0.1', port)}" if socket_dir else f"127.0.0.1:{port}"


def render_block(template: str, name: str, render) -> str:
    """Replace the lines between `# fleet:NAME-begin` and `-end` with `render(model)`, the model being the first
    line between them that is not a comment."""
    begin, end = f"# fleet:{name}-begin", f"# fleet:{name}-end"
    lines = template.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f"deploy/nginx.conf: needs one {begin} line and one {end} line after it")
    inside = lines[starts[0] + 1 : ends[0]]
    model = next((line for line in inside if line.strip() and not line.strip().startswith("#")), None)
    if model is None:
        raise ValueError(f"deploy/nginx.conf: no line to render between the fleet:{name} markers")
    return "\n".join([*lines[: starts[0] + 1], *render(model), *lines[ends[0] :]]) + "\n"


def render_profile(template: str, profile: list[str]) -> str:
    """Replace the lines between the fleet:profile markers with `profile`, indented as the first marker."""
    pattern = rf"^([ \t]*){re.escape(PROFILE_BEGIN)}\n.*?^[ \t]*{re.escape(PROFILE_END)}$"
    match = re.search(pattern, template, re.M | re.S)
    if not match:
        raise ValueError("deploy/nginx.conf: no fleet:profile-begin ... fleet:profile-end block")
    indent = match[1]
    block = "\n".join([f"{indent}{PROFILE_BEGIN}", *(indent + line for line in profile), f"{indent}{PROFILE_END}"])
    return template[: match.start()] + block + template[match.end() :]


def nginx_binary() -> str:
    # Debian installs nginx in /usr/sbin, which is not on a non-root user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin") or "/usr/sbin/nginx"

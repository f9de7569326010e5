"""`scripts/bench --tune`: measure each tuning knob against the configuration as deployed, one knob at a time.

nginx knobs are applied to a running fleet: its rendered var/nginx.conf is rewritten and nginx reloaded (HUP),
so every variant is measured on the same app processes. App knobs (pool sizes) need a fresh fleet per variant.
The report gives each variant's requests/s and p99 as a ratio to the baseline measured just before it; a knob is
worth keeping only where that ratio is clearly above the run-to-run noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from collections.abc import Callable

from bench import harness, runner, wrk
from bench.endpoints import DB_BOUND_NOTE, ENDPOINTS
from bench.machine import machine_info, measured_line
from bench.stats import measurement, ratio
from bench.writer import fmt_ms, fmt_rate, fmt_ratio, table
from fleet import nginx_reload
from fleet.config import FleetConfig
from fleet.sandbox import embedded_db, short_tmp_dir
from fleet.supervisor import Supervisor

NGINX_ENDPOINTS = ("json", "db")
APP_ENDPOINTS = ("db", "queries")
TUNE_PROCS = 2


# (pattern, replacement) pairs, each applied once with re.M, that turn the shipped upstream keep-alive off: also
# scripts/blast-radius's `no-keepalive` option.
NO_KEEPALIVE_EDITS = (
    (r"^[ \t]*keepalive \d+;\n", ""),
    (r"^([ \t]*)proxy_http_version 1.1;$", r"\1proxy_http_version 1.0;"),
)


def no_upstream_keepalive(conf: str) -> str:
    """The first version's upstream: a new TCP connection (and a new Tornado connection object) per request."""
    for pattern, replacement in NO_KEEPALIVE_EDITS:
        conf = re.sub(pattern, replacement, conf, count=1, flags=re.M)
    return conf


def worker_processes(count: str) -> Callable[[str], str]:
    def apply(conf: str) -> str:
        return re.sub(r"^worker_processes\s+[^;]+;", f"worker_processes {count};", conf, count=1, flags=re.M)

    return apply


def access_log_unbuffered(conf: str) -> str:
    return re.sub(r"^(\s*access_log\s+[^;]*?)(\s+buffer=\S+?)?(\s+flush=\S+?)?;", r"\1;", conf, flags=re.M)


def access_log_off(conf: str) -> str:
    return re.sub(r"^([ \t]*)access_log\s+[^;]+;", r"\1access_log off;", conf, flags=re.M)


NGINX_VARIANTS: dict[str, Callable[[str], str]] = {
    "no upstream keepalive": no_upstream_keepalive,
    "worker_processes auto": worker_processes("auto"),
    "access_log unbuffered": access_log_unbuffered,
    "access_log off": access_log_off,
}


@dataclasses.dataclass(frozen=True)
class AppVariant:
    label: str
    mode: str
    app_env: dict[str, str] = dataclasses.field(default_factory=dict)
    # Variables read by a driver rather than by Settings (MOTOR_MAX_WORKERS): passed through supervisord.
    process_env: dict[str, str] = dataclasses.field(default_factory=dict)


def app_variants(cpus: int) -> list[AppVariant]:
    return [
        AppVariant("async: FLEET_DB_POOL_SIZE=100 (default)", "async"),
        AppVariant("async: FLEET_DB_POOL_SIZE=10", "async", {"FLEET_DB_POOL_SIZE": "10"}),
        AppVariant("threads: FLEET_DB_THREADS=16 (default)", "threads"),
        AppVariant("threads: FLEET_DB_THREADS=4", "threads", {"FLEET_DB_THREADS": "4"}),
        AppVariant("threads: FLEET_DB_THREADS=64", "threads", {"FLEET_DB_THREADS": "64"}),
        # FLEET_DB_THREADS sizes Motor's pool too (app/store/motor_store.py); MOTOR_MAX_WORKERS is ignored.
        AppVariant("motor: FLEET_DB_THREADS=16 (default)", "motor"),
        AppVariant("motor: FLEET_DB_THREADS=4", "motor", {"FLEET_DB_THREADS": "4"}),
        AppVariant("motor: FLEET_DB_THREADS=64", "motor", {"FLEET_DB_THREADS": "64"}),
    ]


def run(plan: runner.Plan, progress=None) -> dict:
    progress = progress or runner.Progress(estimate_seconds(plan))
    folder = short_tmp_dir("tune-")
    measurements: list[dict] = []
    try:
        info = machine_info()
        cell = runner.CellRunner(plan, wrk.write_pipeline_script(folder), progress)
        progress("starting the embedded database and seeding it")
        with embedded_db(folder / "db", folder) as db_uri:
            measurements += tune_nginx(cell, db_uri, progress)
            measurements += tune_app(cell, db_uri, progress, info["nproc"] or 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"config": runner.config_of(plan), "machine": info, "measurements": measurements}


def estimate_seconds(plan: runner.Plan) -> float:
    variants = len(app_variants(os.cpu_count() or 1))
    nginx_cells = 2 * len(NGINX_VARIANTS) * len(NGINX_ENDPOINTS)
    return (nginx_cells + variants * len(APP_ENDPOINTS)) * plan.cell_seconds() + (
        1 + variants
    ) * runner.FLEET_OVERHEAD_S


@dataclasses.dataclass
class Contender:
    """One side of a comparison: `prepare` runs before each of its wrk runs (e.g. loads its nginx config)."""

    variant: str
    url: str
    prepare: Callable[[], None] = lambda: None
    runs: list[dict] = dataclasses.field(default_factory=list)


def interleaved(cell: runner.CellRunner, knob: str, mode: str, contenders: list[Contender]) -> list[dict]:
    """Runs alternate between the contenders (A B A B ...): on a shared machine the noise drifts over minutes,
    and alternating spreads that drift over every side instead of biasing whichever ran last."""
    found = []
    for name in NGINX_ENDPOINTS if knob in NGINX_VARIANTS else APP_ENDPOINTS:
        endpoint = ENDPOINTS[name]
        connections = cell.plan.connections(endpoint)
        for contender in contenders:
            contender.runs = []
            contender.prepare()
            cell.warm_up(contender.url + endpoint.path, endpoint.depth, connections)
        for index in range(cell.plan.runs):
            for contender in contenders:
                contender.prepare()
                label = f"{contender.variant} {endpoint.path} run {index + 1}/{cell.plan.runs}"
                url = contender.url + endpoint.path
                contender.runs.append(cell.once(label, url, endpoint.depth, connections))
        for contender in contenders:
            found.append(measurement("tune", name, contender.runs, knob=knob, variant=contender.variant, mode=mode))
    return found


def tune_nginx(cell: runner.CellRunner, db_uri: str, progress) -> list[dict]:
    """Each nginx variant against the deployed config, alternating on one fleet (motor, 2 processes)."""
    found = []
    with harness.booted_fleet("motor", "asyncio", TUNE_PROCS, db_uri) as config:
        deployed = (config.var_dir / "nginx.conf").read_text()
        supervisor = Supervisor(config.socket)
        loaded = [deployed]

        def loader(text: str, name: str) -> Callable[[], None]:
            def load() -> None:
                if loaded[0] != text:
                    reload_nginx(config, supervisor, text, name)
                    loaded[0] = text

            return load

        for knob, transform in NGINX_VARIANTS.items():
            tuned = transform(deployed)
            if tuned == deployed:
                raise runner.BenchError(f"tuning {knob!r} changed nothing in deploy/nginx.conf")
            progress(f"nginx: as deployed vs {knob}")
            contenders = [
                Contender("as deployed", config.url, loader(deployed, "as deployed")),
                Contender(knob, config.url, loader(tuned, knob)),
            ]
            found += interleaved(cell, knob, "motor", contenders)
        loader(deployed, "as deployed")()
    return found


def reload_nginx(config: FleetConfig, supervisor: Supervisor, conf: str, name: str) -> None:
    try:
        nginx_reload.load(config, supervisor, conf, name)
    except nginx_reload.ReloadError as exc:
        raise runner.BenchError(str(exc)) from None


def tune_app(cell: runner.CellRunner, db_uri: str, progress, cpus: int) -> list[dict]:
    """Per knob, one fleet per value, all up at once so their runs can alternate."""
    found = []
    groups: dict[str, list[AppVariant]] = {}
    for variant in app_variants(cpus):
        groups.setdefault(variant.label.split("=")[0], []).append(variant)
    for knob, variants in groups.items():
        progress(f"{knob}: booting {len(variants)} fleets ({', '.join(v.label.split('=')[1] for v in variants)})")
        with contextlib.ExitStack() as stack:
            contenders = []
            for variant in variants:
                with patched_environ(variant.process_env):
                    config = stack.enter_context(
                        harness.booted_fleet(variant.mode, "asyncio", TUNE_PROCS, db_uri, **variant.app_env)
                    )
                contenders.append(Contender(variant.label, config.url))
            found += interleaved(cell, knob, variants[0].mode, contenders)
    return found


@contextlib.contextmanager
def patched_environ(values: dict[str, str]):
    """supervisord (started by launcher.up) passes this process's environment on to the app processes."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def markdown(results: dict) -> str:
    config, info, measurements = results["config"], results["machine"], results["measurements"]
    lines = [
        "# Tuning knobs, one at a time",
        "",
        f"{measured_line(info)} wrk `-t{config['wrk_threads']} "
        f"-c{config['connections']}`, {config['runs']} run(s) of {config['duration_s']} s after a "
        f"{config['warmup_s']} s warm-up, medians; {TUNE_PROCS} app processes. Database endpoints are {DB_BOUND_NOTE}.",
        "",
        "nginx knobs: applied to one running fleet (motor, asyncio) by rewriting its config and reloading nginx; "
        "each ratio is against the configuration as deployed, measured just before the variant.",
        "",
    ]
    rows = []
    baseline: dict[str, dict] = {}
    for m in measurements:
        if m["variant"] == "as deployed" or "(default" in m["variant"]:
            baseline[(m["knob"], m["endpoint"])] = m
            label = m["variant"]
        else:
            label = f"**{m['variant']}**"
        base = baseline.get((m["knob"], m["endpoint"]))
        rows.append(
            [
                label,
                f"`{ENDPOINTS[m['endpoint']].path}`",
                fmt_rate(m["rps"]),
                fmt_ratio(ratio(m["rps"], base and base["rps"])),
                fmt_ms(m["p99_ms"]),
                fmt_ratio(ratio(m["p99_ms"], base and base["p99_ms"])),
                str(m["errors"]),
            ]
        )
    lines.append(table(["variant", "endpoint", "req/s", "÷ baseline", "p99 ms", "p99 ÷ baseline", "errors"], rows))
    return "\n".join(lines) + "\n"

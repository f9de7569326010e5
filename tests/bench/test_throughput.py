"""scripts/bench's parts without a fleet: reading wrk's output, medians, the report's tables and ratios, the
command line, the nginx-alone config, and the database reference against the real embedded server."""

from __future__ import annotations

import json
import subprocess

import pytest

from bench import cli, references, report, runner, stats, tuning, writer, wrk
from bench.endpoints import ENDPOINTS
from fleet.config import NGINX_TEMPLATE, nginx_binary, render_nginx
from fleet.sandbox import free_port_block

# Real wrk 4.1.0 output (Debian), captured from this project's fleet.
WRK_JSON = """\
Running 2s test @ http://127.0.0.1:29912/json
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.04ms  734.19us   8.22ms   71.11%
    Req/Sec     5.28k     0.97k    7.07k    55.00%
  Latency Distribution
     50%    2.88ms
     75%    3.57ms
     90%    3.95ms
     99%    5.25ms
  10517 requests in 2.00s, 2.16MB read
Requests/sec:   5251.77
Transfer/sec:      1.08MB
"""

WRK_SLOW_WITH_ERRORS = """\
Running 2s test @ http://127.0.0.1:29912/updates?queries=20
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   314.36ms   57.33ms   1.52s    75.53%
    Req/Sec    49.16     24.27    90.00     73.68%
  Latency Distribution
     50%  303.53ms
     75%  344.56ms
     90%  383.51ms
     99%    1.52s
  94 requests in 1.00m, 82.96KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:     46.67
Transfer/sec:     41.19KB
"""

WRK_PIPELINED = """\
Running 2s test @ http://127.0.0.1:29912/plaintext
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.38ms   10.58ms  48.04ms    0.00%
    Req/Sec     7.79k   540.00     8.35k    80.00%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  15517 requests in 2.00s, 2.87MB read
Requests/sec:   7755.92
Transfer/sec:      1.43MB
"""


def test_wrk_parse_reads_throughput_latency_and_no_errors():
    result = wrk.parse(WRK_JSON)
    assert (result.requests, result.duration_s, result.rps) == (10517, 2.0, 5251.77)
    assert (result.p50_ms, result.p99_ms) == (2.88, 5.25)
    assert result.errors == 0


def test_wrk_parse_counts_socket_errors_and_non_2xx_and_converts_units():
    result = wrk.parse(WRK_SLOW_WITH_ERRORS)
    assert result.socket_errors == {"connect": 1, "read": 2, "write": 3, "timeout": 4}
    assert result.non_2xx == 5
    assert result.errors == 15
    assert result.duration_s == 60.0
    assert result.p50_ms == pytest.approx(303.53)
    assert result.p99_ms == pytest.approx(1520.0)


def test_wrk_parse_reports_untimed_pipelined_latency_as_unknown():
    result = wrk.parse(WRK_PIPELINED)
    assert result.rps == 7755.92
    assert (result.p50_ms, result.p99_ms) == (None, None)


def test_wrk_parse_a_run_where_no_request_completed():
    # /queries with a 4-thread pool and 64 connections: every request still queued when the 2 s ended.
    text = WRK_PIPELINED.replace("15517 requests in 2.00s, 2.87MB", "0 requests in 2.00s, 0.00B").replace(
        "7755.92", "0.00"
    )
    result = wrk.parse(text)
    assert (result.requests, result.rps, result.p99_ms, result.errors) == (0, 0.0, None, 0)


@pytest.mark.parametrize("text", ["", "unable to connect to 127.0.0.1:1 Connection refused", WRK_JSON[:300]])
def test_wrk_parse_refuses_what_is_not_a_complete_report(text):
    with pytest.raises(wrk.WrkError):
        wrk.parse(text)


def test_wrk_command_pipelines_with_the_lua_script_only_when_deep(tmp_path):
    options = wrk.WrkOptions(threads=2, connections=64, timeout_s=10)
    script = wrk.write_pipeline_script(tmp_path)
    deep = wrk.command("http://127.0.0.1:1/plaintext", 3, options, script, 16)
    assert deep[1:] == ["-t2", "-c64", "-d3s", "--timeout=10s", "--latency", "-s", str(script),
                        "http://127.0.0.1:1/plaintext", "--", "16"]  # fmt: skip
    assert "-s" not in wrk.command("http://127.0.0.1:1/json", 3, options, script, 1)
    assert "wrk.format()" in script.read_text()


def test_summarize_takes_medians_and_sums_errors():
    runs = [
        {"rps": 100.0, "p50_ms": 1.0, "p99_ms": 9.0, "errors": 0, "requests": 200, "cpu_us": {"app": 300.0}},
        {"rps": 300.0, "p50_ms": 3.0, "p99_ms": None, "errors": 2, "requests": 600, "cpu_us": {"app": 100.0}},
        {"rps": 200.0, "p50_ms": 2.0, "p99_ms": 7.0, "errors": 1, "requests": 400},
    ]
    assert stats.summarize(runs) == {
        "rps": 200.0,
        "p50_ms": 2.0,
        "p99_ms": 8.0,
        "errors": 3,
        "requests": 1200,
        "cpu_us": {"app": 200.0},  # the median of the runs that measured it
    }
    with pytest.raises(ValueError):
        stats.summarize([])


def run_of(rps: float, errors: int = 0) -> list[dict]:
    return [{"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "errors": errors, "requests": int(rps)}]


def sample_results() -> dict:
    m = stats.measurement
    measurements = [
        m("nginx", "plain", run_of(20_000)),
        m("nginx", "pipelined", run_of(40_000)),
        m("db", "find_one", run_of(2_000)),
        m("direct", "json", run_of(4_000), mode="motor", loop="asyncio", procs=1),
    ]
    rates = {("motor", "asyncio"): 1.0, ("motor", "uvloop"): 1.5, ("async", "asyncio"): 2.0, ("async", "uvloop"): 2.0}
    for procs in (1, 2):
        for (mode, loop), factor in rates.items():
            for name in ("json", "db", "queries"):
                rps = {"json": 2_000, "db": 500, "queries": 40}[name] * factor * procs
                errors = 3 if (mode, loop, procs, name) == ("async", "uvloop", 2, "queries") else 0
                measurements.append(m("fleet", name, run_of(rps, errors), mode=mode, loop=loop, procs=procs))
    config = {
        "wrk_threads": 1,
        "connections": 64,
        "runs": 1,
        "duration_s": 2,
        "warmup_s": 1,
        "db_threads": 8,
        "database": "the embedded SecantusDB",
    }
    machine = {
        "date": "2026-01-01T00:00:00+00:00",
        "nproc": 2,
        "cpu_model": "Test CPU",
        "memory_gib": 4.0,
        "kernel": "6.1",
        "load_average": [0.5, 0.4, 0.3],
        "python": "3.11.7",
        "packages": {"tornado": "6.6.1"},
        "nginx": "nginx/1.22.1",
        "wrk": "wrk 4.1.0",
    }
    return {"config": config, "machine": machine, "measurements": measurements}


def row(text: str, *starts: str) -> list[str]:
    """The cells of the first table row of `text` that begins with `starts`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[: len(starts)] == list(starts):
            return cells
    raise AssertionError(f"no row {starts} in:\n{text}")


def test_report_tables_hold_every_variant_with_figures_errors_and_ratios():
    text = report.markdown(sample_results())
    assert "Test CPU, 2 CPUs" in text and "tornado 6.6.1" in text
    assert "**Failed requests** (socket errors + non-2xx answers), all cells: **3**" in text
    # Throughput: one row per (mode, loop, procs), errors summed per row.
    assert row(text, "async", "uvloop", "2") == ["async", "uvloop", "2", "8,000", "2,000", "160", "3"]
    # References, with the database's ceiling marked as bound by the embedded server.
    assert row(text, "database alone")[2:4] == ["2,000 ops/s", "1.0"]
    assert "†" in row(text, "database alone")[1]
    # Ratios: /json ÷ nginx alone, ÷ the same process direct; db endpoints as implied database ops ÷ db alone.
    ratios = text.split("## Against the references")[1]
    assert row(ratios, "motor", "asyncio", "1")[3:] == ["0.10×", "0.50×", "0.25×", "0.40×"]
    assert row(ratios, "motor", "uvloop", "1")[4] == "n/a"  # no direct measurement for uvloop


def test_report_headlines_give_the_hop_the_modes_and_uvloop_ratios():
    text = report.markdown(sample_results())
    headlines = text.split("## Headlines")[1]
    assert "median 0.50× (motor/asyncio 0.50×)" in headlines
    assert "2 processes ÷ 1): motor/asyncio 2.00×" in headlines
    assert row(headlines, "`/db` †", "asyncio", "1") == ["`/db` †", "asyncio", "1", "500", "2.00×"]
    assert row(headlines, "motor", "1")[2:5] == ["1.50×", "1.50×", "1.50×"]
    assert row(headlines, "async", "2")[2:5] == ["1.00×", "1.00×", "1.00×"]


def test_raw_files_hold_every_measurement(tmp_path):
    results = sample_results()
    json_path, csv_path = report.write_raw(results, tmp_path)
    lines = csv_path.read_text().splitlines()
    assert lines[0].split(",") == list(report.CSV_FIELDS)
    assert len(lines) == 1 + len(results["measurements"])
    assert "fleet,queries,/queries?queries=20,async,uvloop,2,160.0,1.0,2.0,3,160,,,," in lines
    assert '"cpu_model": "Test CPU"' in json_path.read_text()


def test_plots_are_written_as_png(tmp_path):
    from bench import plots

    paths = plots.write_plots(sample_results(), tmp_path)
    assert [p.name for p in paths] == ["throughput.png", "latency.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_nginx_alone_copies_worker_count_and_access_log_from_the_deployed_config():
    deployed = "worker_processes 3;\nhttp {\n    access_log logs/access.log fleet_json buffer=64k flush=1s;\n}\n"
    text = references.render_nginx_alone(4321, deployed)
    assert "worker_processes 3;" in text
    # Same buffering; the built-in format, since a custom one may depend on the rest of the deployed config.
    assert "access_log logs/access.log combined buffer=64k flush=1s;" in text
    assert "listen 127.0.0.1:4321;" in text and 'return 200 "Hello, World!";' in text
    assert "access_log off;" in references.render_nginx_alone(1, "access_log off;")


def test_database_alone_measures_find_one_against_the_real_server(mongo_uri):
    result = references.database_alone(mongo_uri, "fleet", threads=2, duration_s=0.3)
    assert result["requests"] > 0 and result["errors"] == 0
    assert result["rps"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]


def test_database_alone_counts_missing_documents_as_errors(mongo_uri):
    result = references.database_alone(mongo_uri, "no_such_db", threads=1, duration_s=0.2)
    assert result["requests"] > 0 and result["errors"] == result["requests"]


def test_cli_quick_plan_and_overrides():
    plan = cli.build_plan(cli.parse_args(["--quick", "--modes", "async", "--connections", "8"]))
    assert (plan.modes, plan.procs, plan.runs, plan.duration_s, plan.warmup_s) == (("async",), (1,), 1, 1, 0)
    assert plan.loops == ("asyncio", "uvloop") and plan.endpoints == tuple(ENDPOINTS)
    assert plan.wrk.connections == 8
    plan = cli.build_plan(cli.parse_args(["--procs", "1,3", "--direct-endpoints", ""]))
    assert (plan.procs, plan.direct_endpoints, plan.runs) == ((1, 3), (), 3)


@pytest.mark.parametrize(
    "argv", [["--modes", "mysql"], ["--procs", "0"], ["--procs", "two"], ["--duration", "0"], ["--loops", ""]]
)
def test_cli_refuses_bad_arguments_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_refuses_a_url_that_is_not_http(capsys):
    assert cli.main(["--url", "127.0.0.1:8080"]) == 2
    assert "--url must be http://" in capsys.readouterr().err


def test_default_full_run_is_bounded_to_about_twenty_minutes():
    assert runner.Plan().estimate_seconds() <= 21 * 60


def nginx_accepts(conf_text: str, folder) -> subprocess.CompletedProcess:
    for sub in ("tmp", "logs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(conf_text)
    return subprocess.run(
        [nginx_binary(), "-t", "-p", f"{folder}/", "-c", str(conf), "-e", "stderr"], capture_output=True, text=True
    )


@pytest.mark.parametrize("knob", list(tuning.NGINX_VARIANTS))
def test_each_nginx_tuning_variant_changes_the_deployed_config_and_nginx_accepts_it(knob, tmp_path):
    deployed = render_nginx(NGINX_TEMPLATE.read_text(), 18080, [18101, 18102])
    tuned = tuning.NGINX_VARIANTS[knob](deployed)
    assert tuned != deployed
    result = nginx_accepts(tuned, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_shipped_upstream_keeps_connections_alive_and_the_tuning_variant_turns_that_off():
    deployed = render_nginx(NGINX_TEMPLATE.read_text(), 18080, [18101, 18102])
    upstream = deployed[deployed.index("upstream app {") :].split("}")[0]
    # nginx requires the balancing method before keepalive.
    assert upstream.index("least_conn;") < upstream.index("keepalive 64;")
    assert deployed.count("proxy_http_version 1.1;") == deployed.count('proxy_set_header Connection "";') == 1
    tuned = tuning.no_upstream_keepalive(deployed)
    assert "keepalive 64;" not in tuned and "proxy_http_version 1.0;" in tuned


def test_nginx_alone_config_is_accepted_by_nginx(tmp_path):
    result = nginx_accepts(references.render_nginx_alone(18090, NGINX_TEMPLATE.read_text()), tmp_path)
    assert result.returncode == 0, result.stderr


def test_readme_block_is_replaced_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\n## Performance\n\n{report.README_BEGIN}\nold figures\n{report.README_END}\n\nafter\n"
    )
    image = tmp_path / "results" / "throughput.png"
    cli.update_readme(sample_results(), [image], readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\n## Performance\n\n") and text.endswith(f"{report.README_END}\n\nafter\n")
    assert "old figures" not in text
    assert "| async | uvloop | 2 | 8,000 | 2,000 | 160 | 3 |" in text
    assert "![throughput](results/throughput.png)" in text
    with pytest.raises(ValueError, match="bench:begin"):
        writer.replace_block("no markers", "x", report.README_BEGIN, report.README_END)


def test_runs_last_several_times_the_warm_up_latency_within_twice_the_plan():
    cell = runner.CellRunner(runner.Plan(duration_s=2, warmup_s=1), None, print)

    def warm(requests: int, p99_ms: float | None) -> wrk.WrkResult:
        return wrk.WrkResult(requests, 1.0, float(requests), p99_ms, p99_ms, {}, 0)

    assert cell.run_seconds(None) == 2
    assert cell.run_seconds(warm(500, 20.0)) == 2
    assert cell.run_seconds(warm(40, 800.0)) == 4  # 4 x 0.8 s, rounded up
    assert cell.run_seconds(warm(3, 1900.0)) == 4  # at most twice the plan
    assert cell.run_seconds(warm(0, None)) == 4  # nothing completed: as long as allowed


def test_endpoints_with_many_round_trips_run_with_fewer_connections():
    plan = runner.Plan(wrk=wrk.WrkOptions(threads=1, connections=64))
    assert [plan.connections(ENDPOINTS[n]) for n in ("json", "db", "queries", "updates")] == [64, 64, 16, 16]
    assert "`-c16` for `/updates?queries=20`" in report.markdown(sample_results())


def test_url_with_a_path_is_measured_at_the_fleets_root(tmp_path, capsys):
    # Nothing listens there: the run fails at /readyz, which names the fleet's root (no ValueError on the path).
    nothing_there = f"http://127.0.0.1:{free_port_block(1)}/some/path"
    argv = ["--url", nothing_there, "--runs", "1", "--duration", "1", "--warmup", "0", "--out", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{nothing_there.removesuffix('/some/path')}/readyz does not answer" in err


def test_a_failed_run_keeps_what_it_measured_and_can_be_reported(tmp_path, capsys):
    nothing_there = f"http://127.0.0.1:{free_port_block(1)}"
    argv = ["--url", nothing_there, "--runs", "1", "--duration", "1", "--warmup", "0", "--out", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "/readyz does not answer" in err and "--report-only" in err
    saved = tmp_path / "partial" / "results.json"
    assert {m["target"] for m in json.loads(saved.read_text())["measurements"]} == {"nginx"}
    assert cli.main(["--report-only", str(saved), "--no-plots"]) == 0
    assert "nginx alone" in (tmp_path / "partial" / "report.md").read_text()

"""Blast radius: one blocked process does not slow the fleet. Stall shedding sends the requests waiting for a
blocked process elsewhere (and never a POST, nor the blocking request itself); through nginx, requests keep
succeeding during a block; and the benchmark program (bench/blast_radius/) runs, with nginx accepting every
option it compares."""

import subprocess
import sys

import pytest

from bench.blast_radius import nginx_options, run
from bench.errors import BenchError
from bench.openloop import Sample
from fleet.config import NGINX_TEMPLATE, ROOT, nginx_binary, render_nginx

# --- the benchmark program ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(nginx_options.variants()))
def test_nginx_accepts_every_option_the_benchmark_compares(tmp_path, name):
    rendered = render_nginx(NGINX_TEMPLATE.read_text(), 18080, [18101, 18102])
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_options.variants()[name].apply(rendered))
    for sub in ("logs", "tmp"):
        (tmp_path / "nginx" / sub).mkdir(parents=True)
    check = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", f"{tmp_path}/nginx/", "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    if name != nginx_options.SHIPPED:
        assert conf.read_text() != rendered


def test_an_option_that_no_longer_matches_the_config_is_an_error():
    variant = nginx_options.Variant("gone", "", (nginx_options.Edit(r"^\s*no_such_directive;$", ""),))
    with pytest.raises(BenchError, match="gone"):
        variant.apply(NGINX_TEMPLATE.read_text())


def test_summary_counts_failures_and_delays():
    samples = [Sample("/json", i / 100, 0.005, 200) for i in range(97)]
    samples += [Sample("/json", 1.0, 0.3, 200), Sample("/json", 1.1, 2.0, 200), Sample("/json", 1.2, 0.01, 0)]
    stats = run.summarize(samples, duration=2.0)
    assert stats["requests"] == 100 and stats["failed"] == 1
    assert stats["over_100ms_pct"] == 2.0 and stats["over_1s_pct"] == 1.0
    assert stats["p50_ms"] == 5.0 and stats["max_ms"] == 2000.0 and stats["rps"] == 50.0


def test_the_cli_explains_itself_and_refuses_bad_arguments():
    script = [sys.executable, "-m", "bench", "blast-radius"]
    help_text = subprocess.run([*script, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert help_text.returncode == 0 and "--quick" in help_text.stdout
    bad = subprocess.run([*script, "--blocks", "0"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "--blocks" in bad.stderr

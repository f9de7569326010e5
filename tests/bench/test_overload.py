"""scripts/bench --overload's arithmetic and report (bench/overload.py) on made-up samples; the load itself is
exercised by tests/whole_fleet/test_overload_fleet.py and by the benchmark run."""

from __future__ import annotations

from bench import machine, overload


def samples(*spec):
    """(count, latency_s, status) groups -> (at, latency, status) samples spread over one second."""
    out = []
    for count, latency, status in spec:
        out += [(i / count, latency, status) for i in range(count)]
    return sorted(out)


def test_a_step_counts_accepted_refused_and_failed_apart():
    step = overload.summarize(samples((90, 0.010, 200), (8, 0.001, 503), (1, 0.001, 429), (1, 2.0, 0)), 1.0, 100)
    assert (step["accepted"], step["refused"], step["failed"]) == (90, 9, 1)
    assert step["failed_statuses"] == ["0"]
    assert step["goodput_rps"] == 90
    assert (step["p50_ms"], step["p99_ms"], step["refusal_p99_ms"]) == (10.0, 10.0, 1.0)


def test_recovery_is_reported_per_window_after_the_load():
    windows = overload.recovery_windows([(0.5, 0.3, 200), (1.5, 0.02, 200), (1.6, 0.0, 503), (3.0, 0.01, 200)])
    assert [w["p99_ms"] for w in windows] == [300.0, 20.0, 10.0]
    assert [w["not_2xx"] for w in windows] == [0, 1, 0]


def test_report_and_plot(tmp_path):
    step = overload.summarize(samples((90, 0.010, 200), (10, 0.001, 503)), 1.0, 200)
    step.update(factor=2.0, seconds=1.0, rss_peak_kib={"app-8001": 60_000})
    ramp = {
        "name": "async /db",
        "max_in_flight": 256,
        "capacity_rps": 100.0,
        "unloaded": overload.summarize(samples((25, 0.005, 200)), 1.0, 25),
        "steps": [step],
        "recovery": overload.recovery_windows([(0.5, 0.01, 200)]),
        "rss_before_kib": {"app-8001": 50_000},
    }
    results = {
        "machine": machine.machine_info(),
        "config": {"procs": 2},
        "ramps": [ramp],
        "failed_ramps": [{"name": "motor API", "error": "supervisord did not start"}],
    }
    text = overload.markdown(results)
    assert "**motor API**: not measured (supervisord did not start)." in text
    assert "| 2x (1 s) | 200 | 90 (90%) | 10 | 10 | 10 | 1 | 0 | +20% |" in text
    assert overload.failed_total(results) == 0
    written = overload.write(results, tmp_path)
    assert (tmp_path / "overload.png").stat().st_size > 0 and len(written) == 3

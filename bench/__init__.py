"""Every measurement of the template, behind one CLI: `python -m bench SUBCOMMAND` (bench/commands.py).

The shared harness: `harness` (booting a fleet for a measurement, through `fleet.sandbox.booted`), `loadgen` (the
closed loop: client threads writing and reading notes, every request counted), `openloop` (the open loop: GETs at
a fixed rate, latency from each request's due time), `writer` (tables, number formats, JSON, README blocks),
`stats` (the one percentile rule), `errors` (the one `BenchError`), `machine` (what it ran on).

The throughput matrix (`scripts/bench`): `cli` (its flags and exit codes, also for the variants below),
`endpoints` (the workload), `wrk` (running wrk, reading its output), `references` (nginx alone, the database
alone), `runner` (cells, progress), `report` (markdown, JSON, CSV), `plots` (PNG). Its variants: `compare`,
`compare_report`, `plain_tornado` and `cpu` (`--compare`), `profile` (`--profile`), `tuning` (`--tune`),
`overload` (`--overload`). The others: `blast_radius/` (`scripts/blast-radius`), `switch_trial`
(`scripts/switch-trial`), `socket_ab` (TCP vs a unix socket).
"""

"""Blast radius: what one blocked app process costs the fleet, measured through nginx (`scripts/blast-radius`,
`python -m bench blast-radius`).

Scenarios are grouped by fleet: one fleet of N processes per group (free ports, a /tmp folder, FLEET_FAULTS on,
stall shedding on or off), whose nginx gets each scenario's config by a reload: the shipped deploy/nginx.conf,
or it with one option changed. Then a bounded load runs on /json and /db through nginx while event loops are
blocked for T seconds, K times (`GET /fault/block` on one process's own port; or on two processes in turn; or
through nginx, like a slow "query of death"). Per scenario and endpoint it reports requests, failed, the share
delayed beyond 100 ms and beyond 1 s, p50/p99/max latency, and how many processes' watchdogs saw a stall.

Two loads: "steady" is an open loop at a fixed rate (latency counted from each request's due time, so waiting
for a free connection counts); "saturating" is a closed loop that keeps every connection busy, the case where
many requests are already on their way to a process when it blocks.

Outputs (under --out, default results/blast-radius/): summary.md (the tables), results.json (every figure and
the parameters), requests.csv.gz (one row per request), blast-radius.png and nginx-options.png (latency over
time, block intervals shaded); --readme also writes the figures into README.md. One embedded database, in
memory, serves every fleet: `/db` figures are bounded by it.

Modules: `nginx_options` (the nginx configurations compared), `scenarios` (loads, faults, timing, the plan),
`run` (fleets, faults and load), `report` (tables, files, README block), `plot` (PNG), `cli` (arguments).
"""

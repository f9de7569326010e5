"""The benchmark behind scripts/bench: wrk through nginx on the TechEmpower workload, with physical references.

Modules: `endpoints` (the workload), `wrk` (running wrk, reading its output), `references` (nginx alone, the
database alone), `runner` (fleets, cells, progress), `stats` (medians, lookups), `report` (markdown, JSON, CSV),
`plots` (PNG), `machine` (what it ran on), `cli` (arguments, exit codes).
"""

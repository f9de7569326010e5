"""`python -m bench SUBCOMMAND [options]`: every measurement of the template behind one command.

    throughput     the TechEmpower matrix through nginx (scripts/bench; today's flags, --compare etc. included)
    compare        the fleet beside plain Tornado                  (= throughput --compare; scripts/bench --compare)
    profile EP     py-spy flame graph of one process under load    (= throughput --profile EP)
    tune           each tuning knob against the deployed config    (= throughput --tune)
    overload       open-loop overload, 0.5x to 4x capacity         (= throughput --overload)
    blast-radius   what one blocked process costs the fleet        (scripts/blast-radius)
    switch-trial   mode switches under load                        (scripts/switch-trial)
    socket-ab      nginx to Tornado over TCP vs a unix socket

`python -m bench SUBCOMMAND --help` for each one's options. Options given without a subcommand are the
throughput command's (`python -m bench --quick` is `python -m bench throughput --quick`). Exit status: the
subcommand's; 2 for an unknown subcommand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import cli, socket_ab, switch_trial
from bench.blast_radius import cli as blast_radius_cli


def with_flag(flag: str) -> Callable[[list[str]], int]:
    """A subcommand that is the throughput command with `flag` (`compare` = `--compare`, `profile json` =
    `--profile json`): one parser, so the flags and outputs stay those of scripts/bench."""

    def run(argv: list[str]) -> int:
        return cli.main(["--help"] if {"-h", "--help"} & set(argv) else [flag, *argv])

    return run


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "throughput": cli.main,
    "compare": with_flag("--compare"),
    "profile": with_flag("--profile"),
    "tune": with_flag("--tune"),
    "overload": with_flag("--overload"),
    "blast-radius": blast_radius_cli.main,
    "switch-trial": switch_trial.main,
    "socket-ab": socket_ab.main,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, *rest = argv
    if name.startswith("-"):
        return cli.main(argv)
    if name not in SUBCOMMANDS:
        print(f"python -m bench: unknown subcommand {name!r}; one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[name](rest)

"""What the blast radius runs: the loads, the faults, the timing of the blocks, and the plan (scenarios grouped by
fleet: procs, mode and stall shedding are fixed per fleet, the nginx option and the load change by reload)."""

from __future__ import annotations

import dataclasses

from bench.blast_radius.nginx_options import SHIPPED

PATHS = ("/json", "/db")


@dataclasses.dataclass(frozen=True)
class LoadShape:
    """How hard the open-loop load presses on each path (not bench.loadgen's Load, which writes notes)."""

    name: str
    rate: float  # requests/s per path; 0: closed loop
    connections: int  # per path


LOADS = {
    "steady": LoadShape("steady", rate=100, connections=16),
    "saturating": LoadShape("saturating", rate=0, connections=8),
}


# Blocks on two processes in turn follow each other this closely (seconds).
ALTERNATE_GAP = 0.5
FAULT_NOTES = {
    "direct": "",
    "alternate": " (2 processes, in turn)",
    "nginx": " (slow GET via nginx)",
    "sigstop": " (whole process frozen: SIGSTOP)",
}
# A process frozen whole (SIGSTOP: what swapping, a C extension holding the GIL or a debugger does) is out of every
# in-process mechanism's reach, its watchdog thread included; frozen this long, as the design's outside check does.
SIGSTOP_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class Timing:
    block_seconds: float
    blocks: int
    gap: float  # seconds between the end of one block and the start of the next
    warmup: float = 1.0
    tail: float = 1.5

    @property
    def starts(self) -> list[float]:
        return [self.warmup + k * (self.block_seconds + self.gap) for k in range(self.blocks)]

    @property
    def duration(self) -> float:
        return self.starts[-1] + self.block_seconds + self.tail


@dataclasses.dataclass(frozen=True)
class Scenario:
    procs: int
    mode: str
    variant: str  # nginx option, a key of variants()
    load: str
    shedding: bool = True  # FLEET_STALL_SHEDDING
    # Where each block is sent: "direct", the first process's own port; "alternate", the first and the second
    # process's ports in turn (one process blocked after another); "nginx", a slow GET through nginx; "sigstop", the
    # first process frozen with SIGSTOP and thawed with SIGCONT.
    fault_via: str = "direct"

    @property
    def key(self) -> str:
        via = "" if self.fault_via == "direct" else f" fault-via-{self.fault_via}"
        shedding = "shedding" if self.shedding else "no-shedding"
        return f"N={self.procs} {self.mode} {self.variant} {shedding} {self.load}{via}"

    @property
    def shipped(self) -> bool:
        return self.variant == SHIPPED and self.shedding and self.fault_via == "direct"


def plan(quick: bool) -> list[list[Scenario]]:
    """Scenarios grouped by fleet (one boot each: procs, mode and shedding are fixed per fleet)."""
    if quick:
        return [
            [Scenario(2, "motor", SHIPPED, "saturating", shedding=False)],
            [Scenario(2, "motor", SHIPPED, "saturating"), Scenario(2, "motor", "no-keepalive", "saturating")],
            [Scenario(1, "motor", SHIPPED, "saturating")],
        ]
    both = tuple(LOADS)
    without = [
        Scenario(2, "motor", v, load, shedding=False)
        for v in ("round-robin", SHIPPED, "no-keepalive", "fast-timeout", "fast-timeout,max_fails=0")
        for load in both
    ]
    without += [
        Scenario(2, "motor", "timeout-everywhere", "steady", False, "nginx"),
        Scenario(2, "motor", "fast-timeout", "steady", False, "alternate"),
    ]
    shedding = [Scenario(2, "motor", v, load) for v in (SHIPPED, "max_fails=1") for load in both]
    shedding += [Scenario(2, "motor", "no-keepalive", "saturating")]
    shedding += [Scenario(2, "motor", SHIPPED, "steady", True, "nginx")]
    shedding += [Scenario(2, "motor", v, "steady", True, "alternate") for v in (SHIPPED, "max_fails=1")]
    fleets = [without, shedding]
    fleets += [[Scenario(procs, "motor", SHIPPED, load) for load in both] for procs in (1, 4)]
    fleets += [[Scenario(2, mode, SHIPPED, "saturating")] for mode in ("threads", "async")]
    fleets += [[Scenario(3, "motor", SHIPPED, load, True, "sigstop") for load in both]]
    return fleets
